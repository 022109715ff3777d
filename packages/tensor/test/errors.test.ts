import { describe, expect, it } from 'vitest';
import { Blip2Error, TensorError } from '../src/index.js';

class ChildError extends TensorError {
  static override readonly marker: symbol = Symbol.for('blip2.error.test.ChildError');
}

describe('Blip2Error', () => {
  it('keeps code, name, message and cause', () => {
    const cause = new RangeError('inner');
    const e = new TensorError('E_AXIS', 'axis 3 out of range for rank 2', { cause });
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e).toMatchObject({
      name: 'TensorError',
      code: 'E_AXIS',
      message: 'axis 3 out of range for rank 2',
    });
    expect(e.cause).toBe(cause);
  });

  it('isInstance follows the class chain', () => {
    const child = new ChildError('E_DTYPE', 'x');
    expect(Blip2Error.isInstance(child)).toBe(true);
    expect(TensorError.isInstance(child)).toBe(true);
    expect(ChildError.isInstance(child)).toBe(true);
    const base = new Blip2Error('E_X', 'x');
    expect(Blip2Error.isInstance(base)).toBe(true);
    expect(TensorError.isInstance(base)).toBe(false);
    expect(ChildError.isInstance(new TensorError('E_DTYPE', 'x'))).toBe(false);
    for (const v of [new Error('x'), { code: 'E_AXIS' }, null, undefined, 'E_AXIS', 3])
      expect(Blip2Error.isInstance(v)).toBe(false);
  });

  it('isInstance recognizes errors of another copy of the package, where instanceof does not', async () => {
    // A second module instance of the same source: what an ESM + CJS pair or two installed versions give.
    const copy = '../src/errors.ts?copy';
    const other: typeof import('../src/errors.js') = await import(/* @vite-ignore */ copy);
    expect(other.TensorError).not.toBe(TensorError);
    const foreign = new other.TensorError('E_SHAPE', 'x');
    expect(foreign).not.toBeInstanceOf(TensorError);
    expect(TensorError.isInstance(foreign)).toBe(true);
    expect(Blip2Error.isInstance(foreign)).toBe(true);
    expect(other.Blip2Error.isInstance(new TensorError('E_SHAPE', 'x'))).toBe(true);
  });

  it('the marker is not an enumerable field (errors print and serialize as before)', () => {
    const e = new TensorError('E_EMPTY', 'concat of no tensors');
    expect(Object.getOwnPropertySymbols(e)).toHaveLength(2);
    expect(JSON.parse(JSON.stringify(e))).toEqual({ name: 'TensorError', code: 'E_EMPTY' });
  });
});
