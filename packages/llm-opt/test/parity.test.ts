import { mergeQueryEmbeds } from '@blip2/generation';
import { maxAbsDiff, reshape, slice } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ids, ones, openTiny, type Tiny } from './tiny.js';

let tiny: Tiny;
beforeAll(async () => {
  tiny = await openTiny();
});
afterAll(async () => {
  await tiny.close();
});

describe('OPT forward and prefill against the reference (tiny-blip2-opt)', () => {
  it('reproduces the logits of every case within 1e-4 (prefill: the last position)', async () => {
    expect(tiny.json.cases.length).toBe(3);
    for (const [i, c] of tiny.json.cases.entries()) {
      const inputIds = ids([c.input_ids]);
      const t = c.input_ids.length;
      const text = await tiny.adapter.embed(inputIds);
      const query = await tiny.ref(`case${i}/language_projection`, [
        1,
        tiny.json.num_query_tokens,
        tiny.config.hiddenSize,
      ]);
      const inputsEmbeds = mergeQueryEmbeds(text, inputIds, query, tiny.imageTokenId);
      const logits = await tiny.adapter.forward(inputsEmbeds, ones(1, t));
      expect(logits.dims).toEqual([1, t, tiny.config.vocabSize]);
      const expected = await tiny.ref(`case${i}/logits`);
      const diff = maxAbsDiff(reshape(logits, [t, tiny.config.vocabSize]), expected);
      const last = (await tiny.adapter.prefill(inputsEmbeds, ones(1, t))).logits;
      expect(last.dims).toEqual([1, 1, tiny.config.vocabSize]);
      const lastDiff = maxAbsDiff(reshape(last, [1, tiny.config.vocabSize]), slice(expected, 0, t - 1, t));
      console.log(
        `case${i}: logits max |diff| ${diff.toExponential(2)}, prefill ${lastDiff.toExponential(2)}`,
      );
      expect(diff).toBeLessThanOrEqual(1e-4);
      expect(lastDiff).toBeLessThanOrEqual(1e-4);
    }
  });
});
