// The hostile-input sweep of the SDK's entry points: wrong types, missing and special
// files, huge and negative numbers, each through the public API as a TypeScript-less
// caller would pass them. Every one must be a blip2-ts error (a class with a stable
// `code`) whose message names the value; never a raw TypeError or RangeError from deep
// inside. One tiny model serves all the calls that need one, and still answers afterwards.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { float32, int64 } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Blip2Error,
  Blip2ForConditionalGeneration,
  Blip2Processor,
  exportModel,
  pipeline,
  runParity,
} from '../src/index.js';

const IMAGE = join(fixtures.images, 'small_47x31.png');
let model: Blip2ForConditionalGeneration;
let dir = '';

beforeAll(async () => {
  model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt);
  dir = mkdtempSync(join(tmpdir(), 'blip2-sdk-sweep-'));
  writeFileSync(join(dir, 'a-file'), 'x');
});
afterAll(async () => {
  await model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const any = (v: unknown) => v as never;
const CASES: [string, () => Promise<unknown>, RegExp][] = [
  ['fromPretrained of a number', () => Blip2ForConditionalGeneration.fromPretrained(any(42)), /42/],
  ['fromPretrained of an empty string', () => Blip2ForConditionalGeneration.fromPretrained(''), /source|""/],
  ['fromPretrained of a file', () => Blip2ForConditionalGeneration.fromPretrained(IMAGE), /small_47x31\.png/],
  [
    'fromPretrained with a dtype that is none',
    () => Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, { dtype: any('q3') }),
    /q3/,
  ],
  [
    'fromPretrained with threads -1',
    () => Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, { threads: -1 }),
    /threads/,
  ],
  [
    'fromPretrained with a device that is none',
    () => Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, { device: 'tpu' }),
    /tpu/,
  ],
  [
    'fromPretrained with timeouts as a number',
    () => Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, { timeouts: any(5) }),
    /timeouts/,
  ],
  ['caption of a number', () => model.caption(any(42)), /42|image/],
  ['caption of null', () => model.caption(any(null)), /null|image/],
  ['caption of a folder', () => model.caption(dir), /blip2-sdk-sweep/],
  ['caption of a missing file', () => model.caption(join(dir, 'nope.png')), /nope\.png/],
  ['caption of a file that is no image', () => model.caption(join(dir, 'a-file')), /a-file/],
  ['caption with numBeams 1e9', () => model.caption(IMAGE, { numBeams: 1e9 }), /numBeams 1000000000/],
  ['caption with numBeams -2', () => model.caption(IMAGE, { numBeams: -2 }), /numBeams/],
  [
    'caption with maxNewTokens as a string',
    () => model.caption(IMAGE, { maxNewTokens: any('5') }),
    /maxNewTokens/,
  ],
  ['caption with topP NaN', () => model.caption(IMAGE, { topP: Number.NaN }), /topP/],
  ['caption with a prompt that is a number', () => model.caption(IMAGE, { prompt: any(5) }), /text|5/],
  [
    'caption with eosTokenId past the vocabulary',
    () => model.caption(IMAGE, { eosTokenId: 1e6 }),
    /eosTokenId/,
  ],
  ['caption with stepMemoryBytes -1', () => model.caption(IMAGE, { stepMemoryBytes: -1 }), /stepMemoryBytes/],
  ['ask with a question that is a number', () => model.ask(IMAGE, any(5)), /question/],
  ['ask with a template without {}', () => model.ask(IMAGE, 'why?', { template: 'Q: A:' }), /template/],
  ['ask with a protocol that is none', () => model.ask(IMAGE, 'why?', { protocol: any('fast') }), /fast/],
  ['ask with paddingSide up', () => model.ask(IMAGE, 'why?', { paddingSide: any('up') }), /paddingSide/],
  [
    'ask with maxPromptTokens -3',
    () => model.ask(IMAGE, 'why?', { maxPromptTokens: -3 }),
    /maxPromptTokens|-3/,
  ],
  [
    'ask with 2 images and 3 questions',
    () => model.ask([IMAGE, IMAGE], ['a', 'b', 'c']),
    /2 images but 3 questions/,
  ],
  [
    'generate with pixels that are a string',
    () => model.generate({ pixelValues: any('pixels') }),
    /pixelValues/,
  ],
  [
    'generate with pixels of the wrong size',
    () => model.generate({ pixelValues: float32([1, 3, 8, 8], new Float32Array(192)) }),
    /pixelValues must be float32 \[batch, 3, 32, 32\]/,
  ],
  [
    'generate with imageRows out of range',
    () => model.generate({ pixelValues: float32([1, 3, 32, 32], new Float32Array(3072)), imageRows: [5] }),
    /imageRows holds 5/,
  ],
  [
    'generate with input ids past the vocabulary',
    () =>
      model.generate({
        pixelValues: float32([1, 3, 32, 32], new Float32Array(3072)),
        inputIds: int64([1, 2], [2, 100000]),
      }),
    /100000|vocab/,
  ],
  [
    'the processor with images that are a number',
    () => model.processor.process({ images: any(7) }),
    /7|image/,
  ],
  ['the processor with text that is an object', () => model.processor.process({ text: any({}) }), /text/],
  [
    'Blip2Processor.fromPretrained of a missing folder',
    () => Blip2Processor.fromPretrained(join(dir, 'nope')),
    /nope/,
  ],
  [
    'pipeline of a task that is none',
    () => pipeline(any('summarization'), fixtures.tinyOpt),
    /summarization/,
  ],
  [
    'pipeline with a dtype that is none',
    () => pipeline('image-to-text', fixtures.tinyOpt, { dtype: any('int3') }),
    /int3/,
  ],
  ['export into a file', () => exportModel(fixtures.tinyOpt, join(dir, 'a-file'), { dtype: 'q8' }), /a-file/],
  [
    'export with a dtype that is none',
    () => exportModel(fixtures.tinyOpt, join(dir, 'out'), { dtype: any('q2') }),
    /q2/,
  ],
  [
    'export with an unknown option',
    () => exportModel(fixtures.tinyOpt, join(dir, 'out2'), any({ dtype: 'q8', shardbytes: 5 })),
    /shardbytes/,
  ],
  [
    'parity with an unknown option',
    () => runParity(fixtures.tinyOpt, any({ imageDir: 'x' })),
    /imageDir.*imagesDir/,
  ],
  ['parity of a folder that is no fixture', () => runParity(dir), /blip2-sdk-sweep/],
  ['parity of a missing folder', () => runParity(join(dir, 'nope')), /nope/],
];

describe('SDK entry points under hostile input: a typed error naming the value', () => {
  it.each(CASES)('%s', async (_name, call, says) => {
    const e = await call().then(
      (value) => ({ accepted: value }),
      (err: unknown) => err,
    );
    expect(Blip2Error.isInstance(e), String((e as Error)?.stack ?? JSON.stringify(e))).toBe(true);
    expect((e as Blip2Error).code).toMatch(/^E_[A-Z0-9_]+$/);
    expect((e as Error).message).toMatch(says);
  });

  it('the model answers as before after every refusal', async () => {
    const again = await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt);
    try {
      expect(await model.caption(IMAGE, { maxNewTokens: 4 })).toBe(
        await again.caption(IMAGE, { maxNewTokens: 4 }),
      );
    } finally {
      await again.dispose();
    }
  });
});
