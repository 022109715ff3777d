import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { countingBackend as countRuns } from '@blip2/fixtures';
import {
  type GenerationOptions,
  generate,
  generationOptionsFromConfig,
  mergeQueryEmbeds,
} from '@blip2/generation';
import type { KvLoadOptions } from '@blip2/onnx';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { type Backend, concat, gather, int64, maxAbsDiff, reshape, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildT5, T5Adapter, type T5Cache, type T5Graphs } from '../src/index.js';
import { type GenerateRecord, readReference, tinyT5 } from './helpers.js';

const { dir, blip2, config, reference } = tinyT5();
const ref = await readReference(dir);
const defaults = generationOptionsFromConfig(
  JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')),
);
let graphs: T5Graphs;
let weights: Awaited<ReturnType<typeof openWeightsFromDir>>;
const adapters: T5Adapter[] = [];

beforeAll(async () => {
  weights = await openWeightsFromDir(dir);
  graphs = buildT5(config, weights);
});
afterAll(async () => {
  await Promise.all(adapters.map((a) => a.release()));
  await weights.close();
});

/** The node backend, recording which graphs it loads and each session run with its batch size. */
const countingBackend = () => countRuns(createNodeBackend());

async function load(options: KvLoadOptions, backend: Backend = createNodeBackend()): Promise<T5Adapter> {
  const adapter = await T5Adapter.load(config, graphs, backend, options);
  adapters.push(adapter);
  return adapter;
}

/** case0's prompt, `rows` times; row 1 right-padded by 2 (the encoder's padding mask matters). */
async function prompt(adapter: T5Adapter, rows: number) {
  const ids = reference.cases[0].input_ids;
  const t = ids.length;
  const inputIds = int64([1, t], ids);
  const query = ref('case0/language_projection');
  const embeds = mergeQueryEmbeds(
    await adapter.embed(inputIds),
    inputIds,
    reshape(query, [1, ...query.dims]),
    blip2.imageTokenIndex as number,
  );
  const mask = Array.from({ length: rows }, (_, r) => ids.map((_, j) => (r === 1 && j >= t - 2 ? 0 : 1)));
  return {
    inputsEmbeds: concat<'float32'>(
      Array.from({ length: rows }, () => embeds),
      0,
    ),
    attentionMask: int64([rows, t], mask.flat()),
  };
}

const optionsOf = (record: GenerateRecord): GenerationOptions => ({
  ...defaults,
  ...generationOptionsFromConfig(record.kwargs, record.name),
});

function record(name: string): GenerateRecord {
  const rec = reference.generate.find((r) => r.name === name);
  if (!rec) throw new Error(`reference.json has no generate record ${name}`);
  return rec;
}

describe('the weight-first decoder graph (decoderBatched)', () => {
  it('has the decoder graph inputs and outputs', () => {
    expect(graphs.decoderBatched.name).toBe('t5.decoder_batched');
    expect(graphs.decoderBatched.inputs).toEqual(graphs.decoder.inputs);
    expect(graphs.decoderBatched.outputs).toEqual(graphs.decoder.outputs);
    expect(graphs.decoderBatched.bytes).not.toEqual(graphs.decoder.bytes);
  });

  it('gives each row of a 3-row run the logits and cache the batch-1 decoder gives that row', async () => {
    const gemmOnly = await load({ batchedStep: 'never' });
    const batched = await load({ batchedStep: 'eager' });
    const { inputsEmbeds, attentionMask } = await prompt(gemmOnly, 3);
    let cache: T5Cache = await gemmOnly.encoderCache(inputsEmbeds, attentionMask);
    // the first pass on the start token, then a step of one token per row, then of two
    const start = config.decoderStartTokenId;
    for (const tokens of [
      [[start], [start], [start]],
      [[5], [17], [90]],
      [
        [5, 9],
        [17, 3],
        [90, 2],
      ],
    ]) {
      const all = await batched.decode(int64([3, tokens[0].length], tokens.flat()), cache);
      let worst = 0;
      for (let r = 0; r < 3; r++) {
        const row = await gemmOnly.reorderCache(cache, [r]);
        const one = await gemmOnly.decode(int64([1, tokens[0].length], tokens[r]), row);
        const pairs: [Tensor<'float32'>, Tensor<'float32'>][] = [
          [all.logits, one.logits],
          [
            all.cache.selfAttentionCache.keys[0] as Tensor<'float32'>,
            one.cache.selfAttentionCache.keys[0] as Tensor<'float32'>,
          ],
          [
            all.cache.selfAttentionCache.values[1] as Tensor<'float32'>,
            one.cache.selfAttentionCache.values[1] as Tensor<'float32'>,
          ],
        ];
        for (const [a, b] of pairs) {
          const d = maxAbsDiff(gather(a, 0, [r]), b);
          worst = Math.max(worst, d);
          expect(d, `row ${r}`).toBeLessThanOrEqual(1e-5);
        }
      }
      console.log(
        `decoderBatched vs decoder row by row, ${tokens[0].length} token(s): max |diff| ${worst.toExponential(2)}`,
      );
      cache = all.cache;
    }
  });
});

describe('T5Adapter picks the decoder graph by the rows a run multiplies', () => {
  async function run(name: string, options?: KvLoadOptions) {
    const counting = countingBackend();
    const adapter = await load(options ?? {}, counting.backend);
    const loadsAtLoad = [...counting.loads];
    const rec = record(name);
    const out = await generate(adapter, await prompt(adapter, 1), optionsOf(rec));
    expect(out.sequences).toEqual(rec.new);
    rec.sequences_scores?.forEach((s, i) => {
      expect(Math.abs(s - (out.sequencesScores?.[i] ?? Number.NaN))).toBeLessThanOrEqual(1e-4);
    });
    const runsOf = (graph: string) => counting.runs.filter((r) => r.graph === graph);
    return { loadsAtLoad, loads: counting.loads, runsOf };
  }

  // that greedy batch 1 never loads the batched graph is the shared core's rule (@blip2/onnx's kv-adapter test)

  it('beam search: the first pass (1 row) on `decoder`, every beam step on `decoderReorder`', async () => {
    const { loadsAtLoad, loads, runsOf } = await run('case0/beam4');
    expect(loadsAtLoad).not.toContain('t5.decoder_reorder');
    expect(loads.filter((n) => n === 't5.decoder_reorder')).toHaveLength(1);
    // the reorders are gathered inside it, and steps whose beams kept their rows run it too
    expect(loads).not.toContain('t5.decoder_batched');
    // beam search expands the prompt to 4 rows before the prefill or after it: either way, rows > 1 are batched
    expect(runsOf('t5.decoder').every((r) => r.rows === 1)).toBe(true);
    const steps = runsOf('t5.decoder_reorder');
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.every((r) => r.rows === 4)).toBe(true);
  });

  it("'eager' loads it with the other graphs; 'never' keeps beams on `decoder` with the same result", async () => {
    const eager = await run('case0/beam5_lavis', { batchedStep: 'eager' });
    expect(eager.loadsAtLoad).toContain('t5.decoder_batched');
    expect(eager.loadsAtLoad).toContain('t5.decoder_reorder');
    expect(eager.runsOf('t5.decoder_reorder').length).toBeGreaterThan(0);
    const never = await run('case0/beam5_lavis', { batchedStep: 'never' });
    expect(never.loads).not.toContain('t5.decoder_batched');
    expect(never.loads).not.toContain('t5.decoder_reorder');
    expect(never.runsOf('t5.decoder').length).toBe(
      eager.runsOf('t5.decoder').length +
        eager.runsOf('t5.decoder_batched').length +
        eager.runsOf('t5.decoder_reorder').length,
    );
  });
});
