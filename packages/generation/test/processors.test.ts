/** Each logits processor against hand-computed rows. */
import { describe, expect, it } from 'vitest';
import {
  ForcedBOSTokenLogitsProcessor,
  ForcedEOSTokenLogitsProcessor,
  generate,
  MinLengthLogitsProcessor,
  MinNewTokensLengthLogitsProcessor,
  NoBadWordsLogitsProcessor,
  NoRepeatNGramLogitsProcessor,
  RepetitionPenaltyLogitsProcessor,
  TemperatureLogitsWarper,
  TopKLogitsWarper,
  TopPLogitsWarper,
} from '../src/index.js';
import { ToyLm, toyInputs } from './helpers/toy-lm.js';

const I = Number.NEGATIVE_INFINITY;
const run = (
  p: { process(ids: readonly number[], s: Float32Array): void },
  ids: number[],
  scores: number[],
) => {
  const s = Float32Array.from(scores);
  p.process(ids, s);
  return Array.from(s);
};

describe('logits processors', () => {
  it('repetition penalty divides positive and multiplies negative scores, once per distinct id', () => {
    expect(run(new RepetitionPenaltyLogitsProcessor(2), [1, 2, 2, 1], [1, 3, -1, 4])).toEqual([
      1, 1.5, -2, 4,
    ]);
  });
  it('no-repeat n-gram bans the followers of earlier occurrences of the last n-1 tokens', () => {
    // bigrams so far: (1,2) (2,3) (3,1) (1,2); the row ends in 2 -> 3 is banned
    expect(run(new NoRepeatNGramLogitsProcessor(2), [1, 2, 3, 1, 2], [0, 0, 0, 0])).toEqual([0, 0, 0, I]);
    // trigram: last two (1,2) seen before followed by 3
    expect(run(new NoRepeatNGramLogitsProcessor(3), [1, 2, 3, 1, 2], [0, 0, 0, 0])).toEqual([0, 0, 0, I]);
    expect(run(new NoRepeatNGramLogitsProcessor(3), [1], [0, 0, 0, 0])).toEqual([0, 0, 0, 0]);
  });
  it('bad words: single tokens always, sequences when the row ends with their prefix; EOS never', () => {
    const p = new NoBadWordsLogitsProcessor([[1], [2, 3], [0]], [0]);
    expect(run(p, [4, 2], [0, 0, 0, 0, 0])).toEqual([0, I, 0, I, 0]);
    expect(run(p, [2, 4], [0, 0, 0, 0, 0])).toEqual([0, I, 0, 0, 0]);
  });
  it('min length counts the whole sequence; min new tokens the part after the prompt', () => {
    expect(run(new MinLengthLogitsProcessor(3, [1, 2]), [5, 5], [0, 0, 0])).toEqual([0, I, I]);
    expect(run(new MinLengthLogitsProcessor(3, [1]), [5, 5, 5], [0, 0, 0])).toEqual([0, 0, 0]);
    expect(run(new MinNewTokensLengthLogitsProcessor(2, 1, [1]), [5, 5], [0, 0, 0])).toEqual([0, I, 0]);
    expect(run(new MinNewTokensLengthLogitsProcessor(2, 1, [1]), [5, 5, 5], [0, 0, 0])).toEqual([0, 0, 0]);
  });
  it('forced BOS at the first decoder step, forced EOS at the last', () => {
    expect(run(new ForcedBOSTokenLogitsProcessor(2), [0], [5, 6, 7])).toEqual([I, I, 0]);
    expect(run(new ForcedBOSTokenLogitsProcessor(2), [0, 1], [5, 6, 7])).toEqual([5, 6, 7]);
    expect(run(new ForcedEOSTokenLogitsProcessor(4, [1]), [0, 1, 2], [5, 6, 7])).toEqual([I, 0, I]);
    expect(run(new ForcedEOSTokenLogitsProcessor(4, [1]), [0, 1], [5, 6, 7])).toEqual([5, 6, 7]);
  });
  it('temperature, top-k (ties at the threshold kept), top-p (smallest nucleus)', () => {
    expect(run(new TemperatureLogitsWarper(2), [], [2, -4])).toEqual([1, -2]);
    expect(run(new TopKLogitsWarper(2, 1), [], [1, 3, 2, 3])).toEqual([I, 3, I, 3]);
    expect(run(new TopKLogitsWarper(2, 1), [], [1, 3, 2, 0])).toEqual([I, 3, 2, I]);
    expect(run(new TopKLogitsWarper(1, 3), [], [1, 3, 2, 0])).toEqual([1, 3, 2, I]);
    // probabilities .5 .3 .15 .05: top-p .8 keeps {.5, .3}; .81 also keeps .15
    const logits = [0.5, 0.3, 0.15, 0.05].map(Math.log);
    const f = (x: number[]) => x.map((v) => (v === I ? I : 'kept'));
    expect(f(run(new TopPLogitsWarper(0.8, 1), [], logits))).toEqual(['kept', 'kept', I, I]);
    expect(f(run(new TopPLogitsWarper(0.81, 1), [], logits))).toEqual(['kept', 'kept', 'kept', I]);
    expect(f(run(new TopPLogitsWarper(0.1, 2), [], logits))).toEqual(['kept', 'kept', I, I]);
  });
});

describe('processors inside generate', () => {
  // the toy always prefers 1, then 2, then EOS 0
  const fn = () => [1, 3, 2, -5];
  it('min new tokens holds EOS back; repetition penalty sees the prompt ids', async () => {
    const eosFirst = () => [3, 1, 0, -5];
    const lm = new ToyLm(4, eosFirst);
    expect((await generate(lm, toyInputs([[3]]), { maxNewTokens: 4, eosTokenId: 0 })).sequences).toEqual([
      [0],
    ]);
    expect(
      (await generate(lm, toyInputs([[3]]), { maxNewTokens: 4, eosTokenId: 0, minNewTokens: 2 })).sequences,
    ).toEqual([[1, 1, 0]]);
    // prompt [3] is whole length 1: minLength 3 means 2 new tokens before EOS
    expect(
      (await generate(lm, toyInputs([[3]]), { maxNewTokens: 4, eosTokenId: 0, minLength: 3 })).sequences,
    ).toEqual([[1, 1, 0]]);
    // the penalty on prompt token 1 (3 / 4 = .75 < 1) makes 2 win at once
    const rep = new ToyLm(4, fn);
    expect(
      (await generate(rep, toyInputs([[1]]), { maxNewTokens: 1, repetitionPenalty: 4 })).sequences,
    ).toEqual([[2]]);
  });
  it('no-repeat n-gram and bad words change what greedy picks', async () => {
    const lm = new ToyLm(4, fn);
    expect(
      (await generate(lm, toyInputs([[3]]), { maxNewTokens: 4, noRepeatNgramSize: 2 })).sequences,
    ).toEqual([[1, 1, 2, 1]]);
    expect((await generate(lm, toyInputs([[3]]), { maxNewTokens: 3, badWordsIds: [[1]] })).sequences).toEqual(
      [[2, 2, 2]],
    );
    expect(
      (await generate(lm, toyInputs([[3]]), { maxNewTokens: 3, badWordsIds: [[1, 1]] })).sequences,
    ).toEqual([[1, 2, 1]]);
  });
  it('forced BOS and EOS on an encoder-decoder model', async () => {
    const lm = new ToyLm(4, fn, 'encoder-decoder');
    const out = await generate(lm, toyInputs([[3]]), {
      maxNewTokens: 4,
      forcedBosTokenId: 3,
      forcedEosTokenId: 0,
      eosTokenId: 0,
    });
    expect(out.sequences).toEqual([[0, 3, 1, 1, 0]]);
  });
});
