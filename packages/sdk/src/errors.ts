import type { JsonFail } from '@blip2/configs';
import { Blip2Error } from '@blip2/tensor';

/**
 * Every error blip2-ts throws on purpose is a `Blip2Error` (from @blip2/tensor, re-exported
 * here): lower packages throw their subclass (ConfigError, SafetensorsError,
 * GenerationError, ...), each with a stable `code`; the SDK lets those through and throws
 * `SdkError` for what only it knows: sources, downloads, weights that do not fit the
 * model, inputs of the pipelines.
 */
export { Blip2Error };

export type SdkErrorCode =
  | 'E_SOURCE' // not a folder, URL or hub id
  | 'E_MISSING_FILE' // a required file is not in the model source
  | 'E_HTTP_NOT_FOUND'
  | 'E_HTTP_UNAUTHORIZED'
  | 'E_HTTP'
  | 'E_HTTP_TIMEOUT' // no response, or a body slower than the configured minimum
  | 'E_DOWNLOAD_SIZE'
  | 'E_DOWNLOAD_HASH'
  | 'E_ABORTED'
  | 'E_FILE' // a file cannot be written safely (a link, a folder, no permission)
  | 'E_LOCKED' // another live process holds the lock on a file
  | 'E_MODEL_TYPE'
  | 'E_MISSING_WEIGHT'
  | 'E_WEIGHT_SHAPE'
  | 'E_DTYPE'
  | 'E_PACKED_WEIGHT' // an exported folder's packed weights or its quantization.json are damaged
  | 'E_INPUT'
  | 'E_IMAGE'
  | 'E_PROMPT_TOO_LONG'
  | 'E_NAN' // a part's output holds NaN or Infinity; the message names the weight at fault
  | 'E_OPTION' // an option has the wrong type or value, or names a backend or device that does not run here (as @blip2/generation's)
  | 'E_BACKEND'
  | 'E_BENCH'; // blip2 bench: its peer or its folders

/** @deprecated the SDK's codes are `SdkErrorCode`; any blip2-ts error's `code` is a string. */
export type Blip2ErrorCode = SdkErrorCode;

export class SdkError extends Blip2Error<SdkErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.SdkError');
  constructor(code: SdkErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'SdkError';
  }
}

/** How the SDK reports a JSON file it cannot use: E_MISSING_FILE when absent or unreadable, E_INPUT when not JSON. */
export const sdkJsonFail: JsonFail = (fault, file, reason, cause) =>
  new SdkError(fault === 'invalid' ? 'E_INPUT' : 'E_MISSING_FILE', `${file}: ${reason}`, { cause });
