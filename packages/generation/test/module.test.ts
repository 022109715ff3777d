// The language-model module registry: one call registers a family, a later one replaces
// it, and a module written against another spec version is refused by name.
import { parseBlip2Config, registeredTextModelTypes } from '@blip2/configs';
import { describe, expect, it } from 'vitest';
import {
  GenerationError,
  type LanguageModelModule,
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
