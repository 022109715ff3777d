/**
 * T5's configuration (transformers' `configuration_t5.py`): the encoder-decoder
 * language model of blip2-flan-t5-*. Defaults are the reference's `T5Config()`.
 */
import { CONFIG_LIMITS, type Fields } from './fields.js';
import { type TextConfigFamily, textConfigFields } from './text-config.js';

export interface T5Config {
  readonly modelType: 't5';
  readonly vocabSize: number;
  /** width of the residual stream */
  readonly dModel: number;
  /** width of one attention head; `numHeads * dKv` need not equal `dModel` */
  readonly dKv: number;
  /** inner width of the feed-forward block */
  readonly dFf: number;
  /** encoder layers */
  readonly numLayers: number;
  /** decoder layers (the reference defaults it to `numLayers`) */
  readonly numDecoderLayers: number;
  readonly numHeads: number;
  /** buckets of the relative position bias (half per direction in the encoder) */
  readonly relativeAttentionNumBuckets: number;
  /** distance beyond which all positions share the last bucket */
  readonly relativeAttentionMaxDistance: number;
  readonly dropoutRate: number;
  /** epsilon of T5's RMS layer norm */
  readonly layerNormEpsilon: number;
  readonly initializerFactor: number;
  /** e.g. 'relu' or 'gated-gelu'; read through `denseActFn` and `isGatedAct` */
  readonly feedForwardProj: string;
  /**
   * The activation of `wi` / `wi_0` (an ACT2FN name). Derived from `feedForwardProj` (the
   * part after 'gated-', with 'gated-gelu' meaning 'gelu_new'), unless the file stores
   * `dense_act_fn`: the published Flan-T5 BLIP-2 checkpoints store 'gelu' (exact GELU).
   */
  readonly denseActFn: string;
  /** `wi_0` (activated) times `wi_1` (linear) instead of a single `wi`; a stored `is_gated_act` wins */
  readonly isGatedAct: boolean;
  readonly isEncoderDecoder: boolean;
  readonly useCache: boolean;
  readonly padTokenId: number;
  readonly eosTokenId: number;
  /** absent in T5's own configs; BLIP-2's conversion stores 1 */
  readonly bosTokenId?: number;
  /**
   * First decoder input: the stored `decoder_start_token_id`, else `bos_token_id` (where
   * transformers' generate falls back to), else the pad token T5 was trained to start from.
   */
  readonly decoderStartTokenId: number;
  readonly classifierDropout: number;
  /** `lm_head` shares `shared` (a checkpoint may omit `lm_head.weight` then) */
  readonly tieWordEmbeddings: boolean;
  /**
   * Multiply the decoder output by `dModel ** -0.5` before `lm_head`. transformers 5
   * writes this field; older files mean it through `tie_word_embeddings` (original
   * T5 ties and rescales, T5 v1.1 / Flan-T5 do neither).
   */
  readonly scaleDecoderOutputs: boolean;
}

export function parseT5Config(f: Fields): T5Config {
  const numLayers = f.size('num_layers', 6, CONFIG_LIMITS.layers);
  const feedForwardProj = f.string('feed_forward_proj', 'relu');
  const actInfo = feedForwardProj.split('-');
  // the reference accepts exactly `{ACT_FN}` or `gated-{ACT_FN}`
  if ((actInfo.length > 1 && actInfo[0] !== 'gated') || actInfo.length > 2 || actInfo.some((p) => p === '')) {
    throw f.fieldError(
      'feed_forward_proj',
      `(${JSON.stringify(feedForwardProj)}) must be of the form 'gated-{ACT_FN}' or '{ACT_FN}', e.g. 'gated-gelu' or 'relu'`,
    );
  }
  // T5Config derives the activation from feed_forward_proj ('gated-gelu' stays the tanh
  // approximation for old checkpoints); then PretrainedConfig sets every remaining stored
  // field, so a stored dense_act_fn / is_gated_act overrides what was derived
  const derivedActFn = feedForwardProj === 'gated-gelu' ? 'gelu_new' : actInfo[actInfo.length - 1];
  const tieWordEmbeddings = f.bool('tie_word_embeddings', true);
  const vocabSize = f.size('vocab_size', 32128, CONFIG_LIMITS.vocab);
  // special tokens index `shared`: an id past its rows is a Gather out of range at run time
  const vocabField = f.path('vocab_size');
  const padTokenId = f.tokenId('pad_token_id', 0, vocabSize, vocabField);
  const bosTokenId = f.optionalTokenId('bos_token_id', vocabSize, vocabField);
  const numBuckets = f.size('relative_attention_num_buckets', 32, CONFIG_LIMITS.positions);
  // the encoder halves the buckets per direction and keeps half of those exact
  // (max_exact = num_buckets // 4): fewer than 4 leaves no exact bucket and the
  // logarithmic ones divide by log(max_distance / 0)
  if (numBuckets < 4) {
    throw f.fieldError('relative_attention_num_buckets', `must be at least 4, got ${numBuckets}`);
  }
  const maxDistance = f.size('relative_attention_max_distance', 128, CONFIG_LIMITS.positions);
  // the decoder's logarithmic buckets divide by log(max_distance / (num_buckets // 2))
  if (maxDistance <= Math.floor(numBuckets / 2)) {
    throw f.fieldError(
      'relative_attention_max_distance',
      `(${maxDistance}) must exceed relative_attention_num_buckets // 2 (${Math.floor(numBuckets / 2)})`,
    );
  }
  return {
    modelType: 't5',
    vocabSize,
    dModel: f.size('d_model', 512, CONFIG_LIMITS.width),
    dKv: f.size('d_kv', 64, CONFIG_LIMITS.width),
    dFf: f.size('d_ff', 2048, CONFIG_LIMITS.width),
    numLayers,
    numDecoderLayers: f.size('num_decoder_layers', numLayers, CONFIG_LIMITS.layers),
    numHeads: f.size('num_heads', 8, CONFIG_LIMITS.heads),
    relativeAttentionNumBuckets: numBuckets,
    relativeAttentionMaxDistance: maxDistance,
    dropoutRate: f.fraction('dropout_rate', 0.1),
    layerNormEpsilon: f.positive('layer_norm_epsilon', 1e-6),
    initializerFactor: f.number('initializer_factor', 1.0),
    feedForwardProj,
    denseActFn: f.string('dense_act_fn', derivedActFn),
    isGatedAct: f.bool('is_gated_act', actInfo[0] === 'gated'),
    isEncoderDecoder: f.bool('is_encoder_decoder', true),
    useCache: f.bool('use_cache', true),
    padTokenId,
    eosTokenId: f.tokenId('eos_token_id', 1, vocabSize, vocabField),
    bosTokenId,
    decoderStartTokenId: f.tokenId('decoder_start_token_id', bosTokenId ?? padTokenId, vocabSize, vocabField),
    classifierDropout: f.fraction('classifier_dropout', 0.0),
    tieWordEmbeddings,
    scaleDecoderOutputs: f.bool('scale_decoder_outputs', tieWordEmbeddings),
  };
}

/** T5's `text_config` reader for @blip2/configs' registry (and @blip2/llm-flan-t5's module). */
export const T5_TEXT_CONFIG: TextConfigFamily<T5Config> = {
  modelType: 't5',
  kind: 'encoder-decoder',
  paddingSide: 'right',
  configClass: 'T5Config',
  parseConfig: (textConfig, file) => parseT5Config(textConfigFields(textConfig, file)),
};
