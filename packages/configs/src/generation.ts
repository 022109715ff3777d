/**
 * `generation_config.json` (transformers' `GenerationConfig`): the decoding
 * defaults a checkpoint ships. Token ids stay undefined when absent (the model
 * config supplies them); the search settings take GenerationConfig's defaults.
 */
import { Fields } from './fields.js';

export interface GenerationConfig {
  readonly bosTokenId: number | undefined;
  /** one id or several: generation stops at any of them */
  readonly eosTokenId: number | readonly number[] | undefined;
  readonly padTokenId: number | undefined;
  readonly decoderStartTokenId: number | undefined;
  /** prompt plus new tokens (decoder-only) or decoder tokens (encoder-decoder) */
  readonly maxLength: number;
  /** overrides `maxLength` when set */
  readonly maxNewTokens: number | undefined;
  readonly minLength: number;
  readonly minNewTokens: number | undefined;
  readonly doSample: boolean;
  readonly numBeams: number;
  readonly numReturnSequences: number;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
  /** exponent of the length in beam scores (LAVIS's VQA recipe uses -1) */
  readonly lengthPenalty: number;
  readonly noRepeatNgramSize: number;
  /** beam search stops when `numBeams` hypotheses are done (true), by a heuristic (false), or never early */
  readonly earlyStopping: boolean | 'never';
  readonly useCache: boolean;
}

export function parseGenerationConfig(json: unknown, file = 'generation_config.json'): GenerationConfig {
  const f = Fields.of(json, file);
  const early = f.raw('early_stopping');
  if (early !== undefined && early !== true && early !== false && early !== 'never') {
    throw f.typeError('early_stopping', "true, false or 'never'");
  }
  const temperature = f.number('temperature', 1.0);
  if (temperature < 0) throw f.fieldError('temperature', `must be >= 0, got ${temperature}`);
  const topP = f.number('top_p', 1.0);
  if (topP < 0 || topP > 1) throw f.fieldError('top_p', `must be in [0, 1], got ${topP}`);
  return {
    bosTokenId: f.optionalIndex('bos_token_id'),
    eosTokenId: f.indexOrList('eos_token_id'),
    padTokenId: f.optionalIndex('pad_token_id'),
    decoderStartTokenId: f.optionalIndex('decoder_start_token_id'),
    maxLength: f.size('max_length', 20),
    maxNewTokens: f.has('max_new_tokens') ? f.size('max_new_tokens', 1) : undefined,
    minLength: f.index('min_length', 0),
    minNewTokens: f.optionalIndex('min_new_tokens'),
    doSample: f.bool('do_sample', false),
    numBeams: f.size('num_beams', 1),
    numReturnSequences: f.size('num_return_sequences', 1),
    temperature,
    topK: f.index('top_k', 50),
    topP,
    repetitionPenalty: f.positive('repetition_penalty', 1.0),
    lengthPenalty: f.number('length_penalty', 1.0),
    noRepeatNgramSize: f.index('no_repeat_ngram_size', 0),
    earlyStopping: (early as boolean | 'never' | undefined) ?? false,
    useCache: f.bool('use_cache', true),
  };
}

/** `eosTokenId` as a list (empty when unset). */
export function eosTokenIds(config: Pick<GenerationConfig, 'eosTokenId'>): number[] {
  const e = config.eosTokenId;
  return e === undefined ? [] : typeof e === 'number' ? [e] : [...e];
}
