/**
 * The T5 variants the tiny fixture does not cover (it is gated-GELU, tied without
 * rescaling, H * d_kv = d_model), checked against a plain float64 TypeScript
 * transcription of modeling_t5.py on random weights: ReLU `DenseReluDense`,
 * the original T5's tied `lm_head` with `d_model ** -0.5`, an untied `lm_head`,
 * and H * d_kv != d_model.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import type { T5Config } from '@blip2/configs';
import { serializeSafetensors } from '@blip2/safetensors';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { float32, int64, maxAbsDiff } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { buildT5, T5Adapter } from '../src/index.js';
import { baseConfig, type Rows, randomWeights, reference, seeded } from './t5-reference.js';

const variants: { name: string; config: T5Config; lmHead: boolean }[] = [
  {
    name: 'ReLU DenseReluDense, tied lm_head scaled by d_model^-0.5, 3 heads x 4 != 10',
    config: baseConfig({}),
    lmHead: false,
  },
  {
    name: 'gated-gelu, untied lm_head, no scaling, 3 heads x 4 != 10',
    config: baseConfig({
      feedForwardProj: 'gated-gelu',
      denseActFn: 'gelu_new',
      isGatedAct: true,
      tieWordEmbeddings: false,
      scaleDecoderOutputs: false,
    }),
    lmHead: true,
  },
];

describe('T5 variants against a float64 transcription of modeling_t5.py', () => {
  variants.forEach((v, n) => {
    it(v.name, async () => {
      const weights = randomWeights(v.config, 11 + n, v.lmHead);
      const dir = mkdtempSync(join(tmpdir(), 't5-variant-'));
      const tensors = Object.fromEntries(
        [...weights].map(([name, m]) => [
          name,
          {
            dtype: 'F32' as const,
            shape: m.rows === 1 ? [m.cols] : [m.rows, m.cols],
            data: new Uint8Array(m.data.buffer),
          },
        ]),
      );
      writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
      const checkpoint = await openWeightsFromDir(dir);
      const adapter = await T5Adapter.load(v.config, buildT5(v.config, checkpoint), createNodeBackend());

      // a right-padded prompt of 14 tokens long enough to reach the logarithmic buckets
      const S = 14;
      const rand = seeded(99 + n);
      const embeds: Rows = Array.from({ length: S }, () =>
        Array.from({ length: v.config.dModel }, () => 2 * rand()),
      );
      const mask = Array.from({ length: S }, (_, t) => (t < 11 ? 1 : 0));
      const decoderIds = [0, 5, 17, 3, 3, 22, 8, 1, 12, 9, 14];
      const expected = reference(v.config, weights, embeds, mask, decoderIds);

      const embedsT = float32([1, S, v.config.dModel], embeds.flat());
      const maskT = int64([1, S], mask);
      const { lastHiddenState } = await adapter.encode(embedsT, maskT);
      const encDiff = maxAbsDiff(lastHiddenState, float32(lastHiddenState.dims, expected.encoderOut.flat()));
      expect(encDiff).toBeLessThan(1e-4);
      const full = await adapter.decode(
        int64([1, decoderIds.length], decoderIds),
        await adapter.encoderCache(embedsT, maskT),
      );
      const logitsDiff = maxAbsDiff(full.logits, float32(full.logits.dims, expected.logits.flat()));
      expect(logitsDiff).toBeLessThan(1e-4);
      // and token by token through the cache
      let out = await adapter.prefill(embedsT, maskT);
      const V = v.config.vocabSize;
      for (let t = 0; t < decoderIds.length; t++) {
        if (t > 0) out = await adapter.step(int64([1, 1], [decoderIds[t]]), out.cache);
        expect(maxAbsDiff(out.logits, float32([1, 1, V], expected.logits[t]))).toBeLessThan(1e-4);
      }
      console.log(`${v.name}: encoder ${encDiff.toExponential(2)}, logits ${logitsDiff.toExponential(2)}`);
      await adapter.release();
      await checkpoint.close();
    });
  });
});
