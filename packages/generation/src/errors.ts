import { Blip2Error } from '@blip2/tensor';

/**
 * Every way generation can refuse its input. `code` is stable (tests and callers
 * switch on it); the message names the option or tensor at fault and its value.
 */
export type GenerationErrorCode =
  | 'E_OPTION' // an option has the wrong type or range (message names it)
  | 'E_NUM_BEAMS'
  | 'E_MAX_NEW_TOKENS'
  | 'E_MAX_LENGTH'
  | 'E_NUM_RETURN_SEQUENCES'
  | 'E_TEMPERATURE'
  | 'E_TOP_P'
  | 'E_TOP_K'
  | 'E_BAD_WORDS'
  | 'E_TOKEN_ID'
  | 'E_INPUT' // an input tensor has the wrong dtype or rank
  | 'E_BATCH' // input tensors disagree on the batch size (or length)
  | 'E_PROMPT_TOO_LONG'
  | 'E_ADAPTER' // the adapter lacks something or returned logits of the wrong shape
  | 'E_NO_CANDIDATES' // every token was masked out: nothing to sample
  | 'E_CONFIG' // generation_config.json is malformed
  | 'E_IMAGE_TOKENS' // a prompt row's <image> tokens do not match the query embeddings
  | 'E_ABORTED'
  | 'E_NAN_LOGITS'; // the language model's logits hold NaN or Infinity (broken weights or inputs)

export class GenerationError extends Blip2Error<GenerationErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.GenerationError');
  constructor(code: GenerationErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'GenerationError';
  }
}
