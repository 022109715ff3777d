// The pipelines' types as a TypeScript user sees them. The assertions are checked by
// tsc (`pnpm typecheck` covers test/): a wrong input must not compile, arrays must
// give string[]. The consumer test (release.test.ts) checks the same against the
// published .d.ts, without lib "dom".
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { Blip2ForConditionalGeneration, type ImageInput } from '../src/index.js';

const image = `${fixtures.shapesVal}/images/COCO_val2014_000000000001.jpg`;

describe('pipeline types', () => {
  let model: Blip2ForConditionalGeneration;
  beforeAll(async () => {
    model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesOpt, { onWarning: () => {} });
  });
  afterAll(() => model?.dispose());

  it('ImageInput is the kinds of image the platforms decode, not unknown', () => {
    expectTypeOf<ImageInput>().not.toBeUnknown();
    expectTypeOf<string>().toExtend<ImageInput>();
    expectTypeOf<Uint8Array>().toExtend<ImageInput>();
    expectTypeOf<ArrayBuffer>().toExtend<ImageInput>();
    expectTypeOf<Blob>().toExtend<ImageInput>();
    expectTypeOf<URL>().toExtend<ImageInput>();
    expectTypeOf<{ width: number; height: number; data: Uint8Array }>().toExtend<ImageInput>();
    expectTypeOf<ImageData>().toExtend<ImageInput>();
    expectTypeOf<HTMLImageElement>().toExtend<ImageInput>();
    expectTypeOf<number>().not.toExtend<ImageInput>();
    expectTypeOf<string[]>().not.toExtend<ImageInput>();
    expectTypeOf<{ width: number }>().not.toExtend<ImageInput>();
  });

  it('in Node a path, a file: URL, the bytes and a Blob of them are the same image', async () => {
    const options = { maxNewTokens: 3 };
    const bytes = new Uint8Array(readFileSync(image));
    const expected = await model.caption(image, options);
    expect(await model.caption(pathToFileURL(image), options)).toBe(expected);
    expect(await model.caption(bytes, options)).toBe(expected);
    expect(await model.caption(new Blob([bytes]), options)).toBe(expected);
    await expect(model.caption(new URL('https://example.com/a.png'), options)).rejects.toMatchObject({
      code: 'E_IMAGE_INPUT',
      message: expect.stringContaining('is not a file: URL'),
    });
  });

  it('one image gives a string, an array gives string[]; a number does not compile', async () => {
    const one = await model.caption(image, { maxNewTokens: 2 });
    expectTypeOf(one).toEqualTypeOf<string>();
    const many: string[] = await model.caption([image, image], { maxNewTokens: 2 });
    expectTypeOf(many).toEqualTypeOf<string[]>();
    // @ts-expect-error a number is no image
    await model.caption(42).catch(() => {});
    // @ts-expect-error an options object is no image either
    await model.caption({ maxNewTokens: 2 }).catch(() => {});
  });

  it('ask: a string for one pair, string[] when either side is an array', async () => {
    const options = { maxNewTokens: 2, numBeams: 1 };
    expectTypeOf(await model.ask(image, 'what color?', options)).toEqualTypeOf<string>();
    expectTypeOf(await model.ask(image, ['what color?', 'how many?'], options)).toEqualTypeOf<string[]>();
    expectTypeOf(await model.ask([image, image], 'what color?', options)).toEqualTypeOf<string[]>();
    expectTypeOf(await model.ask([image], ['what color?'], options)).toEqualTypeOf<string[]>();
    // @ts-expect-error the question is text
    await model.ask(image, 42).catch(() => {});
  });
});
