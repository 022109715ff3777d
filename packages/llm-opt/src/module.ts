/**
 * OPT as a BLIP-2 language-model module (@blip2/generation's spec): its config, graphs,
 * adapter, VQA presets and what `inspect` shows, registered for `model_type: 'opt'`.
 */
import { OPT_TEXT_CONFIG } from '@blip2/configs';
import { defineLanguageModel } from '@blip2/generation';
import { OptAdapter } from './adapter.js';
import { buildOpt } from './opt.js';
import { OPT_VQA_PRESETS } from './presets.js';

export const optModule = defineLanguageModel({
  // OPTConfig's reader (configs/src/opt.ts, transformers' configuration_opt.py): modelType,
  // kind, paddingSide, configClass, parseConfig and the BLIP-2 check on word_embed_proj_dim
  ...OPT_TEXT_CONFIG,
  vqaPresets: OPT_VQA_PRESETS,
  build: buildOpt,
  load: OptAdapter.load,
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
});
