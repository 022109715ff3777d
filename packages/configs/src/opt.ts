/**
 * OPT's configuration (transformers' `configuration_opt.py`): the decoder-only
 * language model of blip2-opt-*. Defaults are the reference's `OPTConfig()`.
 */
import { CONFIG_LIMITS, ConfigError, checkHeads, type Fields } from './fields.js';
import { type TextConfigFamily, textConfigFields } from './text-config.js';

export interface OPTConfig {
  readonly modelType: 'opt';
  /** rows of `embed_tokens` (and of `lm_head`) */
  readonly vocabSize: number;
  /** width of the decoder layers */
  readonly hiddenSize: number;
  readonly numHiddenLayers: number;
  /** inner width of the feed-forward block (`fc1` out, `fc2` in) */
  readonly ffnDim: number;
  /** learned positions; OPT's position table has 2 extra rows (offset 2) */
  readonly maxPositionEmbeddings: number;
  /** pre-LN (every published OPT but 350m) vs post-LN */
  readonly doLayerNormBefore: boolean;
  /** drop `final_layer_norm` (only for converted metaseq checkpoints) */
  readonly removeFinalLayerNorm: boolean;
  /**
   * width of `embed_tokens`; `project_in`/`project_out` exist when it differs from
   * `hiddenSize` (OPT-350m), which a BLIP-2 config refuses (`OPT_TEXT_CONFIG.checkForBlip2`)
   */
  readonly wordEmbedProjDim: number;
  readonly dropout: number;
  readonly attentionDropout: number;
  readonly numAttentionHeads: number;
  /** activation of `fc1` (ACT2FN name, 'relu' for OPT) */
  readonly activationFunction: string;
  readonly layerdrop: number;
  readonly initStd: number;
  readonly useCache: boolean;
  readonly padTokenId: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  /** biases on the attention and feed-forward linears */
  readonly enableBias: boolean;
  /** layer norms carry weight and bias */
  readonly layerNormElementwiseAffine: boolean;
  /** `lm_head` shares `embed_tokens` (a checkpoint may omit `lm_head.weight` then) */
  readonly tieWordEmbeddings: boolean;
}

export function parseOPTConfig(f: Fields): OPTConfig {
  const hiddenSize = f.size('hidden_size', 768, CONFIG_LIMITS.width);
  const numAttentionHeads = f.size('num_attention_heads', 12, CONFIG_LIMITS.heads);
  // OPTAttention raises when the heads do not split the width evenly
  checkHeads(f, 'num_attention_heads', 'hidden_size', numAttentionHeads, hiddenSize);
  // the reference: `word_embed_proj_dim if word_embed_proj_dim is not None else hidden_size`
  const wordEmbedProjDim = f.size('word_embed_proj_dim', hiddenSize, CONFIG_LIMITS.width);
  const vocabSize = f.size('vocab_size', 50272, CONFIG_LIMITS.vocab);
  // special tokens index embed_tokens: an id past its rows is a Gather out of range at run time
  const tokenId = (name: string, dflt: number) => f.tokenId(name, dflt, vocabSize, f.path('vocab_size'));
  return {
    modelType: 'opt',
    vocabSize,
    hiddenSize,
    numHiddenLayers: f.size('num_hidden_layers', 12, CONFIG_LIMITS.layers),
    ffnDim: f.size('ffn_dim', 3072, CONFIG_LIMITS.width),
    maxPositionEmbeddings: f.size('max_position_embeddings', 2048, CONFIG_LIMITS.positions),
    doLayerNormBefore: f.bool('do_layer_norm_before', true),
    removeFinalLayerNorm: f.bool('_remove_final_layer_norm', false),
    wordEmbedProjDim,
    dropout: f.fraction('dropout', 0.1),
    attentionDropout: f.fraction('attention_dropout', 0.0),
    numAttentionHeads,
    activationFunction: f.string('activation_function', 'relu'),
    layerdrop: f.fraction('layerdrop', 0.0),
    initStd: f.number('init_std', 0.02),
    useCache: f.bool('use_cache', true),
    padTokenId: tokenId('pad_token_id', 1),
    bosTokenId: tokenId('bos_token_id', 2),
    eosTokenId: tokenId('eos_token_id', 2),
    enableBias: f.bool('enable_bias', true),
    layerNormElementwiseAffine: f.bool('layer_norm_elementwise_affine', true),
    tieWordEmbeddings: f.bool('tie_word_embeddings', true),
  };
}

/** OPT's `text_config` reader for @blip2/configs' registry (and @blip2/llm-opt's module). */
export const OPT_TEXT_CONFIG: TextConfigFamily<OPTConfig> = {
  modelType: 'opt',
  kind: 'decoder-only',
  paddingSide: 'left',
  configClass: 'OPTConfig',
  parseConfig: (textConfig, file) => parseOPTConfig(textConfigFields(textConfig, file)),
  checkForBlip2(config, file) {
    if (config.wordEmbedProjDim === config.hiddenSize) return;
    // language_projection emits hidden_size features that take the place of word
    // embeddings, which are word_embed_proj_dim wide: transformers 4.x fails at the
    // concatenation and 5.x scatters mismatched rows without a word
    throw new ConfigError(
      'E_CONFIG_FIELD',
      file,
      `text_config.word_embed_proj_dim (${config.wordEmbedProjDim}) differs from text_config.hidden_size (${config.hiddenSize}): BLIP-2 projects its queries to hidden_size and places them among the word embeddings, so the two must be equal (an OPT-350m-like language model with project_in/project_out cannot be used)`,
      'text_config.word_embed_proj_dim',
    );
  },
};
