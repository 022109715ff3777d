/** What went wrong, as a stable string a caller can branch on. */
export type VisionEncoderErrorCode =
  /** a weight the config needs is not in the checkpoint */
  | 'E_MISSING_WEIGHT'
  /** a weight's stored shape disagrees with the config */
  | 'E_WEIGHT_SHAPE'
  /** an option is out of range */
  | 'E_OPTION';

export class VisionEncoderError extends Error {
  readonly code: VisionEncoderErrorCode;
  /** the checkpoint weight at fault, when there is one */
  readonly weight?: string;
  constructor(code: VisionEncoderErrorCode, message: string, weight?: string) {
    super(message);
    this.name = 'VisionEncoderError';
    this.code = code;
    this.weight = weight;
  }
}
