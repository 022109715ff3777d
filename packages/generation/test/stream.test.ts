/** Streaming (callback and async iterator), aborting, and generation_config.json. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import {
  GenerationError,
  generate,
  generationOptionsFromConfig,
  streamGenerate,
  type TokenEvent,
} from '../src/index.js';
import { bigramLogits, ToyLm, toyInputs } from './helpers/toy-lm.js';

const fn = bigramLogits(10, 12);

describe('streaming', () => {
  it('onToken gets each step as it is chosen, one token per row, in order', async () => {
    const lm = new ToyLm(10, fn);
    const events: TokenEvent[] = [];
    const out = await generate(lm, toyInputs([[1], [2, 3]]), {
      maxNewTokens: 6,
      onToken: (e) => {
        // the token arrives before the model is asked for the next one
        expect(lm.calls.step).toBe(e.step);
        events.push(e);
      },
    });
    expect(events.map((e) => e.step)).toEqual([0, 1, 2, 3, 4, 5]);
    expect([0, 1].map((r) => events.map((e) => e.tokens[r]))).toEqual(out.sequences);
  });

  it('the async iterator yields the same tokens as the result, for greedy, sampling and beams', async () => {
    for (const options of [
      {},
      { doSample: true, seed: 4 },
      { numBeams: 3, numReturnSequences: 2, eosTokenId: 4 },
    ]) {
      const stream = streamGenerate(new ToyLm(10, fn), toyInputs([[1], [7]]), {
        maxNewTokens: 5,
        ...options,
      });
      const rows: number[][] = [];
      for await (const e of stream) {
        e.tokens.forEach((t, r) => {
          rows[r] ??= [];
          rows[r].push(t);
        });
      }
      expect(rows).toEqual((await stream.result).sequences);
    }
  });

  it('an encoder-decoder stream leaves out the decoder start token', async () => {
    const stream = streamGenerate(new ToyLm(10, fn, 'encoder-decoder'), toyInputs([[1]]), {
      maxNewTokens: 3,
    });
    const tokens: number[] = [];
    for await (const e of stream) tokens.push(...e.tokens);
    expect([0, ...tokens]).toEqual((await stream.result).sequences[0]);
  });

  it('leaving the loop early aborts the generation', async () => {
    const lm = new ToyLm(10, fn);
    const stream = streamGenerate(lm, toyInputs([[1]]), { maxNewTokens: 50 });
    for await (const e of stream) if (e.step === 2) break;
    await expect(stream.result).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(lm.calls.step).toBeLessThan(5);
    expect(lm.calls.releaseCache).toBe(1);
  });
});

describe('AbortSignal', () => {
  it('stops between steps with E_ABORTED and frees the cache', async () => {
    const lm = new ToyLm(10, fn);
    const controller = new AbortController();
    const run = generate(lm, toyInputs([[1]]), {
      maxNewTokens: 40,
      signal: controller.signal,
      onToken: (e) => {
        if (e.step === 3) controller.abort(new Error('user pressed stop'));
      },
    });
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GenerationError);
    expect((error as GenerationError).code).toBe('E_ABORTED');
    expect(((error as GenerationError).cause as Error).message).toBe('user pressed stop');
    expect(lm.calls.step).toBe(3);
    expect(lm.calls.releaseCache).toBe(1);
  });
  it('an already aborted signal runs nothing', async () => {
    const lm = new ToyLm(10, fn);
    await expect(generate(lm, toyInputs([[1]]), { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'E_ABORTED',
    });
    expect(lm.calls.prefill).toBe(0);
  });
  it('beam search aborts too', async () => {
    const controller = new AbortController();
    // the model itself pulls the plug once the sequences have 5 tokens
    const lm = new ToyLm(10, (h) => {
      if (h.length === 5) controller.abort();
      return fn(h);
    });
    const run = generate(lm, toyInputs([[1]]), { maxNewTokens: 40, numBeams: 2, signal: controller.signal });
    await expect(run).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(lm.calls.step).toBe(4);
  });
});

describe('generation_config.json', () => {
  it('reads the fixtures configs', () => {
    const opt = JSON.parse(readFileSync(join(fixtures.tinyOpt, 'generation_config.json'), 'utf8'));
    expect(generationOptionsFromConfig(opt)).toEqual({ bosTokenId: 2, eosTokenId: 2, padTokenId: 1 });
    const t5 = JSON.parse(readFileSync(join(fixtures.tinyT5, 'generation_config.json'), 'utf8'));
    expect(generationOptionsFromConfig(t5)).toEqual({ eosTokenId: 1, padTokenId: 0 });
  });
  it('maps every generation key, treats null as unset and max_length 20 as the default', () => {
    expect(
      generationOptionsFromConfig({
        max_new_tokens: 10,
        max_length: 20,
        min_new_tokens: 1,
        num_beams: 5,
        length_penalty: -1.0,
        early_stopping: 'never',
        do_sample: false,
        top_k: 3,
        top_p: 0.9,
        temperature: 0.7,
        repetition_penalty: 1.5,
        no_repeat_ngram_size: 3,
        bad_words_ids: [[4, 5]],
        forced_eos_token_id: [1, 2],
        eos_token_id: [1, 2],
        num_return_sequences: 2,
        min_length: null,
        use_cache: true,
      }),
    ).toEqual({
      maxNewTokens: 10,
      minNewTokens: 1,
      numBeams: 5,
      lengthPenalty: -1,
      earlyStopping: 'never',
      doSample: false,
      topK: 3,
      topP: 0.9,
      temperature: 0.7,
      repetitionPenalty: 1.5,
      noRepeatNgramSize: 3,
      badWordsIds: [[4, 5]],
      forcedEosTokenId: [1, 2],
      eosTokenId: [1, 2],
      numReturnSequences: 2,
    });
    expect(generationOptionsFromConfig({ max_length: 30 })).toEqual({ maxLength: 30 });
  });
  it('rejects malformed values with the key and value', () => {
    const bad = (c: unknown) => () => generationOptionsFromConfig(c, 'x/generation_config.json');
    expect(bad([])).toThrow(/x\/generation_config.json: expected a JSON object/);
    expect(bad({ num_beams: '4' })).toThrow(/num_beams must be an integer, got "4"/);
    expect(bad({ eos_token_id: [] })).toThrow(/eos_token_id must be an id or a list of ids/);
    expect(bad({ early_stopping: 'yes' })).toThrow(/early_stopping/);
    expect(bad({ top_p: 'x' })).toThrow(GenerationError);
  });
  // each out of range value is refused where the file is read, naming the file, the key and the range
  const CORPUS: [object, string][] = [
    [{ num_beams: 0 }, 'num_beams must be an integer in [1, 2147483647], got 0'],
    [{ num_beams: 2 ** 40 }, 'num_beams must be an integer in [1, 2147483647], got 1099511627776'],
    [{ num_return_sequences: -2 }, 'num_return_sequences must be an integer in [1, 2147483647], got -2'],
    [{ max_new_tokens: -1 }, 'max_new_tokens must be an integer in [0, 2147483647], got -1'],
    [{ max_length: 1e15 }, 'max_length must be an integer in [0, 2147483647], got 1000000000000000'],
    [{ top_k: -5 }, 'top_k must be an integer in [0, 2147483647], got -5'],
    [{ top_p: 0 }, 'top_p must be in (0, 1], got 0'],
    [{ top_p: 1.5 }, 'top_p must be in (0, 1], got 1.5'],
    [{ temperature: -1 }, 'temperature must be >= 0, got -1'],
    [{ repetition_penalty: 0 }, 'repetition_penalty must be > 0, got 0'],
    [{ pad_token_id: -1 }, 'pad_token_id must be an integer in [0, 2147483647], got -1'],
    [{ eos_token_id: [1, -2] }, 'eos_token_id must be an id or a list of ids in [0, 2147483647], got [1,-2]'],
    [{ bad_words_ids: [[2 ** 33]] }, 'bad_words_ids must be a list of id lists (ids in [0, 2147483647])'],
    [{ num_beams: 4.5 }, 'num_beams must be an integer, got 4.5'],
  ];
  for (const [config, says] of CORPUS) {
    it(`refuses ${JSON.stringify(config)}`, () => {
      let e: unknown;
      try {
        generationOptionsFromConfig(config, 'x/generation_config.json');
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(GenerationError);
      expect((e as GenerationError).code).toBe('E_CONFIG');
      expect((e as GenerationError).message).toContain(`x/generation_config.json: ${says}`);
    });
  }
  it('1e999 (Infinity once parsed) is named as such', () => {
    const config = JSON.parse('{"temperature": 1e999}');
    expect(() => generationOptionsFromConfig(config, 'g.json')).toThrow(
      'g.json: temperature must be a number, got Infinity',
    );
  });
  it('a temperature of 0 is kept: files that do not sample store it', () => {
    expect(generationOptionsFromConfig({ temperature: 0, do_sample: false })).toEqual({
      temperature: 0,
      doSample: false,
    });
  });
});
