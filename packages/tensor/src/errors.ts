/**
 * The one error base of blip2-ts. Every package throws a subclass with its own
 * typed `code` union; a code names one condition across all packages (a weight
 * the checkpoint lacks is `E_MISSING_WEIGHT` wherever it is found), so callers
 * can branch on `code` without knowing which package noticed.
 *
 * `instanceof` fails when two copies of a package are loaded (an ESM and a CJS
 * build, or two versions in node_modules), so each class also marks its
 * instances with a `Symbol.for` key and `isInstance` checks the mark.
 */
const MARKER = Symbol.for('blip2.error');

type Marks = Record<symbol, unknown>;

export class Blip2Error<C extends string = string> extends Error {
  /** The key that marks instances of this class (and of its subclasses). Subclasses declare their own. */
  static readonly marker: symbol = MARKER;

  /** A stable string naming the condition, e.g. 'E_MISSING_WEIGHT'. */
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Blip2Error';
    this.code = code;
    // Mark with every class of the chain, so `ParentError.isInstance(childError)` holds too.
    for (
      let c: unknown = new.target;
      typeof c === 'function' && 'marker' in c;
      c = Object.getPrototypeOf(c)
    ) {
      Object.defineProperty(this, (c as typeof Blip2Error).marker, { value: true });
    }
  }

  /**
   * Whether `error` is an instance of this class, also when it was thrown by another
   * copy of the package: `Blip2Error.isInstance(e)` for any blip2-ts error,
   * `ConfigError.isInstance(e)` for one class.
   */
  static isInstance<E extends Blip2Error>(
    this: { readonly marker: symbol; readonly prototype: E },
    error: unknown,
  ): error is E {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class isInstance was called on, so each subclass checks its own marker
    return typeof error === 'object' && error !== null && (error as Marks)[this.marker] === true;
  }
}

/** What `@blip2/tensor` refuses: tensors whose dtype, dims or data disagree, or an axis out of range. */
export type TensorErrorCode =
  | 'E_DTYPE' // a dtype the operation or runtime does not take
  | 'E_DIMS' // a negative or non-integer dimension
  | 'E_SIZE' // data whose length disagrees with dims
  | 'E_AXIS'
  | 'E_EMPTY'
  | 'E_SHAPE' // tensors whose shapes cannot be combined
  | 'E_INDEX' // a row index outside the tensor
  | 'E_FEEDS' // a session feed missing, extra, or of another dtype/shape than the graph declares
  | 'E_DISPOSED'; // a device tensor used after it was released

export class TensorError extends Blip2Error<TensorErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.TensorError');
  constructor(code: TensorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'TensorError';
  }
}
