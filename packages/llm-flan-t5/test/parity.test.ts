import { createNodeBackend } from '@blip2/backend-node';
import { mergeQueryEmbeds } from '@blip2/generation';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { int64, maxAbsDiff, reshape, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildT5, T5Adapter } from '../src/index.js';
import { readReference, tinyT5 } from './helpers.js';

const { dir, blip2, config, reference } = tinyT5();
const ref = await readReference(dir);
let adapter: T5Adapter;
let weights: Awaited<ReturnType<typeof openWeightsFromDir>>;

beforeAll(async () => {
  weights = await openWeightsFromDir(dir);
  adapter = await T5Adapter.load(config, buildT5(config, weights), createNodeBackend());
});
// the weight files' handles are closed here, not left to the garbage collector (DEP0137)
afterAll(async () => {
  await adapter?.release();
  await weights?.close();
});

/** The fixture case's prompt as embeddings: text embeddings with the reference query embeddings at <image>. */
async function caseEmbeds(i: number): Promise<{ embeds: Tensor<'float32'>; mask: Tensor<'int64'> }> {
  const ids = reference.cases[i].input_ids;
  const inputIds = int64([1, ids.length], ids);
  const query = ref(`case${i}/language_projection`);
  const embeds = mergeQueryEmbeds(
    await adapter.embed(inputIds),
    inputIds,
    reshape(query, [1, ...query.dims]),
    blip2.imageTokenIndex as number,
  );
  return { embeds, mask: int64([1, ids.length], new Array(ids.length).fill(1)) };
}

describe('T5 against the tiny-blip2-t5 reference', () => {
  for (let i = 0; i < reference.cases.length; i++) {
    it(`case${i}: encoder last hidden state and decoder logits within 1e-4`, async () => {
      const { embeds, mask } = await caseEmbeds(i);
      const { lastHiddenState } = await adapter.encode(embeds, mask);
      const expectedEnc = ref(`case${i}/t5_encoder_last_hidden_state`);
      const encDiff = maxAbsDiff(reshape(lastHiddenState, expectedEnc.dims), expectedEnc);
      expect(encDiff).toBeLessThan(1e-4);

      // full forward of the fixture's decoder_input_ids in one decoder call (cache of length 0)
      const dec = reference.cases[i].decoder_input_ids;
      const { logits } = await adapter.decode(
        int64([1, dec.length], dec),
        await adapter.encoderCache(embeds, mask),
      );
      const expected = ref(`case${i}/logits`);
      const logitsDiff = maxAbsDiff(reshape(logits, expected.dims), expected);
      expect(logitsDiff).toBeLessThan(1e-4);
      console.log(
        `case${i}: encoder max|diff| ${encDiff.toExponential(2)}, logits max|diff| ${logitsDiff.toExponential(2)}`,
      );
    });
  }

  it('step by step with the cache gives the full-forward logits of every position', async () => {
    const { embeds, mask } = await caseEmbeds(0);
    const dec = reference.cases[0].decoder_input_ids;
    const full = await adapter.decode(int64([1, dec.length], dec), await adapter.encoderCache(embeds, mask));
    const V = config.vocabSize;
    let out = await adapter.prefill(embeds, mask);
    expect(adapter.decoderStartTokenId).toBe(dec[0]);
    for (let t = 0; t < dec.length; t++) {
      if (t > 0) out = await adapter.step(int64([1, 1], [dec[t]]), out.cache);
      expect(out.logits.dims).toEqual([1, 1, V]);
      expect(out.cache.steps).toBe(t + 1);
      expect(out.cache.selfAttentionCache.keys[0].dims).toEqual([1, config.numHeads, t + 1, config.dKv]);
      const row = {
        dtype: 'float32' as const,
        dims: [V],
        data: full.logits.data.subarray(t * V, (t + 1) * V),
      };
      expect(maxAbsDiff({ dtype: 'float32', dims: [V], data: out.logits.data }, row)).toBeLessThan(1e-5);
    }
  });
});
