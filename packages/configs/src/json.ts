/**
 * The one way a blip2-ts package turns a JSON file into a value: `parseJson` here
 * (browser-safe, for text fetched or read by the caller), `readJsonFile` /
 * `readJsonFileSync` in `@blip2/configs/node`. Each package keeps its own typed
 * error: it passes `fail`, which makes the error from the fault and a reason that
 * the message prefixes with the file.
 */

/** Why a JSON file gave no value: it is absent, it cannot be read, or it is not JSON. */
export type JsonFault = 'missing' | 'unreadable' | 'invalid';

/**
 * Makes the error a JSON reader throws. `file` is the path or URL at fault, `reason`
 * says what is wrong with it ('not valid JSON (Unexpected end of JSON input)');
 * `${file}: ${reason}` is the message a package that does not format its own uses.
 */
export type JsonFail = (fault: JsonFault, file: string, reason: string, cause?: unknown) => Error;

/** JSON.parse of `text`, the contents of `file`; invalid JSON is `fail('invalid', ...)`. */
export function parseJson(text: string, file: string, fail: JsonFail): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw fail('invalid', file, `not valid JSON (${(e as Error).message})`, e);
  }
}
