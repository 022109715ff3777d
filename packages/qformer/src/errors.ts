// A weight absent from the checkpoint or of another shape than the config implies is
// @blip2/onnx's GraphBuildError (E_MISSING_WEIGHT, E_WEIGHT_SHAPE), as in every module.

/** What went wrong, as a stable string a caller can branch on. */
export type QFormerErrorCode =
  /** an option or config value the graph cannot be built with */
  'E_OPTION';

export class QFormerError extends Error {
  readonly code: QFormerErrorCode;
  constructor(code: QFormerErrorCode, message: string) {
    super(message);
    this.name = 'QFormerError';
    this.code = code;
  }
}
