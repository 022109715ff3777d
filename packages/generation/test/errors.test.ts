/** Bad input: a typed error naming the culprit, thrown before the adapter runs. */
import { float32, int64 } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { GenerationError, type GenerationOptions, generate, streamGenerate } from '../src/index.js';
import { bigramLogits, ToyLm, toyInputs } from './helpers/toy-lm.js';

async function expectError(run: () => Promise<unknown>, code: string, mention: RegExp) {
  const error = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GenerationError);
  expect((error as GenerationError).code).toBe(code);
  expect((error as GenerationError).message).toMatch(mention);
}

describe('typed errors before any model call', () => {
  const cases: [string, GenerationOptions, string, RegExp][] = [
    ['numBeams 0', { numBeams: 0 }, 'E_NUM_BEAMS', /numBeams.*0/],
    ['numBeams 1.5', { numBeams: 1.5 }, 'E_NUM_BEAMS', /numBeams.*1\.5/],
    ['maxNewTokens -1', { maxNewTokens: -1 }, 'E_MAX_NEW_TOKENS', /maxNewTokens.*-1/],
    [
      'numReturnSequences > numBeams',
      { numBeams: 2, numReturnSequences: 3 },
      'E_NUM_RETURN_SEQUENCES',
      /3.*numBeams \(2\)/,
    ],
    ['numReturnSequences 0', { numReturnSequences: 0 }, 'E_NUM_RETURN_SEQUENCES', /numReturnSequences.*0/],
    ['greedy numReturnSequences 2', { numReturnSequences: 2 }, 'E_NUM_RETURN_SEQUENCES', /greedy/],
    ['temperature 0 when sampling', { doSample: true, temperature: 0 }, 'E_TEMPERATURE', /temperature.*0/],
    ['topP 0', { topP: 0 }, 'E_TOP_P', /topP.*0/],
    ['topP 1.5', { topP: 1.5 }, 'E_TOP_P', /1\.5/],
    ['topK -1', { topK: -1 }, 'E_TOP_K', /topK.*-1/],
    ['eos outside the vocabulary', { eosTokenId: 99 }, 'E_TOKEN_ID', /eosTokenId.*99/],
    ['empty bad word', { badWordsIds: [[]] }, 'E_BAD_WORDS', /badWordsIds\[0\]/],
    ['repetitionPenalty 0', { repetitionPenalty: 0 }, 'E_OPTION', /repetitionPenalty/],
    [
      'earlyStopping "sometimes"',
      { earlyStopping: 'sometimes' as never },
      'E_OPTION',
      /earlyStopping.*sometimes/,
    ],
    ['maxLength shorter than the prompt', { maxLength: 2 }, 'E_MAX_LENGTH', /prompt of 3/],
  ];
  for (const [what, options, code, mention] of cases) {
    it(what, async () => {
      const lm = new ToyLm(8, bigramLogits(8, 1));
      await expectError(() => generate(lm, toyInputs([[1, 2, 3]]), options), code, mention);
      expect(lm.calls).toEqual({ prefill: 0, step: 0, reorderCache: 0, embed: 0, releaseCache: 0 });
    });
  }

  it('numBeams whose per-step scores exceed stepMemoryBytes: refused before any model call, naming the limit', async () => {
    const lm = new ToyLm(8, bigramLogits(8, 1));
    // 2 rows x 8 scores x 12 bytes = 192 bytes; a 100-byte budget holds 1 beam
    await expectError(
      () => generate(lm, toyInputs([[1, 2, 3]]), { numBeams: 2, stepMemoryBytes: 100 }),
      'E_NUM_BEAMS',
      /numBeams 2 x batch 1 = 2 rows of 8 scores .* above the limit .*\(stepMemoryBytes\); at most 1 beams fit/,
    );
    expect(lm.calls.prefill).toBe(0);
    // the default: 100000 beams over a 50272-token vocabulary (OPT) is 56 GiB per step
    const opt = new ToyLm(50272, () => new Float32Array(50272));
    await expectError(
      () => generate(opt, toyInputs([[1]]), { numBeams: 100_000 }),
      'E_NUM_BEAMS',
      /2\.00 GiB/,
    );
    expect(opt.calls.prefill).toBe(0);
  });

  it('a prompt longer than maxPositions, or one that would run past it', async () => {
    const lm = new ToyLm(8, bigramLogits(8, 1), 'decoder-only', 4);
    await expectError(
      () => generate(lm, toyInputs([[1, 2, 3, 4, 5]]), { maxNewTokens: 1 }),
      'E_PROMPT_TOO_LONG',
      /5 positions.*4/,
    );
    await expectError(
      () => generate(lm, toyInputs([[1, 2, 3]]), { maxNewTokens: 3 }),
      'E_MAX_LENGTH',
      /3 new tokens.*4/,
    );
    expect(lm.calls.prefill).toBe(0);
    // 3 + 2 new: the second is never fed, so 4 positions suffice
    await expect(generate(lm, toyInputs([[1, 2, 3]]), { maxNewTokens: 2 })).resolves.toBeDefined();
  });

  it('batch sizes that disagree', async () => {
    const lm = new ToyLm(8, bigramLogits(8, 1));
    const two = toyInputs([[1], [2]]);
    const one = toyInputs([[1]]);
    await expectError(
      () => generate(lm, { ...two, attentionMask: one.attentionMask }),
      'E_BATCH',
      /inputsEmbeds has 2 rows, attentionMask 1/,
    );
    await expectError(() => generate(lm, { ...two, inputIds: one.inputIds }), 'E_BATCH', /inputIds 1/);
    await expectError(
      () => generate(lm, { ...one, inputIds: int64([1, 2], [1, 1]) }),
      'E_BATCH',
      /inputIds length 2 differs from inputsEmbeds length 1/,
    );
    await expectError(
      () => generate(lm, { ...one, inputsEmbeds: float32([1, 1], [1]) as never }),
      'E_INPUT',
      /inputsEmbeds must be float32 of rank 3/,
    );
    expect(lm.calls.prefill).toBe(0);
  });

  it('an adapter returning logits of the wrong vocabulary', async () => {
    const toy = new ToyLm(8, bigramLogits(8, 1));
    const lm = {
      kind: 'decoder-only' as const,
      vocabSize: 9,
      embed: toy.embed.bind(toy),
      prefill: toy.prefill.bind(toy),
      step: toy.step.bind(toy),
      reorderCache: toy.reorderCache.bind(toy),
      releaseCache: toy.releaseCache.bind(toy),
    };
    await expectError(
      () => generate(lm, toyInputs([[1]]), { maxNewTokens: 2 }),
      'E_ADAPTER',
      /\[1, 1, 8\].*\[1, T, 9\]/,
    );
    // what the adapter handed over is still freed
    expect(toy.calls.releaseCache).toBe(1);
  });

  it('streamGenerate throws bad options synchronously', () => {
    const lm = new ToyLm(8, bigramLogits(8, 1));
    expect(() => streamGenerate(lm, toyInputs([[1]]), { numBeams: 0 })).toThrow(GenerationError);
  });
});

describe('unknown options', () => {
  it('numBeems is refused by name, with the closest known option suggested', async () => {
    const lm = new ToyLm(8, bigramLogits(8, 1));
    await expectError(
      () => generate(lm, toyInputs([[1, 2, 3]]), { numBeems: 3 } as never),
      'E_OPTION',
      /unknown option "numBeems" in generation options \(did you mean 'numBeams'\?\)/,
    );
    await expectError(
      () => generate(lm, toyInputs([[1, 2, 3]]), { zzz: 1 } as never),
      'E_OPTION',
      /"zzz"[^(]*$/,
    );
    expect(lm.calls.prefill).toBe(0);
  });
});
