/**
 * The adapter's device path without a GPU: a backend that wraps onnxruntime-node CPU
 * and hands back the outputs named in keepOnDevice as "GPU" tensors (opaque handles
 * it alone can read back), as onnxruntime-web's WebGPU provider does. Greedy and beam
 * search must give the fixture's tokens, every cache tensor fed to a step or a reorder
 * must be one of those handles (never a CPU copy), and every handle must be disposed
 * by the end. The real WebGPU run is packages/sdk/test/browser-kv.test.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { FakeDeviceBackend, fixtures } from '@blip2/fixtures';
import { generate, generationOptionsFromConfig, mergeQueryEmbeds } from '@blip2/generation';
import { buildRowGather, DeviceRowGather, KV_IO } from '@blip2/onnx';
import { type Backend, float32, gather, int64 } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OptAdapter, OptError } from '../src/index.js';
import { type GenerateRecord, ids, ones, openTiny, type Tiny } from './tiny.js';

let tiny: Tiny;
beforeAll(async () => {
  tiny = await openTiny();
});
afterAll(async () => {
  await tiny.close();
});

const records = (
  JSON.parse(readFileSync(join(fixtures.tinyOpt, 'reference.json'), 'utf8')) as { generate: GenerateRecord[] }
).generate;
const generationConfig = JSON.parse(readFileSync(join(fixtures.tinyOpt, 'generation_config.json'), 'utf8'));

const beamsOf = (rec: GenerateRecord) => Number(rec.kwargs.num_beams ?? 1);

describe('OPT adapter with the KV cache on a device', () => {
  for (const name of ['case0/greedy', 'case0/beam4', 'case1/beam5_lavis']) {
    it(`${name}: the fixture's tokens, every past fed from the device, every buffer freed`, async () => {
      const rec = records.find((r) => r.name === name);
      if (!rec) throw new Error(`no record ${name}`);
      const backend = new FakeDeviceBackend(createNodeBackend());
      const adapter = await OptAdapter.load(tiny.config, tiny.graphs, backend);
      try {
        const index = Number(name.match(/^case(\d+)\//)?.[1]);
        const prompt = tiny.json.cases[index].input_ids;
        const inputIds = ids([prompt]);
        const query = await tiny.ref(`case${index}/language_projection`, [
          1,
          tiny.json.num_query_tokens,
          tiny.config.hiddenSize,
        ]);
        const inputsEmbeds = mergeQueryEmbeds(
          await adapter.embed(inputIds),
          inputIds,
          query,
          tiny.imageTokenId,
        );
        const out = await generate(
          adapter,
          { inputsEmbeds, attentionMask: ones(1, prompt.length), inputIds },
          generationOptionsFromConfig({ ...generationConfig, ...rec.kwargs }, name),
        );
        expect(out.sequences).toEqual(rec.new);

        const present = KV_IO.presents(tiny.config.numHiddenLayers);
        // the backend copies weights into each session, as onnxruntime-web does: prefill and
        // steps run one decoder graph (the prompt's past is one masked position on the CPU)
        expect(backend.capabilities.sharedWeights).toBe(false);
        expect(backend.loads.map((l) => l.graph).sort()).toEqual(
          beamsOf(rec) > 1 ? ['opt.decoder', 'opt.embed', 'opt.reorder'] : ['opt.decoder', 'opt.embed'],
        );
        expect(backend.loads.find((l) => l.graph === 'opt.decoder')?.keepOnDevice).toEqual(present);
        expect(backend.loads.find((l) => l.graph === 'opt.embed')?.keepOnDevice).toEqual([]);
        const steps = rec.new[0].length - 1;
        expect(backend.deviceFeeds['opt.decoder']).toBe(steps * present.length);
        const beams = beamsOf(rec);
        // beam search: expanding to beams and every step's choice ran on the device, once per reorder
        expect(backend.deviceFeeds['opt.reorder'] ?? 0).toBe(beams > 1 ? (steps + 1) * present.length : 0);
        expect(backend.made.length).toBeGreaterThan(0);
        expect(backend.made.filter((t) => !t.disposed)).toHaveLength(0);
      } finally {
        await adapter.release();
      }
    });
  }

  it('reorderCache refuses rows the cache does not have, and a device cache without a backend', async () => {
    const backend = new FakeDeviceBackend(createNodeBackend());
    const graphs = tiny.graphs;
    const loaded = await OptAdapter.load(tiny.config, graphs, backend);
    const prompt = tiny.json.cases[0].input_ids;
    const embeds = await loaded.embed(ids([prompt]));
    const { cache } = await loaded.prefill(embeds, ones(1, prompt.length));
    await expect(loaded.reorderCache(cache, [0, 1])).rejects.toMatchObject({
      code: 'E_CACHE',
      message: 'reorderCache: row 1 is not a row of the cache (1 rows)',
    });
    const bare = new OptAdapter(tiny.config, {
      embed: await backend.load(graphs.embed),
      prefill: await backend.load(graphs.prefill),
      steps: { step: await backend.load(graphs.step) },
    });
    const err = await bare.reorderCache(cache, [0, 0]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptError);
    expect(err).toMatchObject({ code: 'E_CACHE', message: expect.stringContaining('OptAdapter.load') });
    await loaded.releaseCache(cache);
    await Promise.all([loaded.release(), bare.release()]);
  });

  it('reorderCache keeps a cache whose rows all stay in place, running nothing and freeing nothing', async () => {
    const backend = new FakeDeviceBackend(createNodeBackend());
    const loaded = await OptAdapter.load(tiny.config, tiny.graphs, backend);
    const prompt = tiny.json.cases[0].input_ids;
    const { cache } = await loaded.prefill(await loaded.embed(ids([prompt, prompt])), ones(2, prompt.length));
    expect(await loaded.reorderCache(cache, [0, 1])).toBe(cache);
    expect(backend.loads.map((l) => l.graph)).not.toContain('opt.reorder');
    expect(backend.made.filter((t) => t.disposed)).toHaveLength(0);
    const swapped = await loaded.reorderCache(cache, [1, 0]);
    expect(swapped).not.toBe(cache);
    // one run of the reorder graph, fed every layer's keys and values from the device
    expect(backend.deviceFeeds['opt.reorder']).toBe(2 * tiny.config.numHiddenLayers);
    await loaded.releaseCache(swapped);
    await loaded.release();
  });
});

describe('the row-gather graph', () => {
  it('picks and repeats rows of several tensors of different shapes in one run, like the CPU gather', async () => {
    const a = float32(
      [3, 2, 4],
      Array.from({ length: 24 }, (_, i) => i * 0.5 - 3),
    );
    const b = float32(
      [3, 5],
      Array.from({ length: 15 }, (_, i) => -i),
    );
    const graph = buildRowGather('test.reorder', [
      { dtype: 'float32', rank: 3 },
      { dtype: 'float32', rank: 2 },
    ]);
    expect(graph.inputs.map((io) => `${io.name}[${io.dims}]`)).toEqual([
      'rows[rows]',
      'x0[x0_d0,x0_d1,x0_d2]',
      'x1[x1_d0,x1_d1]',
    ]);
    const rows = [2, 2, 0, 1];
    const session = await createNodeBackend().load(graph);
    const out = await session.run({ rows: int64([rows.length], rows), x0: a, x1: b });
    expect(out.y0).toEqual(gather(a, 0, rows));
    expect(out.y1).toEqual(gather(b, 0, rows));
    await session.release();
  });

  it('never loads a graph for CPU tensors', async () => {
    const refuse: Backend = {
      name: 'refuse',
      capabilities: createNodeBackend().capabilities,
      load: async () => {
        throw new Error('no graph should be loaded for CPU tensors');
      },
    };
    const a = float32([2, 3], [1, 2, 3, 4, 5, 6]);
    const [moved] = await new DeviceRowGather(refuse, 'test').gather([a], [1, 1, 0]);
    expect(moved).toEqual(float32([3, 3], [4, 5, 6, 4, 5, 6, 1, 2, 3]));
  });
});
