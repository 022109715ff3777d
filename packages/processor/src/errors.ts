import { Blip2Error, unknownOptionMessage } from '@blip2/tensor';

/**
 * Every bad input surfaces as a `ProcessorError` with a stable `code`, so callers can
 * branch on the code and users read which file, field or value was at fault.
 */
export type ProcessorErrorCode =
  | 'E_IMAGE_DECODE' // bytes that no decoder could read (truncated, corrupt)
  | 'E_IMAGE_FORMAT' // a container we do not decode (e.g. TIFF in a browser, SVG)
  | 'E_IMAGE_EMPTY' // zero width or height
  | 'E_IMAGE_INPUT' // a value that is not an image at all, or raw pixels of the wrong length
  | 'E_IMAGE_FILE' // a path that cannot be read, or is not a regular file (a FIFO, a device)
  | 'E_IMAGE_TOO_LARGE' // more bytes or pixels than the limits (limits.ts) allow
  | 'E_CONFIG' // a preprocessor/processor config field with a wrong type or value
  | 'E_TOKENIZER_FILE' // tokenizer.json missing or unreadable
  | 'E_TOKENIZER_JSON' // tokenizer.json present but malformed or using an unsupported component
  | 'E_TEXT' // text of the wrong type
  | 'E_TOKEN_ID' // an id outside the vocabulary
  | 'E_BATCH' // images and texts that cannot be paired
  | 'E_DEPENDENCY' // an optional peer dependency (sharp) is not installed
  | 'E_OPTION'; // an options object holding a name the call does not take (a typo)

export class ProcessorError extends Blip2Error<ProcessorErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.ProcessorError');
  constructor(code: ProcessorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ProcessorError';
  }
}

/** Refuses an options object with a name outside `known`, suggesting the closest (E_OPTION). */
export function checkOptionNames(options: unknown, known: readonly string[], where: string): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new ProcessorError('E_OPTION', `${where} must be an object, got ${describe(options)}`);
  const unknown = unknownOptionMessage(options, known, where);
  if (unknown) throw new ProcessorError('E_OPTION', unknown);
}

/** A short, printable description of any value, for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'Object'})`;
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}
