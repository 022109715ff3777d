/**
 * OPT as a BLIP-2 language-model module (@blip2/generation's spec): its config, graphs,
 * adapter, VQA presets and what `inspect` shows, registered for `model_type: 'opt'`.
 */
import { type OPTConfig, parseTextConfigJson } from '@blip2/configs';
import type { LanguageModelModule } from '@blip2/generation';
import type { WeightLookup } from '@blip2/onnx';
import { OptAdapter, type OptLoadOptions } from './adapter.js';
import { OptError } from './errors.js';
import { buildOpt, type OptBuildOptions, type OptGraphs } from './opt.js';
import { OPT_VQA_PRESETS } from './presets.js';

export const optModule: LanguageModelModule<OPTConfig> = {
  specificationVersion: 'v1',
  modelType: 'opt',
  kind: 'decoder-only',
  paddingSide: 'left',
  vqaPresets: OPT_VQA_PRESETS,
  parseConfig(textConfig, file) {
    const config = parseTextConfigJson({ model_type: 'opt', ...(textConfig as object) }, file);
    if (config.modelType !== 'opt')
      throw new OptError('E_INPUT', `${file}: text_config is not an OPT config`);
    return config;
  },
  build: (config, weights, options) => ({
    ...buildOpt(config, weights as WeightLookup, options as OptBuildOptions),
  }),
  load: (config, graphs, backend, options) =>
    OptAdapter.load(config, graphs as unknown as OptGraphs, backend, options as OptLoadOptions),
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
