/**
 * The SDK's typed error. Lower packages throw their own (ConfigError,
 * SafetensorsError, GenerationError, ...), each with a stable `code`; the SDK
 * lets those through and adds its own for what only it knows: sources,
 * downloads, weights that do not fit the model, inputs of the pipelines.
 */
export type Blip2ErrorCode =
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
  | 'E_MISSING_WEIGHTS'
  | 'E_WEIGHT_SHAPE'
  | 'E_DTYPE'
  | 'E_INPUT'
  | 'E_IMAGE'
  | 'E_PROMPT_TOO_LONG'
  | 'E_OPTIONS'
  | 'E_BACKEND'
  | 'E_BENCH'; // blip2 bench: its peer or its folders

export class Blip2Error extends Error {
  readonly code: Blip2ErrorCode;
  constructor(code: Blip2ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Blip2Error';
    this.code = code;
  }
}
