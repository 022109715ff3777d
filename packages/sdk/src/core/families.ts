/**
 * The language models BLIP-2 is published with, as pluggable modules: each builds
 * its graphs from the text config and wraps the loaded sessions in a
 * `LanguageModelAdapter`. Passing another module (`{ languageModel }`) swaps the
 * adapter without touching the rest of the SDK.
 */
import type { TextConfig } from '@blip2/configs';
import type { LanguageModelAdapter, VqaPresets } from '@blip2/generation';
import { buildT5, T5_VQA_PRESETS, T5Adapter } from '@blip2/llm-flan-t5';
import { buildOpt, OPT_VQA_PRESETS, OptAdapter } from '@blip2/llm-opt';
import type { KvLoadOptions, WeightLookup } from '@blip2/onnx';
import type { Backend, BuiltGraph } from '@blip2/tensor';

export interface LanguageModelModule {
  /** text_config.model_type it serves */
  readonly modelType: string;
  /** the family's zero-shot VQA protocols (prompt, decoding, stop tokens, padding side) */
  readonly vqaPresets: VqaPresets;
  build(config: TextConfig, weights: WeightLookup): Record<string, BuiltGraph>;
  load(
    config: TextConfig,
    graphs: Record<string, BuiltGraph>,
    backend: Backend,
    options?: KvLoadOptions,
  ): Promise<LanguageModelAdapter & { release(): Promise<void> }>;
}

export const optModule: LanguageModelModule = {
  modelType: 'opt',
  vqaPresets: OPT_VQA_PRESETS,
  build: (config, weights) => ({ ...buildOpt(config as Extract<TextConfig, { modelType: 'opt' }>, weights) }),
  load: async (config, graphs, backend, options) =>
    OptAdapter.load(
      config as Extract<TextConfig, { modelType: 'opt' }>,
      graphs as never,
      backend,
      options,
    ) as never,
};

export const t5Module: LanguageModelModule = {
  modelType: 't5',
  vqaPresets: T5_VQA_PRESETS,
  build: (config, weights) => ({ ...buildT5(config as Extract<TextConfig, { modelType: 't5' }>, weights) }),
  load: async (config, graphs, backend, options) =>
    T5Adapter.load(
      config as Extract<TextConfig, { modelType: 't5' }>,
      graphs as never,
      backend,
      options,
    ) as never,
};

export const LANGUAGE_MODELS: Readonly<Record<string, LanguageModelModule>> = {
  opt: optModule,
  t5: t5Module,
};
