/** The seeded sampler: reproducible, greedy at top-k 1, and distributed as the softmax says. */
import { describe, expect, it } from 'vitest';
import { createRng, generate, Xoshiro128 } from '../src/index.js';
import { bigramLogits, ToyLm, toyInputs } from './helpers/toy-lm.js';

/** Pearson chi-square of observed counts against expected probabilities. */
function chiSquare(counts: number[], probs: number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  return counts.reduce((s, c, i) => s + (c - n * probs[i]) ** 2 / (n * probs[i]), 0);
}
const softmax = (x: number[]) => {
  const e = x.map((v) => Math.exp(v - Math.max(...x)));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
};

describe('xoshiro128**', () => {
  it('is a pure function of the seed, in [0, 1), and roughly uniform', () => {
    const a = new Xoshiro128(42);
    const b = new Xoshiro128(42);
    const c = new Xoshiro128(43);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(Array.from({ length: 1000 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c.next())).not.toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.03);
    // high seed bits matter too
    expect(new Xoshiro128(2 ** 40).next()).not.toBe(new Xoshiro128(0).next());
    expect(createRng().next()).toBeGreaterThanOrEqual(0);
  });
});

describe('sampling', () => {
  const fn = bigramLogits(12, 4, 2);
  it('same seed, same tokens; another seed, other tokens', async () => {
    const lm = new ToyLm(12, fn);
    const opts = { doSample: true, maxNewTokens: 30, seed: 7 };
    const a = await generate(lm, toyInputs([[1]]), opts);
    const b = await generate(lm, toyInputs([[1]]), opts);
    const c = await generate(lm, toyInputs([[1]]), { ...opts, seed: 8 });
    expect(a.sequences).toEqual(b.sequences);
    expect(c.sequences).not.toEqual(a.sequences);
  });

  it('top-k 1 is greedy search', async () => {
    const lm = new ToyLm(12, fn);
    const greedy = await generate(lm, toyInputs([[1], [5]]), { maxNewTokens: 15 });
    for (const seed of [1, 2, 3]) {
      const sampled = await generate(lm, toyInputs([[1], [5]]), {
        doSample: true,
        topK: 1,
        seed,
        maxNewTokens: 15,
      });
      expect(sampled.sequences).toEqual(greedy.sequences);
    }
  });

  it('numReturnSequences samples each row that many times from one prefill', async () => {
    const lm = new ToyLm(12, fn);
    const out = await generate(lm, toyInputs([[1], [5]]), {
      doSample: true,
      seed: 3,
      maxNewTokens: 6,
      numReturnSequences: 4,
    });
    expect(out.sequences).toHaveLength(8);
    expect(lm.calls.prefill).toBe(1);
    expect(new Set(out.sequences.slice(0, 4).map(String)).size).toBeGreaterThan(1);
  });

  it('first-token frequencies over 20000 draws follow softmax(logits / temperature) (chi-square, 4 dof)', async () => {
    const logits = [1, 0.2, -0.5, 0.7, -2];
    for (const temperature of [1, 0.5, 2]) {
      const lm = new ToyLm(5, () => logits);
      const out = await generate(lm, toyInputs([[1]]), {
        doSample: true,
        topK: 0,
        temperature,
        seed: 1234,
        maxNewTokens: 1,
        numReturnSequences: 20000,
      });
      const counts = [0, 0, 0, 0, 0];
      for (const s of out.sequences) counts[s[0]]++;
      // 18.47 is the 0.999 quantile of chi-square with 4 degrees of freedom
      expect(chiSquare(counts, softmax(logits.map((v) => v / temperature)))).toBeLessThan(18.47);
      // and a wrong temperature is rejected by the same test
      expect(chiSquare(counts, softmax(logits.map((v) => v / (temperature * 1.5))))).toBeGreaterThan(18.47);
    }
  });

  it('top-k and top-p never draw outside what they keep', async () => {
    const probs = [0.4, 0.3, 0.2, 0.06, 0.04];
    const lm = new ToyLm(5, () => probs.map(Math.log));
    const k2 = await generate(lm, toyInputs([[1]]), {
      doSample: true,
      topK: 2,
      seed: 5,
      maxNewTokens: 1,
      numReturnSequences: 2000,
    });
    expect(new Set(k2.sequences.map((s) => s[0]))).toEqual(new Set([0, 1]));
    const p = await generate(lm, toyInputs([[1]]), {
      doSample: true,
      topK: 0,
      topP: 0.85,
      seed: 5,
      maxNewTokens: 1,
      numReturnSequences: 2000,
    });
    expect(new Set(p.sequences.map((s) => s[0]))).toEqual(new Set([0, 1, 2]));
  });

  it('beam sampling is seeded too and returns scored hypotheses', async () => {
    const lm = new ToyLm(12, fn);
    const opts = { doSample: true, numBeams: 3, seed: 9, maxNewTokens: 5, numReturnSequences: 2 };
    const a = await generate(lm, toyInputs([[1]]), opts);
    const b = await generate(lm, toyInputs([[1]]), opts);
    expect(a).toEqual(b);
    expect(a.sequencesScores![0]).toBeGreaterThanOrEqual(a.sequencesScores![1]);
  });
});
