/**
 * OPT as a BLIP-2 language-model module (@blip2/generation's spec): its config, graphs,
 * adapter, VQA presets and what `inspect` shows, registered for `model_type: 'opt'`.
 */
import { OPT_TEXT_CONFIG, type OPTConfig } from '@blip2/configs';
import type { LanguageModelModule } from '@blip2/generation';
import type { KvLoadOptions, WeightLookup } from '@blip2/onnx';
import { OptAdapter } from './adapter.js';
import { buildOpt, type OptBuildOptions, type OptGraphs } from './opt.js';
import { OPT_VQA_PRESETS } from './presets.js';

export const optModule: LanguageModelModule<OPTConfig> = {
  specificationVersion: 'v1',
  // OPTConfig's reader (configs/src/opt.ts, transformers' configuration_opt.py): modelType,
  // kind, paddingSide, configClass, parseConfig and the BLIP-2 check on word_embed_proj_dim
  ...OPT_TEXT_CONFIG,
  vqaPresets: OPT_VQA_PRESETS,
  build: (config, weights, options) => ({
    ...buildOpt(config, weights as WeightLookup, options as OptBuildOptions),
  }),
  load: (config, graphs, backend, options) =>
    OptAdapter.load(config, graphs as unknown as OptGraphs, backend, options as KvLoadOptions),
  summary: (config, raw, file) => ({
    text: {
      modelType: 'opt',
      hiddenSize: config.hiddenSize,
      layers: config.numHiddenLayers,
      heads: config.numAttentionHeads,
      vocabSize: config.vocabSize,
    },
    activation: {
      value: config.activationFunction,
      source:
        raw.activation_function != null ? `${file} text_config.activation_function` : 'OPTConfig default',
    },
  }),
};
