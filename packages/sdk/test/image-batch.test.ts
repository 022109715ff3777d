// The image side runs a call's distinct images as one batch: a call with more of them than
// stepMemoryBytes holds is refused before any image is read or any session runs, and the
// model answers the next call as before.
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2ForConditionalGeneration, SdkError } from '../src/index.js';
import { countSessionRuns } from './session-runs.js';

const IMAGES = ['small_47x31.png', 'gray_40x40.png', 'photo_100x80.jpg'].map((f) => join(fixtures.images, f));
// tiny-blip2-opt's ViT: 32 px, patches of 4 (65 tokens), width 32, MLP 37, 4 heads:
// 4 bytes x (3 x 32 x 32 pixels + 65 x (37 + 2 x 32) activations + 4 x 65 x 65 scores)
const PER_IMAGE = 4 * (3 * 32 * 32 + 65 * (37 + 2 * 32) + 4 * 65 * 65);

describe('distinct images per call on the tiny OPT checkpoint', () => {
  let model: Blip2ForConditionalGeneration;
  let runs: () => number;
  beforeAll(async () => {
    model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt);
    runs = countSessionRuns(model);
  });
  afterAll(() => model?.dispose());

  it('a million image paths are refused by the default limit before any is read', async () => {
    const before = runs();
    // none of these files exists: reading one would be E_IMAGE, not the limit
    const paths = Array.from({ length: 1_000_000 }, (_, i) => `/nonexistent/${i}.png`);
    const e = await model.caption(paths, { maxNewTokens: 2 }).catch((err) => err);
    expect(e).toBeInstanceOf(SdkError);
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toMatch(/^1000000 distinct images in one call need \d+ MiB on the image side/);
    expect(e.message).toContain('above the limit of 2048 MiB (stepMemoryBytes)');
    expect(runs()).toBe(before);
  });

  it('the limit is stepMemoryBytes, counts distinct images only, and loses nothing', async () => {
    const stepMemoryBytes = 2 * PER_IMAGE;
    const two = await model.caption(IMAGES.slice(0, 2), { maxNewTokens: 3, stepMemoryBytes });
    expect(two).toHaveLength(2);
    const before = runs();
    await expect(model.caption(IMAGES, { maxNewTokens: 3, stepMemoryBytes })).rejects.toMatchObject({
      code: 'E_INPUT',
      message: expect.stringContaining('pass at most 2 images per call'),
    });
    await expect(
      model.ask(IMAGES, 'what is it?', { maxNewTokens: 3, stepMemoryBytes }),
    ).rejects.toMatchObject({ code: 'E_INPUT' });
    expect(runs()).toBe(before);
    // one image asked three questions is one image on the image side (three would not fit)
    const answers = await model.ask(IMAGES[0], ['a?', 'b?', 'c?'], { maxNewTokens: 3, stepMemoryBytes });
    expect(answers).toHaveLength(3);
    // the same call as before gives the same captions
    expect(await model.caption(IMAGES.slice(0, 2), { maxNewTokens: 3, stepMemoryBytes })).toEqual(two);
  });

  it('a stepMemoryBytes that is not a positive number is named', async () => {
    await expect(model.caption(IMAGES[0], { stepMemoryBytes: -1 })).rejects.toMatchObject({
      code: 'E_OPTION',
      message: expect.stringContaining('stepMemoryBytes must be a positive number of bytes, got -1'),
    });
  });
});
