// T5's encoder has relative positions and no table to bound a prompt: ask / caption /
// generate refuse an encoder input over maxInputTokens (default 2048) before the vision
// encoder or any other session runs, and the model answers the next question as before.
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2ForConditionalGeneration, DEFAULT_MAX_INPUT_TOKENS, GenerationError } from '../src/index.js';
import { countSessionRuns } from './session-runs.js';

const IMAGE = join(fixtures.images, 'small_47x31.png');

describe('maxInputTokens on the tiny T5 checkpoint', () => {
  let model: Blip2ForConditionalGeneration;
  let runs: () => number;
  beforeAll(async () => {
    model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyT5);
    runs = countSessionRuns(model);
  });
  afterAll(() => model?.dispose());

  it('a question of thousands of tokens is refused before any session runs', async () => {
    const answer = await model.ask(IMAGE, 'what is it?', { maxNewTokens: 3 });
    expect(runs()).toBeGreaterThan(0);
    const before = runs();
    const long = 'a b c d '.repeat(2000);
    const e = await model.ask(IMAGE, long, { maxNewTokens: 3 }).catch((err) => err);
    expect(e).toBeInstanceOf(GenerationError);
    expect(e.code).toBe('E_PROMPT_TOO_LONG');
    expect(e.message).toMatch(/the encoder input has \d+ tokens, above maxInputTokens \(2048\)/);
    expect(runs()).toBe(before);
    // nothing was lost: the same question as before gets the same answer
    expect(await model.ask(IMAGE, 'what is it?', { maxNewTokens: 3 })).toBe(answer);
  });

  it('the cap moves with maxInputTokens, for caption prompts too', async () => {
    const before = runs();
    await expect(model.caption(IMAGE, { prompt: 'a photo of', maxInputTokens: 4 })).rejects.toMatchObject({
      code: 'E_PROMPT_TOO_LONG',
      message: expect.stringContaining('above maxInputTokens (4)'),
    });
    expect(runs()).toBe(before);
    const long = 'a b c d '.repeat(300);
    const text = await model.ask(IMAGE, long, {
      maxNewTokens: 2,
      maxInputTokens: DEFAULT_MAX_INPUT_TOKENS * 2,
    });
    expect(typeof text).toBe('string');
    expect(runs()).toBeGreaterThan(before);
  });
});
