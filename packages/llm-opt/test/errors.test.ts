import type { OPTConfig } from '@blip2/configs';
import { thrown as thrownBy } from '@blip2/fixtures';
import { generate } from '@blip2/generation';
import { GraphBuildError } from '@blip2/onnx';
import type { Session, Tensor } from '@blip2/tensor';
import { float32, int64 } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpt, OptAdapter, OptError } from '../src/index.js';
import { ids, ones, openTiny, type Tiny } from './tiny.js';

let tiny: Tiny;
beforeAll(async () => {
  tiny = await openTiny();
});
afterAll(async () => {
  await tiny.close();
});

/** Sessions that count their runs (and fail the test if one runs at all). */
function countingSessions() {
  const runs: string[] = [];
  const session = (name: string): Session => ({
    name,
    inputNames: [],
    outputNames: [],
    async run() {
      runs.push(name);
      throw new Error(`${name} ran`);
    },
    async runOnDevice() {
      runs.push(name);
      throw new Error(`${name} ran`);
    },
    async release() {},
  });
  return {
    runs,
    sessions: { embed: session('embed'), prefill: session('prefill'), steps: { step: session('step') } },
  };
}

/** The error `fn` throws, which must be of class `Class` (default OptError). */
function thrown<E extends Error = OptError>(
  fn: () => unknown,
  Class?: abstract new (...args: never[]) => E,
): E {
  return thrownBy(fn, Class ?? (OptError as unknown as abstract new (...args: never[]) => E));
}

async function rejected(p: Promise<unknown>): Promise<OptError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof OptError) return e;
    throw e;
  }
  throw new Error('expected an OptError');
}

describe('bad input gets a typed error before any model runs', () => {
  it('rejects a prompt longer than max_position_embeddings (E_PROMPT_TOO_LONG)', async () => {
    const { runs, sessions } = countingSessions();
    const adapter = new OptAdapter(tiny.config, sessions);
    const t = tiny.config.maxPositionEmbeddings + 1;
    const embeds = float32([1, t, tiny.config.hiddenSize]);
    const err = await rejected(adapter.prefill(embeds, ones(1, t)));
    expect(err.code).toBe('E_PROMPT_TOO_LONG');
    expect(err.message).toMatch(/row 0 attends to 129 tokens; max_position_embeddings is 128/);
    expect(runs).toEqual([]);
  });

  it('counts attended tokens, as positions do: padding does not make a prompt too long', async () => {
    const max = tiny.config.maxPositionEmbeddings;
    const mask = int64([1, max + 3], [0, 0, 0, ...new Array(max).fill(1)]);
    const { logits } = await tiny.adapter.prefill(float32([1, max + 3, tiny.config.hiddenSize]), mask);
    expect(logits.dims).toEqual([1, 1, tiny.config.vocabSize]);
    const err = await rejected(
      tiny.adapter.step(
        ids([[5]]),
        (await tiny.adapter.prefill(float32([1, max, tiny.config.hiddenSize]), ones(1, max))).cache,
      ),
    );
    expect(err.code).toBe('E_SEQUENCE_TOO_LONG');
    expect(err.message).toMatch(/reach 129 tokens; max_position_embeddings is 128/);
  });

  it('generate refuses the same prompt before the adapter runs', async () => {
    const { runs, sessions } = countingSessions();
    const adapter = new OptAdapter(tiny.config, sessions);
    const t = tiny.config.maxPositionEmbeddings + 1;
    await expect(
      generate(
        adapter,
        { inputsEmbeds: float32([1, t, tiny.config.hiddenSize]), attentionMask: ones(1, t) },
        { maxNewTokens: 2 },
      ),
    ).rejects.toMatchObject({
      code: 'E_PROMPT_TOO_LONG',
    });
    expect(runs).toEqual([]);
  });

  it('names the tensor at fault', async () => {
    const { runs, sessions } = countingSessions();
    const adapter = new OptAdapter(tiny.config, sessions);
    const d = tiny.config.hiddenSize;
    expect((await rejected(adapter.embed(ids([[3, 947]])))).message).toMatch(
      /inputIds\[0, 1\] = 947 is outside the vocabulary \[0, 947\)/,
    );
    expect((await rejected(adapter.prefill(float32([1, 2, d + 1]), ones(1, 2)))).message).toMatch(
      /inputsEmbeds must be float32 \[batch, sequence, 24\], got float32 \[1,2,25\]/,
    );
    expect((await rejected(adapter.prefill(float32([1, 2, d]), ones(1, 3)))).message).toMatch(
      /attentionMask must be int64 \[1, 2\]/,
    );
    expect((await rejected(adapter.prefill(float32([1, 2, d]), int64([1, 2], [1, 2])))).message).toMatch(
      /attentionMask\[0, 1\] = 2/,
    );
    const cache = { keys: [], values: [], attentionMask: ones(2, 3) };
    expect((await rejected(adapter.step(ids([[1]]), cache))).message).toMatch(
      /tokenIds has 1 rows but the cache holds 2/,
    );
    expect(runs).toEqual([]);
  });

  it('names a missing or misshapen weight, and an unsupported activation', () => {
    const missing = {
      ...tiny.weights,
      has: (n: string) => n !== 'language_model.model.decoder.layers.1.fc2.weight' && tiny.weights.has(n),
    };
    const e1 = thrown(() => buildOpt(tiny.config, missing), GraphBuildError);
    expect(e1).toMatchObject({
      code: 'E_MISSING_WEIGHT',
      weight: 'language_model.model.decoder.layers.1.fc2.weight',
    });
    expect(e1.message).toMatch(
      /no weight 'language_model.model.decoder.layers.1.fc2.weight' \(expected shape \[24,37\]\)/,
    );
    const wider: OPTConfig = { ...tiny.config, ffnDim: 40 };
    const e3 = thrown(() => buildOpt(wider, tiny.weights), GraphBuildError);
    expect(e3).toMatchObject({
      code: 'E_WEIGHT_SHAPE',
      weight: 'language_model.model.decoder.layers.0.fc1.weight',
    });
    expect(e3.message).toMatch(
      /'language_model.model.decoder.layers.0.fc1.weight' has shape \[37,24\], the config implies \[40,24\]/,
    );
    const untied: OPTConfig = { ...tiny.config, tieWordEmbeddings: false };
    const e4 = thrown(() => buildOpt(untied, tiny.weights), GraphBuildError);
    expect(e4).toMatchObject({ code: 'E_MISSING_WEIGHT', weight: 'language_model.lm_head.weight' });
    expect(e4.message).toMatch(/no 'language_model.lm_head.weight' and tie_word_embeddings is false/);
    const silu: OPTConfig = { ...tiny.config, activationFunction: 'silu' };
    const e2 = thrown(() => buildOpt(silu, tiny.weights));
    expect(e2.code).toBe('E_ACTIVATION');
    expect(e2.message).toMatch(/activation_function 'silu' is not supported/);
    const e5 = thrown(() => buildOpt(tiny.config, tiny.weights, { prefix: 'lm.' }), GraphBuildError);
    expect(e5).toMatchObject({ code: 'E_MISSING_WEIGHT', weight: 'lm.model.decoder.embed_tokens.weight' });
    expect(e5.message).toMatch(/no weight 'lm.model.decoder.embed_tokens.weight'/);
  });

  it('reports a session that returns something else than the graph promises', async () => {
    const bad: Session = {
      name: 'opt.embed',
      inputNames: [],
      outputNames: [],
      run: async () => ({ inputs_embeds: int64([1], [1]) as Tensor }),
      runOnDevice: async () => ({ inputs_embeds: int64([1], [1]) as Tensor }),
      release: async () => {},
    };
    const { sessions } = countingSessions();
    const adapter = new OptAdapter(tiny.config, { ...sessions, embed: bad });
    const err = await rejected(adapter.embed(ids([[1]])));
    expect(err.code).toBe('E_SESSION');
    expect(err.message).toMatch(/session 'opt.embed' returned a int64 'inputs_embeds', expected float32/);
  });
});
