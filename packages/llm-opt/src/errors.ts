import { Blip2Error } from '@blip2/tensor';

/**
 * Every way the OPT module can refuse its input. `code` is stable (callers and
 * tests switch on it); the message names the tensor or option at fault and the
 * value found. A weight the checkpoint lacks or stores in another shape is
 * @blip2/onnx's GraphBuildError instead, as in every model module.
 */
export type OptErrorCode =
  /** a prompt row attends to more tokens than `max_position_embeddings` allows */
  | 'E_PROMPT_TOO_LONG'
  /** generation would run past the last learned position */
  | 'E_SEQUENCE_TOO_LONG'
  /** an input tensor has the wrong dtype, rank or size */
  | 'E_INPUT'
  /** the config names an activation this module does not implement */
  | 'E_ACTIVATION'
  /** no `<image>` positions to hold the query embeddings, or a different number of them */
  | 'E_IMAGE_TOKENS'
  /** a session returned something the graph does not promise */
  | 'E_SESSION'
  /** reorderCache was given rows the cache does not have, or a device cache it cannot move */
  | 'E_CACHE';

export class OptError extends Blip2Error<OptErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.OptError');
  constructor(code: OptErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'OptError';
  }
}
