/**
 * What generation drives: any language model that can take a prompt as
 * embeddings (BLIP-2 puts the Q-Former's query embeddings into the prompt) and
 * then extend it one token at a time with a key/value cache. OPT
 * (decoder-only) and Flan-T5 (encoder-decoder) both implement it, so the
 * search code never knows which it runs.
 */
import type { Tensor } from '@blip2/tensor';

export interface StepOutput<Cache> {
  /**
   * float32 [B, T, V]: logits of what was just fed. Generation scores the last
   * position only, so a prefill may return just that one (T = 1: OPT computes its LM
   * head at the last prompt position; an encoder-decoder's is its decoder start
   * token); a step's T is 1. Every position's logits come from `forward`.
   */
  readonly logits: Tensor<'float32'>;
  readonly cache: Cache;
}

export interface LanguageModelAdapter<Cache = unknown> {
  /** 'decoder-only' (OPT: the sequence continues the prompt) or 'encoder-decoder' (T5: a new decoder sequence) */
  readonly kind: 'decoder-only' | 'encoder-decoder';
  /** For encoder-decoder models: the first decoder token (T5: pad = 0). */
  readonly decoderStartTokenId?: number;
  readonly vocabSize: number;
  /** Longest sequence the position embeddings allow (OPT); undefined when unbounded (T5's relative positions). */
  readonly maxPositions?: number;

  /** Token embeddings float32 [B, T, D] of int64 ids [B, T] (to merge query embeddings with text). */
  embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>>;

  /**
   * Runs the prompt. `inputsEmbeds` float32 [B, T, D], `attentionMask` int64 [B, T]
   * (0 on padding: OPT pads left, T5 right). For an encoder-decoder model this runs
   * the encoder and the decoder on `decoderStartTokenId`.
   */
  prefill(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>): Promise<StepOutput<Cache>>;

  /**
   * Decoder-only models: logits at every prompt position, float32 [B, T, V], no cache
   * (teacher forcing, scoring candidate answers). Absent: the prefill's logits cover
   * every position.
   */
  forward?(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>): Promise<Tensor<'float32'>>;

  /** Feeds one new token per row: int64 [B, 1]. The cache carries masks and positions. */
  step(tokenIds: Tensor<'int64'>, cache: Cache): Promise<StepOutput<Cache>>;

  /**
   * Rows of the cache picked (and repeated) by `rows`: expands a prefilled batch
   * to beams ([0,0,0,1,1,1]) and follows beam search's choices each step.
   */
  reorderCache(cache: Cache, rows: readonly number[]): Promise<Cache>;

  /** Frees what the cache holds on a device (no-op for CPU tensors). */
  releaseCache?(cache: Cache): Promise<void>;
}
