// The language-model module registry: one call registers a family, a later one replaces
// it, and a module written against another spec version is refused by name.
import { parseBlip2Config, registeredTextModelTypes } from '@blip2/configs';
import { namedGraph } from '@blip2/fixtures';
import { type Backend, type BuiltGraph, float32, int64, type Tensor } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import {
  defineLanguageModel,
  GenerationError,
  type LanguageModelModule,
  type LoadedLanguageModel,
  languageModelModule,
  registeredLanguageModels,
  registerLanguageModel,
} from '../src/index.js';

const preset = {
  prompt: 'Question: {} Answer:',
  paddingSide: 'left',
  generation: { numBeams: 1, maxNewTokens: 5 },
} as const;

function toyModule(
  modelType: string,
  note: string,
): LanguageModelModule<{ modelType: string; vocabSize: number; note: string }> {
  return {
    specificationVersion: 'v1',
    modelType,
    kind: 'decoder-only',
    configClass: 'ToyConfig',
    paddingSide: 'left',
    vqaPresets: { lavis: preset, paper: preset } as unknown as LanguageModelModule['vqaPresets'],
    parseConfig: (json, file) => {
      if (typeof json !== 'object' || json === null) throw new Error(`${file}: not an object`);
      return { modelType, vocabSize: 10, note };
    },
    build: () => ({}),
    load: async () => {
      throw new Error('not loaded in this test');
    },
    summary: (config) => ({
      text: { modelType, note: config.note },
      activation: { value: 'relu', source: 'test' },
    }),
  };
}

describe('registerLanguageModel', () => {
  it('makes a module the one its model_type asks for, a later registration replacing it', () => {
    expect(languageModelModule('toy-llm')).toBeUndefined();
    registerLanguageModel(toyModule('toy-llm', 'first'));
    expect(registeredLanguageModels()).toContain('toy-llm');
    const first = languageModelModule('toy-llm');
    expect(first?.parseConfig({}, 'config.json')).toEqual({
      modelType: 'toy-llm',
      vocabSize: 10,
      note: 'first',
    });
    registerLanguageModel(toyModule('toy-llm', 'second'));
    const second = languageModelModule('toy-llm');
    expect(second?.summary(second.parseConfig({}, 'c.json'), {}, 'c.json').text).toEqual({
      modelType: 'toy-llm',
      note: 'second',
    });
    expect(registeredLanguageModels().filter((t) => t === 'toy-llm')).toHaveLength(1);
  });

  it("registers the module's config reader with @blip2/configs: a BLIP-2 config of its model_type parses", () => {
    const json = { model_type: 'blip-2', text_config: { model_type: 'toy-parsed' } };
    expect(() => parseBlip2Config(json)).toThrow(/text_config.model_type "toy-parsed" is not supported/);
    registerLanguageModel(toyModule('toy-parsed', 'parsed'));
    expect(registeredTextModelTypes()).toContain('toy-parsed');
    const config = parseBlip2Config(json);
    expect(config.textConfig).toEqual({ modelType: 'toy-parsed', vocabSize: 10, note: 'parsed' });
    expect(config.useDecoderOnlyLanguageModel).toBe(true);
  });

  it('refuses a module of another spec version, naming it', () => {
    const future = {
      ...toyModule('future-llm', 'x'),
      specificationVersion: 'v2',
    } as unknown as LanguageModelModule;
    let error: unknown;
    try {
      registerLanguageModel(future);
    } catch (e) {
      error = e;
    }
    expect(GenerationError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      code: 'E_ADAPTER',
      message: `language-model module 'future-llm' implements spec "v2"; this version of @blip2/generation runs 'v1'`,
    });
    expect(languageModelModule('future-llm')).toBeUndefined();
    expect(registeredTextModelTypes()).not.toContain('future-llm');
  });
});

describe('defineLanguageModel', () => {
  interface ToyGraphs {
    readonly encoder: BuiltGraph;
    readonly decoder: BuiltGraph;
  }
  type ToyAdapter = LoadedLanguageModel & { readonly graphs: ToyGraphs; readonly rows: number };
  const calls: unknown[][] = [];
  const toy = defineLanguageModel({
    ...toyModule('toy-defined', 'defined'),
    kind: 'encoder-decoder',
    paddingSide: 'right',
    build: (
      config,
      weights: { readonly prefix: string },
      options?: { readonly dtype: string },
    ): ToyGraphs => {
      calls.push(['build', config.note, weights.prefix, options?.dtype]);
      return {
        encoder: namedGraph(`${weights.prefix}encoder`),
        decoder: namedGraph(`${weights.prefix}decoder`),
      };
    },
    load: async (_config, graphs, _backend, options?: { readonly rows: number }) =>
      ({ graphs, rows: options?.rows ?? 1 }) as unknown as ToyAdapter,
    encoderLastHiddenState: async (adapter, inputsEmbeds) => {
      calls.push(['encoder', adapter.graphs.encoder.name, adapter.rows]);
      return inputsEmbeds;
    },
  });
  const backend = {} as Backend;

  it("is a v1 module whose build and load get the family's own weights, graphs and options", async () => {
    expect(toy.specificationVersion).toBe('v1');
    const config = toy.parseConfig({}, 'config.json');
    const graphs = toy.build(config, { prefix: 'lm.' }, { dtype: 'q4' });
    expect(Object.keys(graphs)).toEqual(['encoder', 'decoder']);
    expect(calls.at(-1)).toEqual(['build', 'defined', 'lm.', 'q4']);
    const adapter = await toy.load(config, graphs, backend, { rows: 4 });
    const embeds: Tensor<'float32'> = float32([1, 1, 1], [0.5]);
    expect(await toy.encoderLastHiddenState?.(adapter, embeds, int64([1, 1], [1]))).toBe(embeds);
    expect(calls.at(-1)).toEqual(['encoder', 'lm.encoder', 4]);
  });

  it('refuses an adapter its load did not make; a family without an encoder has no encoderLastHiddenState', async () => {
    const stranger = { graphs: {}, rows: 1 } as unknown as LoadedLanguageModel;
    const err = await toy
      .encoderLastHiddenState?.(stranger, float32([1, 1, 1], [0]), int64([1, 1], [1]))
      .catch((e: unknown) => e);
    expect(GenerationError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({
      code: 'E_ADAPTER',
      message: "encoderLastHiddenState: the adapter was not loaded by the 'toy-defined' module",
    });
    const decoderOnly = defineLanguageModel({ ...toyModule('toy-decoder', 'd'), build: () => ({}) });
    expect('encoderLastHiddenState' in decoderOnly).toBe(false);
  });
});
