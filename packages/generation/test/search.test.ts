/**
 * Greedy and beam search against expectations computed independently: greedy by
 * following argmax by hand, beam search by enumerating every hypothesis of a tiny
 * vocabulary (with enough beams, beam search must find the exact best).
 */
import { describe, expect, it } from 'vitest';
import { generate } from '../src/index.js';
import { bigramLogits, historyLogits, logSoftmax, ToyLm, toyInputs } from './helpers/toy-lm.js';

function greedyByHand(
  fn: (h: number[]) => ArrayLike<number>,
  prompt: number[],
  steps: number,
  eos?: number,
): number[] {
  const h = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const row = Array.from(fn(h));
    const tok = row.indexOf(Math.max(...row));
    out.push(tok);
    h.push(tok);
    if (tok === eos) break;
  }
  return out;
}

/** Every hypothesis up to `maxNew` tokens (ending at EOS or at the length limit) with its score. */
function allHypotheses(
  fn: (h: number[]) => ArrayLike<number>,
  vocab: number,
  prompt: number[],
  maxNew: number,
  lp: number,
  eos?: number,
) {
  const out: { tokens: number[]; score: number }[] = [];
  const walk = (tokens: number[], sum: number) => {
    const lps = logSoftmax(fn([...prompt, ...tokens]));
    for (let v = 0; v < vocab; v++) {
      const next = [...tokens, v];
      const s = sum + lps[v];
      if (v === eos || next.length === maxNew) out.push({ tokens: next, score: s / next.length ** lp });
      else walk(next, s);
    }
  };
  walk([], 0);
  return out.sort((a, b) => b.score - a.score);
}

describe('greedy search', () => {
  it('follows the argmax token by token', async () => {
    const fn = bigramLogits(7, 1);
    const lm = new ToyLm(7, fn);
    const out = await generate(lm, toyInputs([[3, 4]]), { maxNewTokens: 6 });
    expect(out.sequences).toEqual([greedyByHand(fn, [3, 4], 6)]);
    expect(out.sequencesScores).toBeUndefined();
    expect(lm.calls.prefill).toBe(1);
    expect(lm.calls.step).toBe(5); // the last token is chosen, never fed
  });

  it('stops at EOS; in a batch, rows that finished continue with the pad id', async () => {
    // row history ending in 1 -> EOS (2) next; otherwise 1 is best
    const fn = (h: readonly number[]) =>
      h[h.length - 1] === 1 ? [0, 0, 5, 0] : h[h.length - 1] === 3 ? [0, 0, 0, 5] : [0, 5, 0, 0];
    const lm = new ToyLm(4, fn);
    const out = await generate(lm, toyInputs([[0], [3]]), { maxNewTokens: 5, eosTokenId: 2, padTokenId: 0 });
    expect(out.sequences).toEqual([
      [1, 2, 0, 0, 0],
      [3, 3, 3, 3, 3],
    ]);
    const alone = await generate(lm, toyInputs([[0]]), { maxNewTokens: 5, eosTokenId: 2, padTokenId: 0 });
    expect(alone.sequences).toEqual([[1, 2]]);
  });

  it('left-padded batches give each row what it gives alone', async () => {
    const fn = bigramLogits(9, 7);
    const lm = new ToyLm(9, fn);
    const prompts = [[1, 2, 3, 4], [5], [6, 7]];
    const batch = await generate(lm, toyInputs(prompts, 8), { maxNewTokens: 5 });
    for (let r = 0; r < prompts.length; r++) {
      const alone = await generate(lm, toyInputs([prompts[r]]), { maxNewTokens: 5 });
      expect(batch.sequences[r]).toEqual(alone.sequences[0]);
    }
  });

  it('defaults to 20 new tokens, capped by maxPositions', async () => {
    const lm = new ToyLm(5, bigramLogits(5, 3));
    expect((await generate(lm, toyInputs([[1, 2]]))).sequences[0]).toHaveLength(20);
    const short = new ToyLm(5, bigramLogits(5, 3), 'decoder-only', 12);
    expect((await generate(short, toyInputs([[1, 2]]))).sequences[0]).toHaveLength(10);
    // maxLength counts the prompt ids
    expect((await generate(lm, toyInputs([[1, 2]]), { maxLength: 7 })).sequences[0]).toHaveLength(5);
    // and maxNewTokens wins over it
    expect(
      (await generate(lm, toyInputs([[1, 2]]), { maxLength: 7, maxNewTokens: 3 })).sequences[0],
    ).toHaveLength(3);
  });

  it('encoder-decoder: the sequence starts with the decoder start token; processors see decoder ids only', async () => {
    const fn = bigramLogits(6, 11);
    const lm = new ToyLm(6, fn, 'encoder-decoder');
    const out = await generate(lm, toyInputs([[4, 5]]), { maxNewTokens: 4 });
    expect(out.sequences).toEqual([[0, ...greedyByHand(fn, [4, 5, 0], 4)]]);
    // maxLength counts the decoder sequence (start token included)
    expect((await generate(lm, toyInputs([[4, 5]]), { maxLength: 4 })).sequences[0]).toHaveLength(4);
  });

  it('maxNewTokens 0 returns empty continuations without running the model', async () => {
    const lm = new ToyLm(5, bigramLogits(5, 3));
    expect(await generate(lm, toyInputs([[1], [2]]), { maxNewTokens: 0 })).toEqual({ sequences: [[], []] });
    expect(lm.calls.prefill).toBe(0);
  });
});

describe('beam search', () => {
  it('with a beam per prefix finds the exact best hypothesis, and the next best in order', async () => {
    const vocab = 3;
    const fn = historyLogits(vocab, 5);
    const lm = new ToyLm(vocab, fn);
    const best = allHypotheses(fn, vocab, [1], 3, 1);
    const out = await generate(lm, toyInputs([[1]]), {
      maxNewTokens: 3,
      numBeams: 27,
      numReturnSequences: 5,
    });
    expect(out.sequences).toEqual(best.slice(0, 5).map((h) => h.tokens));
    out.sequencesScores!.forEach((s, i) => {
      expect(s).toBeCloseTo(best[i].score, 5);
    });
    expect(lm.calls.prefill).toBe(1);
  });

  for (const lp of [0, 1, 2, -1]) {
    it(`with EOS, earlyStopping 'never' and lengthPenalty ${lp}: the best of every finished hypothesis`, async () => {
      const vocab = 3;
      const fn = historyLogits(vocab, 40 + lp, 2);
      const lm = new ToyLm(vocab, fn);
      const best = allHypotheses(fn, vocab, [1], 3, lp, 0);
      const out = await generate(lm, toyInputs([[1]]), {
        maxNewTokens: 3,
        numBeams: 12,
        eosTokenId: 0,
        padTokenId: 2,
        earlyStopping: 'never',
        lengthPenalty: lp,
      });
      const want = best[0].tokens;
      expect(out.sequences[0].slice(0, want.length)).toEqual(want);
      expect(out.sequencesScores![0]).toBeCloseTo(best[0].score, 5);
    });
  }

  it('scores a hypothesis that ends in EOS by its length including the EOS, and pads it', async () => {
    // from the prompt: token 1 (p=.9) then EOS certain; the alternative 2 keeps going at p ~ 1/3
    const fn = (h: readonly number[]) => {
      const last = h[h.length - 1];
      if (last === 1) return [20, -20, -20];
      if (last === 3) return [Math.log(0.05), Math.log(0.9), Math.log(0.05)];
      return [-20, 0, 0];
    };
    const lm = new ToyLm(3, fn);
    const out = await generate(lm, toyInputs([[3]]), {
      maxNewTokens: 4,
      numBeams: 2,
      eosTokenId: 0,
      padTokenId: 2,
    });
    expect(out.sequences).toEqual([[1, 0]]);
    const expected = (logSoftmax(fn([3]))[1] + logSoftmax(fn([3, 1]))[0]) / 2;
    expect(out.sequencesScores![0]).toBeCloseTo(expected, 5);
  });

  it('earlyStopping true stops once numBeams hypotheses finished; false keeps searching while it can improve', async () => {
    const fn = bigramLogits(4, 99, 2);
    const runs: Record<string, number> = {};
    for (const earlyStopping of [true, false, 'never'] as const) {
      const lm = new ToyLm(4, fn);
      await generate(lm, toyInputs([[1]]), { maxNewTokens: 12, numBeams: 2, eosTokenId: 0, earlyStopping });
      runs[String(earlyStopping)] = lm.calls.step;
    }
    expect(runs.true).toBeLessThanOrEqual(runs.false);
    expect(runs.false).toBeLessThanOrEqual(runs.never);
  });

  it('batches: each row gets what it gets alone, and its beams share one prefill', async () => {
    const fn = bigramLogits(8, 21);
    const lm = new ToyLm(8, fn);
    const prompts = [[1, 2, 3], [4]];
    const batch = await generate(lm, toyInputs(prompts, 7), {
      maxNewTokens: 4,
      numBeams: 3,
      numReturnSequences: 2,
      eosTokenId: 5,
    });
    expect(lm.calls.prefill).toBe(1);
    expect(batch.sequences).toHaveLength(4);
    for (let r = 0; r < prompts.length; r++) {
      const alone = await generate(lm, toyInputs([prompts[r]]), {
        maxNewTokens: 4,
        numBeams: 3,
        numReturnSequences: 2,
        eosTokenId: 5,
      });
      const width = batch.sequences[0].length;
      const padded = alone.sequences.map((s) => [...s, ...Array(width - s.length).fill(5)]);
      expect(batch.sequences.slice(2 * r, 2 * r + 2)).toEqual(padded);
      expect(batch.sequencesScores!.slice(2 * r, 2 * r + 2)).toEqual(alone.sequencesScores);
    }
  });

  it('numBeams 1 is greedy search', async () => {
    const fn = bigramLogits(6, 8);
    const a = await generate(new ToyLm(6, fn), toyInputs([[2]]), { maxNewTokens: 5, numBeams: 1 });
    expect(a.sequences).toEqual([greedyByHand(fn, [2], 5)]);
  });
});
