// Unknown option names on every SDK entry point are refused by name, with the closest
// known one suggested, before anything is read or loaded: a typo is never silently
// ignored (a misspelt `device` would otherwise run on the CPU without a word).
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Blip2ForConditionalGeneration,
  Blip2Processor,
  Blip2VisionModel,
  createBackend,
  GenerationError,
  type ImageToTextPipeline,
  pipeline,
  SdkError,
} from '../src/index.js';

/** The rejection of `run`, which must be an SdkError E_OPTION saying `says`. */
async function refused(run: () => Promise<unknown>, says: string): Promise<void> {
  const e = await run().then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'accepted').toBeInstanceOf(SdkError);
  expect((e as SdkError).code).toBe('E_OPTION');
  expect((e as SdkError).message).toBe(says);
}

// a folder that does not exist: the option check must come before the source is opened
const NOWHERE = join(fixtures.tinyOpt, 'no-such-model');

describe('unknown options, refused by name before anything loads', () => {
  it('fromPretrained: a misspelt device', () =>
    refused(
      () => Blip2ForConditionalGeneration.fromPretrained(NOWHERE, { devise: 'cuda' } as never),
      `unknown option "devise" in fromPretrained options (did you mean 'device'?)`,
    ));
  it('fromPretrained: a Python spelling', () =>
    refused(
      () => Blip2VisionModel.fromPretrained(NOWHERE, { cache_dir: '/tmp/x' } as never),
      `unknown option "cache_dir" in fromPretrained options (did you mean 'cacheDir'?)`,
    ));
  it('fromPretrained: a name nothing is close to', () =>
    refused(
      () => Blip2ForConditionalGeneration.fromPretrained(NOWHERE, { quantumMode: true } as never),
      'unknown option "quantumMode" in fromPretrained options',
    ));
  it('fromPretrained: inside timeouts and languageModelOptions', async () => {
    await refused(
      () => Blip2ForConditionalGeneration.fromPretrained(NOWHERE, { timeouts: { connectMS: 5 } } as never),
      `unknown option "connectMS" in fromPretrained options timeouts (did you mean 'connectMs'?)`,
    );
    await refused(
      () =>
        Blip2ForConditionalGeneration.fromPretrained(NOWHERE, {
          languageModelOptions: { batchedSteps: 'never' },
        } as never),
      `unknown option "batchedSteps" in fromPretrained options languageModelOptions (did you mean 'batchedStep'?)`,
    );
  });
  it('fromPretrained: options that are not an object', () =>
    refused(
      () => Blip2ForConditionalGeneration.fromPretrained(NOWHERE, 'cuda' as never),
      'fromPretrained options must be an object, got string',
    ));
  it('pipeline: the SDK spelling where transformers.js has its own, and a typo', async () => {
    await refused(
      () => pipeline('image-to-text', NOWHERE, { onProgress: () => {} } as never),
      `unknown option "onProgress" in pipeline options (did you mean 'progress_callback'? pipeline takes transformers.js's names)`,
    );
    await refused(
      () => pipeline('image-to-text', NOWHERE, { dtpye: 'q8' } as never),
      `unknown option "dtpye" in pipeline options (did you mean 'dtype'?)`,
    );
  });
  it('createBackend', () =>
    refused(
      () => createBackend({ threds: 2 } as never),
      `unknown option "threds" in createBackend options (did you mean 'threads'?)`,
    ));
  it('Blip2Processor.fromPretrained', () =>
    refused(
      () => Blip2Processor.fromPretrained(NOWHERE, { revison: 'main' } as never),
      `unknown option "revison" in Blip2Processor.fromPretrained options (did you mean 'revision'?)`,
    ));
});

describe('the pipeline call: generation kwargs typed by a caller are refused by name', () => {
  let captioner: ImageToTextPipeline;
  beforeAll(async () => {
    captioner = await pipeline('image-to-text', fixtures.tinyOpt);
  });
  afterAll(() => captioner?.dispose());

  it('a misspelt max_new_tokens, and a camelCase name', async () => {
    const image = join(fixtures.images, 'small_47x31.png');
    for (const [kwargs, near] of [
      [{ max_new_token: 3 }, 'max_new_tokens'],
      [{ numBeams: 2 }, 'num_beams'],
    ] as const) {
      const e = await captioner(image, kwargs).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(GenerationError);
      expect((e as GenerationError).code).toBe('E_OPTION');
      expect((e as GenerationError).message).toContain(`(did you mean '${near}'?)`);
    }
    // the same call with the right name still captions
    const [{ generated_text }] = (await captioner(image, { max_new_tokens: 3 })) as [
      { generated_text: string },
    ];
    expect(typeof generated_text).toBe('string');
  });
});
