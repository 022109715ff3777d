import { Blip2Error } from '@blip2/tensor';

// A weight absent from the checkpoint or of another shape than the config implies is
// @blip2/onnx's GraphBuildError (E_MISSING_WEIGHT, E_WEIGHT_SHAPE), as in every module.

/** What went wrong, as a stable string a caller can branch on. */
export type QFormerErrorCode =
  /** an option or config value the graph cannot be built with */
  'E_OPTION';

export class QFormerError extends Blip2Error<QFormerErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.QFormerError');
  constructor(code: QFormerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'QFormerError';
  }
}
