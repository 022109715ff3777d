import { thrown as thrownBy } from '@blip2/fixtures';
import { float32, int64 } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { GenerationError, mergeQueryEmbeds, prependQueryEmbeds } from '../src/index.js';

const ids = (rows: number[][]) => int64([rows.length, rows[0].length], rows.flat());
const thrown = (fn: () => unknown) => thrownBy(fn, GenerationError);

describe('query embeddings in the prompt', () => {
  it('merges query embeddings only where the image tokens are, and checks their count', () => {
    const text = float32([1, 4, 2], [1, 1, 2, 2, 3, 3, 4, 4]);
    const query = float32([1, 2, 2], [9, 9, 8, 8]);
    const merged = mergeQueryEmbeds(text, ids([[7, 0, 7, 1]]), query, 7);
    expect(Array.from(merged.data)).toEqual([9, 9, 2, 2, 8, 8, 4, 4]);
    expect(Array.from(text.data)).toEqual([1, 1, 2, 2, 3, 3, 4, 4]); // input untouched
    const err = thrown(() => mergeQueryEmbeds(text, ids([[7, 0, 0, 1]]), query, 7));
    expect(err.code).toBe('E_IMAGE_TOKENS');
    expect(err.message).toMatch(/row 0 holds 1 image tokens \(id 7\) but there are 2 query embeddings/);
    expect(thrown(() => mergeQueryEmbeds(text, ids([[7, 7, 0]]), query, 7)).code).toBe('E_INPUT');
  });

  it('prepends query embeddings for checkpoints without image tokens', () => {
    const text = float32([1, 2, 2], [1, 1, 2, 2]);
    const query = float32([1, 1, 2], [9, 9]);
    const { inputsEmbeds, attentionMask } = prependQueryEmbeds(query, text, int64([1, 2], [0, 1]));
    expect(Array.from(inputsEmbeds.data)).toEqual([9, 9, 1, 1, 2, 2]);
    expect(Array.from(attentionMask.data, Number)).toEqual([1, 0, 1]);
  });
});
