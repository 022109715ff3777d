import { Blip2Error } from '@blip2/tensor';

/** What the CLI does with a failure: a usage mistake exits 2 with the usage text, anything else exits 1. */
export class UsageError extends Blip2Error<'E_USAGE'> {
  static override readonly marker: symbol = Symbol.for('blip2.error.UsageError');
  constructor(
    message: string,
    /** the usage text to show after the message */
    readonly usage: string,
  ) {
    super('E_USAGE', message);
    this.name = 'UsageError';
  }
}

/** `blip2: <message>`; the stack only with --verbose or when the error has no stable `code` (a bug, not a bad input). */
export function formatError(e: unknown, verbose: boolean): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as { code?: unknown }).code;
  const typed = typeof code === 'string';
  if (verbose || !typed) return `blip2: ${err.stack ?? err.message}${typed ? ` [${code}]` : ''}`;
  return `blip2: ${err.message}`;
}
