/**
 * BLIP-2's configuration (transformers' `configuration_blip_2.py`): the EVA ViT
 * image encoder, the Q-Former, and the language model it feeds, read from a
 * checkpoint's `config.json` in either the transformers 4.x or 5.x spelling.
 */
import { CONFIG_LIMITS, ConfigError, checkHeads, Fields, show } from './fields.js';
import { OPT_TEXT_CONFIG, type OPTConfig } from './opt.js';
import { T5_TEXT_CONFIG, type T5Config } from './t5.js';
import {
  familyOf,
  type LanguageModelConfig,
  registeredTextModelTypes,
  registerTextConfig,
  type TextConfigFamily,
  textConfigFamily,
} from './text-config.js';

// The published checkpoints' families are readable without a language-model package, so
// presets, `inspect` and generation defaults parse them in a browser bundle without onnx;
// their modules (@blip2/llm-opt, @blip2/llm-flan-t5) register these same readers.
registerTextConfig(OPT_TEXT_CONFIG);
registerTextConfig(T5_TEXT_CONFIG);

export interface Blip2VisionConfig {
  readonly modelType: 'blip_2_vision_model';
  /** width of the ViT (1408 for EVA ViT-g) */
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  /** side of the square input image in pixels */
  readonly imageSize: number;
  /** side of a square patch (the stride of `patch_embedding`) */
  readonly patchSize: number;
  readonly hiddenAct: string;
  readonly layerNormEps: number;
  readonly attentionDropout: number;
  readonly initializerRange: number;
  /** q and v biases on the fused `qkv` projection (no k bias in the reference) */
  readonly qkvBias: boolean;
}

export interface Blip2QFormerConfig {
  readonly modelType: 'blip_2_qformer';
  /** BERT vocabulary (unused for captioning: the queries have no text input) */
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly intermediateSize: number;
  readonly hiddenAct: string;
  readonly hiddenDropoutProb: number;
  readonly attentionProbsDropoutProb: number;
  readonly maxPositionEmbeddings: number;
  readonly initializerRange: number;
  readonly layerNormEps: number;
  readonly padTokenId: number;
  readonly positionEmbeddingType: string;
  /** a layer `i` cross-attends to the image when `i % crossAttentionFrequency === 0` */
  readonly crossAttentionFrequency: number;
  /** width of the image embeddings the cross-attention reads (= `visionConfig.hiddenSize`) */
  readonly encoderHiddenSize: number;
  readonly useQformerTextInput: boolean;
}

/** The text configs of the published checkpoints' families (any registered family's config is a `LanguageModelConfig`). */
export type TextConfig = OPTConfig | T5Config;

/**
 * The config type of each `text_config.model_type`, for the types `parseTextConfigJson`
 * returns. The published families' are here; a family's own package adds its type where it
 * registers its module, by declaration merging:
 * `declare module '@blip2/configs' { interface TextConfigRegistry { llama: LlamaConfig } }`.
 */
export interface TextConfigRegistry {
  opt: OPTConfig;
  t5: T5Config;
}

/**
 * BLIP-2 heads whose checkpoints hold no language model (the image-text retrieval ones:
 * Salesforce/blip2-itm-vit-g and -coco, which train the Q-Former's text side instead).
 */
export const UNSUPPORTED_ARCHITECTURES = [
  'Blip2ForImageTextRetrieval',
  'Blip2TextModelWithProjection',
  'Blip2VisionModelWithProjection',
] as const;

export interface Blip2Config<Text extends LanguageModelConfig = LanguageModelConfig> {
  readonly modelType: 'blip-2';
  readonly visionConfig: Blip2VisionConfig;
  readonly qformerConfig: Blip2QFormerConfig;
  /** parsed by the family registered for `text_config.model_type` (an `OPTConfig`, a `T5Config`, ...) */
  readonly textConfig: Text;
  /** learned queries, hence image tokens per image (32 in every published checkpoint) */
  readonly numQueryTokens: number;
  readonly imageTextHiddenSize: number;
  /**
   * Id of the `<image>` token whose positions receive the query embeddings
   * (`image_token_index` in 4.x files, `image_token_id` in newer ones). Absent in
   * checkpoints saved before the processor started inserting image tokens.
   */
  readonly imageTokenIndex: number | undefined;
  readonly initializerFactor: number;
  readonly initializerRange: number;
  /** the family's `kind`: decoder-only (OPT) models take the query embeddings before the prompt, encoder-decoder (T5) ones in the encoder */
  readonly useDecoderOnlyLanguageModel: boolean;
  readonly isEncoderDecoder: boolean;
}

export function parseVisionConfig(f: Fields): Blip2VisionConfig {
  const hiddenSize = f.size('hidden_size', 1408, CONFIG_LIMITS.width);
  const numAttentionHeads = f.size('num_attention_heads', 16, CONFIG_LIMITS.heads);
  // Blip2Attention raises when `embed_dim` does not split into heads
  checkHeads(f, 'num_attention_heads', 'hidden_size', numAttentionHeads, hiddenSize);
  const imageSize = f.size('image_size', 224, CONFIG_LIMITS.imageSize);
  const patchSize = f.size('patch_size', 14, CONFIG_LIMITS.imageSize);
  if (patchSize > imageSize)
    throw f.fieldError('patch_size', `(${patchSize}) exceeds image_size (${imageSize})`);
  // the stride-patch_size convolution would drop the last pixels of each row and column
  // while the position table counts (image_size // patch_size) ** 2 patches
  if (imageSize % patchSize !== 0) {
    throw f.fieldError('patch_size', `(${patchSize}) does not divide image_size (${imageSize})`);
  }
  return {
    modelType: 'blip_2_vision_model',
    hiddenSize,
    intermediateSize: f.size('intermediate_size', 6144, CONFIG_LIMITS.width),
    numHiddenLayers: f.size('num_hidden_layers', 39, CONFIG_LIMITS.layers),
    numAttentionHeads,
    imageSize,
    patchSize,
    hiddenAct: f.string('hidden_act', 'gelu'),
    layerNormEps: f.positive('layer_norm_eps', 1e-6),
    attentionDropout: f.fraction('attention_dropout', 0.0),
    initializerRange: f.number('initializer_range', 1e-10),
    qkvBias: f.bool('qkv_bias', true),
  };
}

export function parseQFormerConfig(f: Fields): Blip2QFormerConfig {
  const hiddenSize = f.size('hidden_size', 768, CONFIG_LIMITS.width);
  const numAttentionHeads = f.size('num_attention_heads', 12, CONFIG_LIMITS.heads);
  checkHeads(f, 'num_attention_heads', 'hidden_size', numAttentionHeads, hiddenSize);
  const vocabSize = f.size('vocab_size', 30522, CONFIG_LIMITS.vocab);
  return {
    modelType: 'blip_2_qformer',
    vocabSize,
    hiddenSize,
    numHiddenLayers: f.size('num_hidden_layers', 12, CONFIG_LIMITS.layers),
    numAttentionHeads,
    intermediateSize: f.size('intermediate_size', 3072, CONFIG_LIMITS.width),
    hiddenAct: f.string('hidden_act', 'gelu'),
    hiddenDropoutProb: f.fraction('hidden_dropout_prob', 0.1),
    attentionProbsDropoutProb: f.fraction('attention_probs_dropout_prob', 0.1),
    maxPositionEmbeddings: f.size('max_position_embeddings', 512, CONFIG_LIMITS.positions),
    initializerRange: f.number('initializer_range', 0.02),
    layerNormEps: f.positive('layer_norm_eps', 1e-12),
    padTokenId: f.tokenId('pad_token_id', 0, vocabSize, f.path('vocab_size')),
    positionEmbeddingType: f.string('position_embedding_type', 'absolute'),
    crossAttentionFrequency: f.size('cross_attention_frequency', 2, CONFIG_LIMITS.layers),
    encoderHiddenSize: f.size('encoder_hidden_size', 1408, CONFIG_LIMITS.width),
    useQformerTextInput: f.bool('use_qformer_text_input', false),
  };
}

/** `text_config` read by its family; a family that forgets to carry its `model_type` gets it named. */
function parseTextConfig(f: Fields, family: TextConfigFamily): LanguageModelConfig {
  const config = family.parseConfig(f.obj, f.file);
  if (config.modelType !== family.modelType) {
    throw new ConfigError(
      'E_MODEL_TYPE',
      f.file,
      `the '${family.modelType}' text config reader returned a config of model type ${show(config.modelType)}`,
      f.path('model_type'),
    );
  }
  return config;
}

function checkSubType(f: Fields, expected: string): void {
  const t = f.optionalString('model_type');
  if (t !== undefined && t !== expected) {
    throw new ConfigError(
      'E_MODEL_TYPE',
      f.file,
      `${f.path('model_type')} ${show(t)} is not supported (expected '${expected}')`,
      f.path('model_type'),
    );
  }
}

/** Extra top-level fields for `Blip2Config.fromVisionQformerTextConfigs`. */
export interface Blip2ConfigExtra {
  readonly numQueryTokens?: number;
  readonly imageTextHiddenSize?: number;
  readonly imageTokenIndex?: number;
  readonly initializerFactor?: number;
  readonly initializerRange?: number;
}

/** The checks across sub-configs, shared by the parser and the constructor. */
function assemble<Text extends LanguageModelConfig>(
  file: string,
  visionConfig: Blip2VisionConfig,
  qformerConfig: Blip2QFormerConfig,
  textConfig: Text,
  family: TextConfigFamily,
  extra: Blip2ConfigExtra,
): Blip2Config<Text> {
  const { numQueryTokens = 32, imageTokenIndex } = extra;
  if (!Number.isInteger(numQueryTokens) || numQueryTokens < 1 || numQueryTokens > CONFIG_LIMITS.queryTokens) {
    throw new ConfigError(
      'E_CONFIG_FIELD',
      file,
      `num_query_tokens must be an integer in [1, ${CONFIG_LIMITS.queryTokens}], got ${show(numQueryTokens)}`,
      'num_query_tokens',
    );
  }
  if (imageTokenIndex !== undefined && !(imageTokenIndex >= 0 && imageTokenIndex < textConfig.vocabSize)) {
    throw new ConfigError(
      'E_CONFIG_FIELD',
      file,
      `image_token_index (${imageTokenIndex}) is outside text_config.vocab_size (${textConfig.vocabSize})`,
      'image_token_index',
    );
  }
  family.checkForBlip2?.(textConfig, file);
  const decoderOnly = family.kind === 'decoder-only';
  return {
    modelType: 'blip-2',
    visionConfig,
    // the reference overwrites the Q-Former's cross-attention width with the ViT's
    qformerConfig: { ...qformerConfig, encoderHiddenSize: visionConfig.hiddenSize },
    textConfig,
    numQueryTokens,
    imageTextHiddenSize: extra.imageTextHiddenSize ?? 256,
    imageTokenIndex,
    initializerFactor: extra.initializerFactor ?? 1.0,
    initializerRange: extra.initializerRange ?? 0.02,
    useDecoderOnlyLanguageModel: decoderOnly,
    isEncoderDecoder: !decoderOnly,
  };
}

/**
 * Parses a BLIP-2 `config.json` (its parsed JSON). Absent fields take the
 * reference's defaults; `file` names the source in error messages. `text_config` goes to
 * the family registered for its `model_type`, or to `options.textConfig` when that is the
 * family it names (a module passed to `fromPretrained` without being registered).
 */
export function parseBlip2Config(
  json: unknown,
  file = 'config.json',
  options: { readonly textConfig?: TextConfigFamily } = {},
): Blip2Config {
  const f = Fields.of(json, file);
  const modelType = f.raw('model_type');
  if (modelType !== 'blip-2') {
    throw new ConfigError(
      'E_MODEL_TYPE',
      file,
      `model_type ${show(modelType)} is not supported (expected 'blip-2')`,
      'model_type',
    );
  }
  checkArchitectures(f);
  const vision = f.sub('vision_config');
  checkSubType(vision, 'blip_2_vision_model');
  const qformer = f.sub('qformer_config');
  checkSubType(qformer, 'blip_2_qformer');
  const imageTokenIndex = f.optionalIndex('image_token_index') ?? f.optionalIndex('image_token_id');
  if (
    f.has('image_token_index') &&
    f.has('image_token_id') &&
    f.raw('image_token_index') !== f.raw('image_token_id')
  ) {
    throw f.fieldError(
      'image_token_id',
      `(${show(f.raw('image_token_id'))}) disagrees with image_token_index (${show(f.raw('image_token_index'))})`,
    );
  }
  const text = f.sub('text_config');
  const family = familyOf(text, options.textConfig);
  const config = assemble(
    file,
    parseVisionConfig(vision),
    parseQFormerConfig(qformer),
    parseTextConfig(text, family),
    family,
    {
      numQueryTokens: f.size('num_query_tokens', 32, CONFIG_LIMITS.queryTokens),
      imageTextHiddenSize: f.size('image_text_hidden_size', 256, CONFIG_LIMITS.width),
      imageTokenIndex,
      initializerFactor: f.number('initializer_factor', 1.0),
      initializerRange: f.number('initializer_range', 0.02),
    },
  );
  // Blip2Config derives this from text_config.model_type; 4.x then ignores a stored value
  // and 5.x lets it win, building the wrong kind of language model: refuse a disagreement
  const storedDecoderOnly = f.has('use_decoder_only_language_model')
    ? f.bool('use_decoder_only_language_model', false)
    : undefined;
  if (storedDecoderOnly !== undefined && storedDecoderOnly !== config.useDecoderOnlyLanguageModel) {
    throw f.fieldError(
      'use_decoder_only_language_model',
      `(${storedDecoderOnly}) contradicts text_config.model_type '${config.textConfig.modelType}' (${config.useDecoderOnlyLanguageModel ? 'a decoder-only' : 'an encoder-decoder'} language model)`,
    );
  }
  return config;
}

function checkArchitectures(f: Fields): void {
  const v = f.raw('architectures');
  if (v === undefined) return;
  if (!Array.isArray(v) || v.some((a) => typeof a !== 'string')) {
    throw f.typeError('architectures', 'a list of class names');
  }
  const refused = v.find((a: string) => (UNSUPPORTED_ARCHITECTURES as readonly string[]).includes(a));
  if (refused !== undefined) {
    throw new ConfigError(
      'E_ARCHITECTURE',
      f.file,
      `architectures names ${show(refused)}, an image-text retrieval checkpoint without a language model; blip2-ts runs Blip2ForConditionalGeneration checkpoints (captioning, VQA)`,
      'architectures',
    );
  }
}

/**
 * The reference's classmethod `Blip2Config.from_vision_qformer_text_configs`:
 * a config from three parsed sub-configs (a type and a value share the name).
 */
export const Blip2Config = {
  fromVisionQformerTextConfigs<Text extends LanguageModelConfig>(
    visionConfig: Blip2VisionConfig,
    qformerConfig: Blip2QFormerConfig,
    textConfig: Text,
    extra: Blip2ConfigExtra = {},
  ): Blip2Config<Text> {
    const file = 'Blip2Config.fromVisionQformerTextConfigs';
    const family = textConfigFamily(textConfig.modelType);
    if (!family) {
      throw new ConfigError(
        'E_MODEL_TYPE',
        file,
        `textConfig.modelType ${show(textConfig.modelType)} is not supported (supported: ${registeredTextModelTypes()
          .map((t) => `'${t}'`)
          .join(', ')})`,
        'text_config.model_type',
      );
    }
    return assemble(file, visionConfig, qformerConfig, textConfig, family, extra);
  },
};

/** Sub-config parsers over plain JSON (e.g. a `text_config` object on its own). */
export function parseBlip2VisionConfig(
  json: unknown,
  file = 'config.json',
  prefix = 'vision_config.',
): Blip2VisionConfig {
  return parseVisionConfig(Fields.of(json, file, prefix));
}

export function parseBlip2QFormerConfig(
  json: unknown,
  file = 'config.json',
  prefix = 'qformer_config.',
): Blip2QFormerConfig {
  return parseQFormerConfig(Fields.of(json, file, prefix));
}

/**
 * A `text_config` object on its own, read by the family its `model_type` names: typed as
 * that family's config where `model_type` is a literal of `TextConfigRegistry` (an
 * `OPTConfig` for `'opt'`), as a `LanguageModelConfig` when the type is only known at run time.
 */
export function parseTextConfigJson<M extends keyof TextConfigRegistry>(
  json: { readonly model_type: M } & Readonly<Record<string, unknown>>,
  file?: string,
): TextConfigRegistry[M];
export function parseTextConfigJson(json: unknown, file?: string): LanguageModelConfig;
export function parseTextConfigJson(json: unknown, file = 'config.json'): LanguageModelConfig {
  const f = Fields.of(json, file, 'text_config.');
  // the registered family's reader made it: TextConfigRegistry says which type that is
  return parseTextConfig(f, familyOf(f));
}
