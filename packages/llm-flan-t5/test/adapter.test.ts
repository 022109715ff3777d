import { createNodeBackend } from '@blip2/backend-node';
import { mergeQueryEmbeds } from '@blip2/generation';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { concat, float32, int64, lastAxisRow, maxAbsDiff, reshape, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildT5, T5Adapter } from '../src/index.js';
import { readReference, tinyT5 } from './helpers.js';

const { dir, blip2, config, reference } = tinyT5();
const ref = await readReference(dir);
const imageTokenId = blip2.imageTokenIndex as number;
const V = config.vocabSize;
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

/** Case `i`'s prompt, right-padded to `length` with the pad id 0 and mask 0. */
async function prompt(i: number, length: number) {
  const ids = reference.cases[i].input_ids;
  const padded = [...ids, ...new Array(length - ids.length).fill(config.padTokenId)];
  const inputIds = int64([1, length], padded);
  const q = ref(`case${i}/language_projection`);
  const embeds = mergeQueryEmbeds(
    await adapter.embed(inputIds),
    inputIds,
    reshape(q, [1, ...q.dims]),
    imageTokenId,
  );
  return {
    embeds,
    mask: int64(
      [1, length],
      padded.map((_, t) => (t < ids.length ? 1 : 0)),
    ),
  };
}

async function batchOf(cases: number[]) {
  const length = Math.max(...cases.map((i) => reference.cases[i].input_ids.length));
  const rows = await Promise.all(cases.map((i) => prompt(i, length)));
  return { embeds: concat(rows.map((r) => r.embeds)), mask: concat(rows.map((r) => r.mask)) };
}

const row = (t: Tensor<'float32'>, r: number) => float32([V], lastAxisRow(t, r));

describe('T5Adapter', () => {
  it('pads on the right: a padded row decodes as the same prompt alone', async () => {
    const batch = await batchOf([1, 2]); // 12 and 6 tokens
    const alone = await prompt(2, reference.cases[2].input_ids.length);
    const b = await adapter.prefill(batch.embeds, batch.mask);
    const a = await adapter.prefill(alone.embeds, alone.mask);
    expect(b.logits.dims).toEqual([2, 1, V]);
    expect(maxAbsDiff(row(b.logits, 1), row(a.logits, 0))).toBeLessThan(1e-5);
    const b2 = await adapter.step(int64([2, 1], [7, 7]), b.cache);
    const a2 = await adapter.step(int64([1, 1], [7]), a.cache);
    expect(maxAbsDiff(row(b2.logits, 1), row(a2.logits, 0))).toBeLessThan(1e-5);
  });

  it('expands to beams once, then reorders only the self-attention cache within a batch row', async () => {
    const batch = await batchOf([0, 1]);
    const { cache } = await adapter.prefill(batch.embeds, batch.mask);
    const beams = await adapter.reorderCache(cache, [0, 0, 0, 1, 1, 1]);
    expect(beams.sourceRows).toEqual([0, 0, 0, 1, 1, 1]);
    expect(beams.crossAttentionCache.keys[0].dims).toEqual([
      6,
      config.numHeads,
      batch.embeds.dims[1],
      config.dKv,
    ]);
    expect(beams.encoderAttentionMask.dims).toEqual([6, batch.embeds.dims[1]]);
    const tokens = [5, 9, 13, 21, 34, 55];
    const s1 = await adapter.step(int64([6, 1], tokens), beams);

    const within = [2, 0, 1, 5, 3, 4];
    const moved = await adapter.reorderCache(s1.cache, within);
    // the encoder side is shared by a batch row's beams: not moved, not copied
    expect(moved.crossAttentionCache).toBe(s1.cache.crossAttentionCache);
    expect(moved.encoderAttentionMask).toBe(s1.cache.encoderAttentionMask);
    // nor the self-attention cache: the next decoder run gathers its rows (`beam_idx`)
    expect(moved.selfAttentionCache).toBe(s1.cache.selfAttentionCache);
    expect(moved.beamIdx).toEqual(within);
    const s2 = await adapter.step(int64([6, 1], new Array(6).fill(3)), moved);

    // each reordered row continues the beam it was taken from: compare with that row run alone
    for (const r of [0, 4]) {
      const source = within[r];
      const caseIndex = source < 3 ? 0 : 1;
      const alone = await prompt(caseIndex, batch.embeds.dims[1]);
      const p = await adapter.prefill(alone.embeds, alone.mask);
      const a1 = await adapter.step(int64([1, 1], [tokens[source]]), p.cache);
      const a2 = await adapter.step(int64([1, 1], [3]), a1.cache);
      expect(maxAbsDiff(row(s2.logits, r), row(a2.logits, 0))).toBeLessThan(1e-5);
    }

    // rows taken across batch rows: the encoder side follows them
    const across = await adapter.reorderCache(s2.cache, [3, 0]);
    expect(across.sourceRows).toEqual([1, 0]);
    expect(across.crossAttentionCache.values[1].dims[0]).toBe(2);
    // row 0 now holds case1's 12-token prompt, row 1 case0's 31 tokens
    const maskRow = (r: number) =>
      Array.from(across.encoderAttentionMask.data.subarray(r * 31, (r + 1) * 31), Number);
    expect(maskRow(0)).toEqual(Array.from({ length: 31 }, (_, t) => (t < 12 ? 1 : 0)));
    expect(maskRow(1)).toEqual(new Array(31).fill(1));
    // the self-attention rows are left to the next run, which gathers rows 3 and 0 of the six
    expect(across.selfAttentionCache).toBe(s2.cache.selfAttentionCache);
    expect(across.beamIdx).toEqual([3, 0]);
    const next = await adapter.step(int64([2, 1], [8, 8]), across);
    const all = await adapter.step(int64([6, 1], new Array(6).fill(8)), s2.cache);
    expect(maxAbsDiff(row(next.logits, 0), row(all.logits, 3))).toBeLessThan(1e-5);
    expect(maxAbsDiff(row(next.logits, 1), row(all.logits, 0))).toBeLessThan(1e-5);
  });

  it('rejects bad inputs with typed errors that name the value', async () => {
    const { embeds, mask } = await prompt(2, 6);
    const err = (code: string, text: RegExp) =>
      expect.objectContaining({ name: 'T5Error', code, message: expect.stringMatching(text) });
    await expect(adapter.prefill(float32([1, 6, 5]), mask)).rejects.toThrow(
      err('E_INPUT', /float32 \[batch, tokens >= 1, 24\], got float32 \[1,6,5\]/),
    );
    await expect(adapter.prefill(embeds, int64([1, 5], [1, 1, 1, 1, 1]))).rejects.toThrow(
      err('E_INPUT', /attentionMask must be int64 \[1, 6\].*\[1,5\]/),
    );
    await expect(adapter.embed(int64([1, 2], [3, 344]))).rejects.toThrow(
      err('E_INPUT', /inputIds\[0, 1\] = 344 is outside the vocabulary \[0, 344\)/),
    );
    const { cache } = await adapter.prefill(embeds, mask);
    await expect(adapter.step(int64([2, 1], [3, 3]), cache)).rejects.toThrow(
      err('E_INPUT', /\[2,1\] must be \[1, >= 1\]/),
    );
    await expect(adapter.reorderCache(cache, [0, 1])).rejects.toThrow(
      err('E_CACHE', /row 1 is not a row of the cache \(1 rows\)/),
    );
  });

  it('reports what generation needs to drive it', () => {
    expect(adapter.kind).toBe('encoder-decoder');
    expect(adapter.decoderStartTokenId).toBe(0);
    expect(adapter.vocabSize).toBe(344);
    expect(adapter.maxPositions).toBeUndefined();
  });
});
