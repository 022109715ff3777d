import { Blip2Error } from '@blip2/tensor';

/** Typed errors: every malformed input has a stable `code` and a message naming the file or URL. */

export type SafetensorsErrorCode =
  /** file shorter than the 8-byte header length */
  | 'E_TRUNCATED'
  /** the header length points past the end of the file */
  | 'E_HEADER_LENGTH'
  /** the header length exceeds the configured cap */
  | 'E_HEADER_TOO_LARGE'
  /** the header is not UTF-8 JSON, or not a JSON object, or an entry is not an object */
  | 'E_HEADER_JSON'
  /** a dtype outside F32/F16/BF16/I64/I32/U8/BOOL */
  | 'E_DTYPE'
  /** a shape that is not a list of non-negative integers */
  | 'E_SHAPE'
  /** `data_offsets` not `[begin, end]` integers with begin <= end */
  | 'E_OFFSETS'
  /** `end - begin` differs from product(shape) * dtype size */
  | 'E_BYTE_LENGTH'
  /** a tensor's bytes lie outside the data section */
  | 'E_OUT_OF_RANGE'
  /** two tensors share bytes */
  | 'E_OVERLAP'
  /** bytes of the data section no tensor owns: a gap between tensors, or bytes after the last */
  | 'E_DATA_GAP'
  /** `__metadata__` is not a map of strings */
  | 'E_METADATA'
  /** `model.safetensors.index.json` is malformed */
  | 'E_INDEX'
  /** a shard path that is not a plain file name */
  | 'E_SHARD_PATH'
  /** the index lists a tensor its shard does not hold */
  | 'E_SHARD_MISSING_TENSOR'
  /** a tensor held by two shards */
  | 'E_DUPLICATE_TENSOR'
  /** a weight the caller asked for is not in the checkpoint */
  | 'E_MISSING_WEIGHT'
  /** the file or URL does not exist (404 / ENOENT) */
  | 'E_NOT_FOUND'
  /** 401 / 403: the URL needs (other) credentials */
  | 'E_HTTP_UNAUTHORIZED'
  /** any other HTTP failure (5xx, network error, unexpected status) */
  | 'E_HTTP'
  /** a server answered a Range request with the wrong bytes, or ignored Range on a file too large to download whole */
  | 'E_HTTP_RANGE'
  /** a read outside the file, or a failed file-system read */
  | 'E_IO'
  /** a tensor given to the writer disagrees with its shape or dtype */
  | 'E_WRITE';

export class SafetensorsError extends Blip2Error<SafetensorsErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.SafetensorsError');
  /** file name, path or URL at fault */
  readonly file: string;
  constructor(code: SafetensorsErrorCode, file: string, message: string, options?: { cause?: unknown }) {
    super(code, `${file}: ${message}`, options);
    this.name = 'SafetensorsError';
    this.file = file;
  }
}

export class MissingWeightError extends SafetensorsError {
  static override readonly marker: symbol = Symbol.for('blip2.error.MissingWeightError');
  readonly weight: string;
  constructor(weight: string, checkpoint: string) {
    super('E_MISSING_WEIGHT', checkpoint, `no weight named ${JSON.stringify(weight)} in this checkpoint`);
    this.name = 'MissingWeightError';
    this.weight = weight;
  }
}
