/**
 * The adapter's device path without a GPU: a backend that wraps onnxruntime-node CPU
 * and hands back the outputs named in keepOnDevice as "GPU" tensors (opaque handles it
 * alone reads back), as onnxruntime-web's WebGPU provider does. Greedy and beam search
 * must give the fixture's tokens with the cross-attention keys/values and the
 * self-attention cache fed from the device at every step, and every handle must be
 * disposed by the end (the shared cross-attention ones included).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { FakeDeviceBackend } from '@blip2/fixtures';
import { generate, generationOptionsFromConfig, mergeQueryEmbeds } from '@blip2/generation';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { int64, reshape } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { buildT5, T5Adapter } from '../src/index.js';
import { readReference, tinyT5 } from './helpers.js';

const { dir, blip2, config, reference } = tinyT5();
const ref = await readReference(dir);
const defaults = JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'));

describe('T5 adapter with the cross-attention and self-attention caches on a device', () => {
  for (const name of ['case0/greedy', 'case0/beam4']) {
    it(`${name}: the fixture's tokens, every cache feed from the device, every buffer freed`, async () => {
      const record = reference.generate.find((r) => r.name === name);
      if (!record) throw new Error(`no record ${name}`);
      const backend = new FakeDeviceBackend(createNodeBackend());
      const weights = await openWeightsFromDir(dir);
      const adapter = await T5Adapter.load(config, buildT5(config, weights), backend);
      // which reorders beam search asked for: those keeping every beam in place move nothing
      const reorderCalls: number[][] = [];
      const reorder = adapter.reorderCache.bind(adapter);
      adapter.reorderCache = (cache, rows) => {
        reorderCalls.push([...rows]);
        return reorder(cache, rows);
      };
      try {
        const ids = reference.cases[0].input_ids;
        const inputIds = int64([1, ids.length], ids);
        const query = ref('case0/language_projection');
        const inputsEmbeds = mergeQueryEmbeds(
          await adapter.embed(inputIds),
          inputIds,
          reshape(query, [1, ...query.dims]),
          blip2.imageTokenIndex as number,
        );
        const out = await generate(
          adapter,
          {
            inputsEmbeds,
            attentionMask: int64(
              [1, ids.length],
              ids.map(() => 1),
            ),
          },
          generationOptionsFromConfig({ ...defaults, ...record.kwargs }, name),
        );
        expect(out.sequences).toEqual(record.new);

        const L = config.numDecoderLayers;
        const decoderRuns = record.new[0].length - 1;
        // cross-attention from the first decoder run on; self-attention from the second (the first has none yet)
        expect(backend.deviceFeeds['t5.decoder']).toBe(decoderRuns * 2 * L + (decoderRuns - 1) * 2 * L);
        const beams = Number(record.kwargs.num_beams ?? 1);
        if (beams > 1) {
          // expanding to beams moves the encoder side too, once; each step's choice then moves the self-attention cache
          expect(reorderCalls).toHaveLength(decoderRuns);
          let cacheRows = 1;
          const moving = reorderCalls.filter((rows) => {
            const identity = rows.length === cacheRows && rows.every((r, i) => r === i);
            cacheRows = rows.length;
            return !identity;
          }).length;
          const reorders = backend.runs['t5.reorder'];
          expect(reorders).toBe(moving);
          expect(backend.deviceFeeds['t5.reorder']).toBe(4 * L + (reorders - 1) * 2 * L);
        } else expect(backend.runs['t5.reorder']).toBeUndefined();
        expect(backend.made.length).toBeGreaterThan(0);
        expect(backend.made.filter((t) => !t.disposed)).toHaveLength(0);
      } finally {
        await adapter.release();
        await weights.close();
      }
    });
  }
});
