// Relative-position models (T5) have no position table to bound a prompt, and each
// encoder layer's attention scores grow with the square of its length: generate refuses
// an encoder input over maxInputTokens (default DEFAULT_MAX_INPUT_TOKENS) before the
// model runs, naming both numbers; decoder-only models stay bounded by maxPositions.
import { describe, expect, it } from 'vitest';
import {
  checkGenerationOptions,
  DEFAULT_MAX_INPUT_TOKENS,
  GenerationError,
  generate,
  streamGenerate,
} from '../src/index.js';
import { bigramLogits, ToyLm, toyInputs } from './helpers/toy-lm.js';

const fn = bigramLogits(6, 7);
const row = (n: number) => Array.from({ length: n }, () => 1);

describe('maxInputTokens', () => {
  it('refuses an encoder input over the default, before prefill runs', async () => {
    const lm = new ToyLm(6, fn, 'encoder-decoder');
    const long = toyInputs([row(DEFAULT_MAX_INPUT_TOKENS + 1)]);
    const e = await generate(lm, long, { maxNewTokens: 2 }).catch((err) => err);
    expect(e).toBeInstanceOf(GenerationError);
    expect(e.code).toBe('E_PROMPT_TOO_LONG');
    expect(e.message).toContain(`the encoder input has 2049 tokens, above maxInputTokens (2048)`);
    expect(lm.calls.prefill).toBe(0);
    // the stream refuses synchronously, as its other checks do
    expect(() => streamGenerate(lm, long, { maxNewTokens: 2 })).toThrow(/above maxInputTokens \(2048\)/);
    expect(lm.calls.prefill).toBe(0);
  });

  it('the default admits exactly DEFAULT_MAX_INPUT_TOKENS, and the option moves the cap', async () => {
    const lm = new ToyLm(6, fn, 'encoder-decoder');
    const out = await generate(lm, toyInputs([row(DEFAULT_MAX_INPUT_TOKENS)]), { maxNewTokens: 2 });
    // the decoder start and two new tokens
    expect(out.sequences[0]).toHaveLength(3);
    expect(lm.calls.prefill).toBe(1);
    await expect(generate(lm, toyInputs([row(9)]), { maxInputTokens: 8 })).rejects.toMatchObject({
      code: 'E_PROMPT_TOO_LONG',
      message: expect.stringContaining('has 9 tokens, above maxInputTokens (8)'),
    });
    const raised = await generate(lm, toyInputs([row(DEFAULT_MAX_INPUT_TOKENS + 10)]), {
      maxInputTokens: DEFAULT_MAX_INPUT_TOKENS + 10,
      maxNewTokens: 1,
    });
    expect(raised.sequences[0]).toHaveLength(2);
    expect(lm.calls.prefill).toBe(2);
  });

  it('decoder-only models are bounded by their positions, not by maxInputTokens', async () => {
    const lm = new ToyLm(6, fn, 'decoder-only', 4096);
    const out = await generate(lm, toyInputs([row(3000)]), { maxNewTokens: 1, maxInputTokens: 8 });
    expect(out.sequences).toHaveLength(1);
    expect(lm.calls.prefill).toBe(1);
  });

  it('a maxInputTokens that is no positive integer is refused by name', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => checkGenerationOptions({ maxInputTokens: bad })).toThrow(
        `maxInputTokens must be an integer >= 1, got ${bad}`,
      );
    }
  });
});
