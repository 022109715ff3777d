/** What went wrong, as a stable string a caller can branch on. */
export type QFormerErrorCode =
  /** a weight the config needs is not in the checkpoint */
  | 'E_MISSING_WEIGHT'
  /** a weight's stored shape disagrees with the config */
  | 'E_WEIGHT_SHAPE'
  /** an option or config value the graph cannot be built with */
  | 'E_OPTION';

export class QFormerError extends Error {
  readonly code: QFormerErrorCode;
  /** the checkpoint weight at fault, when there is one */
  readonly weight?: string;
  constructor(code: QFormerErrorCode, message: string, weight?: string) {
    super(message);
    this.name = 'QFormerError';
    this.code = code;
    this.weight = weight;
  }
}
