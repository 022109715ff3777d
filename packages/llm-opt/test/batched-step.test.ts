import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { countingBackend as countRuns, fixtures } from '@blip2/fixtures';
import { generate, generationOptionsFromConfig, mergeQueryEmbeds } from '@blip2/generation';
import { KV_IO, type KvLoadOptions } from '@blip2/onnx';
import { type AnyTensor, concat, gather, int64, maxAbsDiff, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPT_IO, OptAdapter, type OptGraphs } from '../src/index.js';
import { type GenerateRecord, ids, openTiny, type Tiny } from './tiny.js';

let tiny: Tiny;
let graphs: OptGraphs;
beforeAll(async () => {
  tiny = await openTiny();
  graphs = tiny.graphs;
});
afterAll(async () => {
  await tiny.close();
});

/** The node backend, recording which graphs it loads and each session run with its batch size. */
const countingBackend = () => countRuns(createNodeBackend());

/** case0's prompt, embeddings merged with its query embeddings. */
async function case0() {
  const prompt = tiny.json.cases[0].input_ids;
  const inputIds = ids([prompt]);
  const query = await tiny.ref('case0/language_projection', [
    1,
    tiny.json.num_query_tokens,
    tiny.config.hiddenSize,
  ]);
  const inputsEmbeds = mergeQueryEmbeds(
    await tiny.adapter.embed(inputIds),
    inputIds,
    query,
    tiny.imageTokenId,
  );
  return {
    inputIds,
    inputsEmbeds,
    attentionMask: int64([1, prompt.length], new Array(prompt.length).fill(1)),
  };
}

function record(name: string): GenerateRecord {
  const rec = tiny.json.generate.find((r) => r.name === name);
  if (!rec) throw new Error(`reference.json has no generate record ${name}`);
  return rec;
}

const generationConfig = JSON.parse(readFileSync(join(fixtures.tinyOpt, 'generation_config.json'), 'utf8'));
const optionsOf = (rec: GenerateRecord) =>
  generationOptionsFromConfig({ ...generationConfig, ...rec.kwargs }, `${rec.name} kwargs`);

describe('the weight-first step graph (stepBatched)', () => {
  it('has the step graph inputs and outputs', () => {
    expect(graphs.stepBatched.name).toBe('opt.step_batched');
    expect(graphs.stepBatched.inputs).toEqual(graphs.step.inputs);
    expect(graphs.stepBatched.outputs).toEqual(graphs.step.outputs);
    expect(graphs.stepBatched.bytes).not.toEqual(graphs.step.bytes);
  });

  it('gives each row of a 3-row step the logits and cache the batch-1 step graph gives that row', async () => {
    const backend = createNodeBackend();
    const keepOnDevice = KV_IO.presents(tiny.config.numHiddenLayers);
    const step = await backend.load(graphs.step, { keepOnDevice });
    const batched = await backend.load(graphs.stepBatched, { keepOnDevice });
    // three rows: case0's prompt, left padded in row 1, a different last token in row 2
    const { inputsEmbeds } = await case0();
    const t = inputsEmbeds.dims[1];
    const mask = int64(
      [3, t],
      [...new Array(t).fill(1), 0, 0, ...new Array(t - 2).fill(1), ...new Array(t).fill(1)],
    );
    const { cache } = await tiny.adapter.prefill(concat([inputsEmbeds, inputsEmbeds, inputsEmbeds], 0), mask);
    const feeds = (rows: number[], tokens: number[][]): Record<string, AnyTensor> => {
      const f: Record<string, AnyTensor> = {
        [OPT_IO.step.inputIds]: ids(rows.map((r) => tokens[r])),
        [OPT_IO.step.attentionMask]: concat(
          [
            gather(cache.attentionMask, 0, rows),
            int64(
              [rows.length, tokens[0].length],
              rows.flatMap((r) => tokens[r].map(() => 1)),
            ),
          ],
          1,
        ),
      };
      for (let i = 0; i < tiny.config.numHiddenLayers; i++) {
        f[KV_IO.pastKey(i)] = gather(cache.keys[i] as Tensor<'float32'>, 0, rows);
        f[KV_IO.pastValue(i)] = gather(cache.values[i] as Tensor<'float32'>, 0, rows);
      }
      return f;
    };
    // one new token per row (a beam step), then two per row
    for (const tokens of [
      [[5], [17], [400]],
      [
        [5, 9],
        [17, 3],
        [400, 946],
      ],
    ]) {
      const all = await batched.run(feeds([0, 1, 2], tokens));
      let worst = 0;
      for (let r = 0; r < 3; r++) {
        const one = await step.run(feeds([r], tokens));
        for (const name of ['logits', KV_IO.presentKey(0), KV_IO.presentValue(1)]) {
          const d = maxAbsDiff(
            gather(all[name] as Tensor<'float32'>, 0, [r]),
            one[name] as Tensor<'float32'>,
          );
          worst = Math.max(worst, d);
          expect(d, `${name} row ${r}`).toBeLessThanOrEqual(1e-5);
        }
      }
      console.log(
        `stepBatched vs step row by row, ${tokens[0].length} token(s) per row: max |diff| ${worst.toExponential(2)}`,
      );
    }
    await Promise.all([step.release(), batched.release()]);
  });
});

describe('beam search on the CPU: the cache never moves (stepBeams)', () => {
  it('reorderCache copies nothing: the cache keeps its tensors and composes pastRows', async () => {
    const counting = countingBackend();
    const adapter = await OptAdapter.load(tiny.config, graphs, counting.backend);
    const { inputsEmbeds, attentionMask } = await case0();
    const t = attentionMask.dims[1];
    const { cache } = await adapter.prefill(inputsEmbeds, attentionMask);
    const beams = await adapter.reorderCache(cache, [0, 0, 0]);
    expect(beams.keys).toBe(cache.keys);
    expect(beams.pastRows?.dims).toEqual([3, t]);
    expect(beams.attentionMask.dims).toEqual([3, t]);
    // the first step copies the prompt's one row into buffers of three, with free slots
    const s1 = await adapter.step(ids([[5], [17], [400]]), beams);
    const buffers = s1.cache.keys;
    expect(buffers[0].dims[0]).toBe(3);
    expect(s1.cache.filled).toBe(t + 1);
    const rowsAt = (c: typeof s1.cache, slot: number) => {
      const width = c.pastRows?.dims[1] ?? 0;
      return [0, 1, 2].map((b) => Number(c.pastRows?.data[b * width + slot]));
    };
    // each beam wrote its token into its own row; the prompt lies in row 0 for all three
    expect(rowsAt(s1.cache, 0)).toEqual([0, 0, 0]);
    expect(rowsAt(s1.cache, t)).toEqual([0, 1, 2]);
    const twice = await adapter.reorderCache(await adapter.reorderCache(s1.cache, [2, 2, 0]), [1, 2, 0]);
    expect(twice.keys).toBe(buffers);
    // beam 0 continues beam 1 of [2, 2, 0], which continued beam 2: slot t lies in row 2
    expect(rowsAt(twice, t)).toEqual([2, 0, 2]);
    const s2 = await adapter.step(ids([[6], [7], [8]]), twice);
    // appended in place: the same buffers, one more slot filled, each beam in its own row
    expect(s2.cache.keys).toBe(buffers);
    expect(rowsAt(s2.cache, t)).toEqual([2, 0, 2]);
    expect(rowsAt(s2.cache, t + 1)).toEqual([0, 1, 2]);
    // nothing ran for the reorders: only the steps' graph
    expect(counting.runs.map((r) => r.graph)).toEqual(['opt.prefill', 'opt.step_beams', 'opt.step_beams']);
    await adapter.release();
  });

  it('a cache reordered down to one row, or stepped with two tokens per row, is read row by row', async () => {
    const prompt = tiny.json.cases[0].input_ids;
    const t = prompt.length;
    const ones = (n: number) => int64([1, n], new Array(n).fill(1));
    const { cache } = await tiny.adapter.prefill(await tiny.adapter.embed(ids([prompt])), ones(t));
    const beams = await tiny.adapter.step(ids([[5], [17]]), await tiny.adapter.reorderCache(cache, [0, 0]));
    const order = [1, 0];
    const reordered = await tiny.adapter.reorderCache(beams.cache, order);
    // the reference: each row's tokens in full, one forward per row
    const rowTokens = [[17], [5]];
    for (const [rows, tokens] of [
      [[0], [[9]]],
      [
        [0, 1],
        [
          [9, 3],
          [4, 12],
        ],
      ],
    ] as const) {
      const picked = rows.length === 2 ? reordered : await tiny.adapter.reorderCache(reordered, rows);
      const out = await tiny.adapter.step(ids(tokens.map((r) => [...r])), picked);
      for (const [i, r] of rows.entries()) {
        const full = [...prompt, ...rowTokens[r], ...tokens[i]];
        const logits = await tiny.adapter.forward(await tiny.adapter.embed(ids([full])), ones(full.length));
        const n = tokens[i].length;
        const want = gather(
          logits,
          1,
          Array.from({ length: n }, (_, k) => t + 1 + k),
        );
        const got = gather(out.logits, 0, [i]);
        expect(maxAbsDiff(got, want), `row ${r}, ${n} token(s)`).toBeLessThanOrEqual(1e-4);
      }
    }
  });
});

describe('OptAdapter picks the step graph by the rows a step multiplies', () => {
  async function run(rec: GenerateRecord, options?: KvLoadOptions) {
    const counting = countingBackend();
    const adapter = await OptAdapter.load(tiny.config, graphs, counting.backend, options);
    const loadsAtLoad = [...counting.loads];
    const out = await generate(adapter, await case0(), optionsOf(rec));
    await adapter.release();
    expect(out.sequences).toEqual(rec.new);
    if (rec.sequences_scores) {
      rec.sequences_scores.forEach((s, i) => {
        expect(Math.abs(s - (out.sequencesScores?.[i] ?? Number.NaN))).toBeLessThanOrEqual(1e-4);
      });
    }
    const runsOf = (graph: string) => counting.runs.filter((r) => r.graph === graph);
    return { loadsAtLoad, loads: counting.loads, runsOf };
  }

  it('greedy batch 1: every step on `stepAppend`, the batched graph never even loaded (lazy default)', async () => {
    const rec = record('case0/greedy');
    const { loadsAtLoad, loads, runsOf } = await run(rec);
    // node:cpu outputs come back to JavaScript: one-row steps append into the cache's buffers
    expect(loadsAtLoad).toEqual(['opt.embed', 'opt.prefill', 'opt.step_append']);
    expect(loads).not.toContain('opt.step_batched');
    expect(loads).not.toContain('opt.step');
    expect(runsOf('opt.step_append').length).toBeGreaterThan(0);
    expect(runsOf('opt.step_append').every((r) => r.rows === 1)).toBe(true);
  });

  it('beam search: every step on `stepBeams`, loaded once on the first beam step', async () => {
    const rec = record('case0/beam4');
    const { loadsAtLoad, loads, runsOf } = await run(rec);
    expect(loadsAtLoad).not.toContain('opt.step_beams');
    expect(loads.filter((n) => n === 'opt.step_beams')).toHaveLength(1);
    // the CPU never loads the device's batched step
    expect(loads).not.toContain('opt.step_batched');
    expect(runsOf('opt.step_append')).toEqual([]);
    const steps = runsOf('opt.step_beams');
    // the prefill gives the first token; every later token is one batched step of 4 beams
    expect(steps.length).toBeGreaterThanOrEqual(1);
    expect(steps.length).toBeLessThanOrEqual(Math.max(...rec.new.map((s) => s.length)) - 1);
    expect(steps.every((r) => r.rows === 4)).toBe(true);
  });

  it("'eager' loads it with the other graphs; 'never' keeps beams on `step` with the same result", async () => {
    const rec = record('case0/beam5_lavis');
    const eager = await run(rec, { batchedStep: 'eager' });
    expect(eager.loadsAtLoad).toContain('opt.step_beams');
    expect(eager.runsOf('opt.step_append')).toEqual([]);
    const beamSteps = eager.runsOf('opt.step_beams').length;
    expect(beamSteps).toBeGreaterThan(0);
    const never = await run(rec, { batchedStep: 'never' });
    expect(never.loads).not.toContain('opt.step_beams');
    expect(never.runsOf('opt.step_append').length).toBe(beamSteps);
  });
});
