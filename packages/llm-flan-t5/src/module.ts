/**
 * T5 / Flan-T5 as a BLIP-2 language-model module (@blip2/generation's spec): its config,
 * graphs, adapter, VQA presets and what `inspect` shows, registered for `model_type: 't5'`.
 */
import { T5_TEXT_CONFIG } from '@blip2/configs';
import { defineLanguageModel } from '@blip2/generation';
import { T5Adapter } from './adapter.js';
import { buildT5 } from './modeling.js';
import { T5_VQA_PRESETS } from './presets.js';

export const t5Module = defineLanguageModel({
  // T5Config's reader (configs/src/t5.ts, transformers' configuration_t5.py): modelType,
  // kind, paddingSide, configClass and parseConfig
  ...T5_TEXT_CONFIG,
  vqaPresets: T5_VQA_PRESETS,
  build: buildT5,
  load: T5Adapter.load,
  summary(config, raw, file) {
    const start =
      raw.decoder_start_token_id != null
        ? `${file} text_config.decoder_start_token_id`
        : config.bosTokenId !== undefined
          ? `${file} text_config.bos_token_id`
          : "text_config.pad_token_id (T5's start token)";
    return {
      text: {
        modelType: 't5',
        dModel: config.dModel,
        encoderLayers: config.numLayers,
        decoderLayers: config.numDecoderLayers,
        heads: config.numHeads,
        vocabSize: config.vocabSize,
      },
      activation: {
        value: `${config.denseActFn}${config.isGatedAct ? ' (gated)' : ''}`,
        source:
          raw.dense_act_fn != null
            ? `${file} text_config.dense_act_fn`
            : `derived from ${file} text_config.feed_forward_proj ${JSON.stringify(config.feedForwardProj)}`,
      },
      decoderStartTokenId: { value: config.decoderStartTokenId, source: start },
    };
  },
  encoderLastHiddenState: async (adapter, inputsEmbeds, attentionMask) =>
    (await adapter.encode(inputsEmbeds, attentionMask)).lastHiddenState,
});
