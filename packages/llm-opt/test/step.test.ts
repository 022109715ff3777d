import { mergeQueryEmbeds } from '@blip2/generation';
import { concat, float32, gather, int64, maxAbsDiff, slice, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ids, openTiny, type Tiny } from './tiny.js';

let tiny: Tiny;
beforeAll(async () => {
  tiny = await openTiny();
});
afterAll(async () => {
  await tiny.close();
});

/** The batch prompts of the fixture (left padded), with case0's and case1's query embeddings. */
async function paddedBatch() {
  const rec = tiny.json.generate.find((g) => g.name === 'batch/greedy_min');
  if (!rec?.input_ids || !rec.attention_mask) throw new Error('fixture has no batch record');
  const q = tiny.json.num_query_tokens;
  const d = tiny.config.hiddenSize;
  const query = concat(
    [
      await tiny.ref('case0/language_projection', [1, q, d]),
      await tiny.ref('case1/language_projection', [1, q, d]),
    ],
    0,
  );
  return { inputIds: rec.input_ids, attentionMask: rec.attention_mask, query };
}

/** Embeds `rows` of ids (prompt then continuation) and merges the query embeddings at the image tokens. */
async function promptEmbeds(rows: number[][], query: Tensor<'float32'>) {
  const inputIds = ids(rows);
  return mergeQueryEmbeds(await tiny.adapter.embed(inputIds), inputIds, query, tiny.imageTokenId);
}

/** logits [B, T, V] at position `t` -> [B, V] */
function at(logits: Tensor<'float32'>, t: number): Tensor<'float32'> {
  const [b, , v] = logits.dims;
  return float32([b, v], slice(logits, 1, t, t + 1).data);
}

/**
 * Prefill on the prompt then `continuation.length` steps, against one prefill over
 * prompt + continuation: the step graph's positions, mask and cache must agree
 * with a full forward token for token.
 */
async function stepsMatchFullForward(
  prompt: number[][],
  mask: number[][],
  continuation: number[][],
  query: Tensor<'float32'>,
) {
  const b = prompt.length;
  const t = prompt[0].length;
  const k = continuation[0].length;
  const full = prompt.map((row, i) => [...row, ...continuation[i]]);
  const fullMask = mask.map((row) => [...row, ...new Array(k).fill(1)]);
  // every position's logits of the whole sequence at once: what each step must reproduce
  const reference = {
    logits: await tiny.adapter.forward(await promptEmbeds(full, query), int64([b, t + k], fullMask.flat())),
  };

  let out = await tiny.adapter.prefill(await promptEmbeds(prompt, query), int64([b, t], mask.flat()));
  // the prefill computes the LM head at the last prompt position only
  expect(out.logits.dims).toEqual([b, 1, tiny.config.vocabSize]);
  const diffs = [maxAbsDiff(at(out.logits, 0), at(reference.logits, t - 1))];
  for (let s = 0; s < k; s++) {
    out = await tiny.adapter.step(ids(continuation.map((row) => [row[s]])), out.cache);
    expect(out.logits.dims).toEqual([b, 1, tiny.config.vocabSize]);
    // the tokens so far; a one-row step appends into free slots after them
    const { dims } = out.cache.keys[0];
    expect(out.cache.filled ?? dims[2]).toBe(t + s + 1);
    expect(dims[2]).toBeGreaterThanOrEqual(t + s + 1);
    expect([dims[0], dims[1], dims[3]]).toEqual([
      b,
      tiny.config.numAttentionHeads,
      tiny.config.hiddenSize / tiny.config.numAttentionHeads,
    ]);
    diffs.push(maxAbsDiff(at(out.logits, 0), at(reference.logits, t + s)));
  }
  return Math.max(...diffs);
}

describe('OPT step graph (KV cache) against a full forward', () => {
  it('continues a prompt token by token as a full forward over the longer sequence does', async () => {
    const prompt = tiny.json.cases[0].input_ids;
    const query = await tiny.ref('case0/language_projection', [
      1,
      tiny.json.num_query_tokens,
      tiny.config.hiddenSize,
    ]);
    const diff = await stepsMatchFullForward(
      [prompt],
      [prompt.map(() => 1)],
      [[115, 137, 317, 486, 2]],
      query,
    );
    console.log(`single row, 5 steps: max |diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-4);
  });

  it('one-row steps append in place; a cache stepped twice is copied first, so neither branch changes', async () => {
    const prompt = tiny.json.cases[0].input_ids;
    const query = await tiny.ref('case0/language_projection', [
      1,
      tiny.json.num_query_tokens,
      tiny.config.hiddenSize,
    ]);
    const prefill = async () =>
      tiny.adapter.prefill(
        await promptEmbeds([prompt], query),
        int64(
          [1, prompt.length],
          prompt.map(() => 1),
        ),
      );
    const run = async (tokens: number[]) => {
      let out = await prefill();
      for (const token of tokens) out = await tiny.adapter.step(ids([[token]]), out.cache);
      return out;
    };
    const s1 = await run([115]);
    const s2 = await tiny.adapter.step(ids([[137]]), s1.cache);
    // the same buffers, one slot more filled: nothing of the cache came out of onnxruntime
    expect(s2.cache.keys[0]).toBe(s1.cache.keys[0]);
    expect(s2.cache.filled).toBe((s1.cache.filled ?? 0) + 1);
    // s1's cache again: its next slot is s2's, so this step copies the buffers first
    const branch = await tiny.adapter.step(ids([[317]]), s1.cache);
    expect(branch.cache.keys[0]).not.toBe(s1.cache.keys[0]);
    expect(maxAbsDiff(branch.logits, (await run([115, 317])).logits)).toBe(0);
    const after = await tiny.adapter.step(ids([[5]]), s2.cache);
    expect(maxAbsDiff(after.logits, (await run([115, 137, 5])).logits)).toBe(0);
  });

  it('does the same on a left-padded batch', async () => {
    const { inputIds, attentionMask, query } = await paddedBatch();
    const diff = await stepsMatchFullForward(
      inputIds,
      attentionMask,
      [
        [115, 137, 317, 9],
        [486, 486, 137, 30],
      ],
      query,
    );
    console.log(`left-padded batch, 4 steps: max |diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-4);
  });

  it('gives a left-padded row the logits of the same prompt without padding', async () => {
    // positions come from cumsum(attention_mask): pads must shift nothing
    const { inputIds, attentionMask, query } = await paddedBatch();
    const padded = {
      logits: await tiny.adapter.forward(
        await promptEmbeds(inputIds, query),
        int64([2, inputIds[0].length], attentionMask.flat()),
      ),
    };
    const keep = attentionMask[1].flatMap((m, j) => (m ? [j] : []));
    expect(keep.length).toBeLessThan(inputIds[1].length);
    const unpaddedIds = [keep.map((j) => inputIds[1][j])];
    const row1Query = gather(query, 0, [1]);
    const alone = {
      logits: await tiny.adapter.forward(
        await promptEmbeds(unpaddedIds, row1Query),
        int64([1, keep.length], new Array(keep.length).fill(1)),
      ),
    };
    const paddedRow = gather(gather(padded.logits, 0, [1]), 1, keep);
    const diff = maxAbsDiff(paddedRow, alone.logits);
    console.log(`padded vs unpadded row: max |diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-4);
    // and the pads really changed the input: the padded row is longer than the real one
    expect(padded.logits.dims[1]).toBe(keep.length + 2);
  });

  it('reorders the cache rows (beam search) so that steps follow the chosen rows', async () => {
    const { inputIds, attentionMask, query } = await paddedBatch();
    const t = inputIds[0].length;
    const pre = await tiny.adapter.prefill(
      await promptEmbeds(inputIds, query),
      int64([2, t], attentionMask.flat()),
    );
    const expanded = await tiny.adapter.reorderCache(pre.cache, [1, 1, 0]);
    expect(expanded.attentionMask.dims).toEqual([3, t]);
    const next = await tiny.adapter.step(ids([[115], [317], [115]]), expanded);
    const row1 = await tiny.adapter.step(ids([[115]]), await tiny.adapter.reorderCache(pre.cache, [1]));
    const row0 = await tiny.adapter.step(ids([[115]]), await tiny.adapter.reorderCache(pre.cache, [0]));
    expect(maxAbsDiff(gather(next.logits, 0, [0]), row1.logits)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(gather(next.logits, 0, [2]), row0.logits)).toBeLessThanOrEqual(1e-5);
    // a different token on the same row gives different logits: the test can tell rows apart
    expect(maxAbsDiff(gather(next.logits, 0, [1]), row1.logits)).toBeGreaterThan(1e-3);
  });
});
