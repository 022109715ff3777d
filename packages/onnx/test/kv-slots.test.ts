import { float32, int64 } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { maskFilled, maskWithCapacity, withCapacity, writeSlots } from '../src/index.js';

// [rows 2, heads 1, slots 2, head_dim 2]: row r, slot s holds 10r + s in both of its values
const cache = () => float32([2, 1, 2, 2], [0, 0, 1, 1, 10, 10, 11, 11]);

describe('key/value slot buffers', () => {
  it('grow to a capacity with the filled slots kept per row and the rest zero', () => {
    const grown = withCapacity(cache(), 2, 4);
    expect(grown.dims).toEqual([2, 1, 4, 2]);
    expect([...grown.data]).toEqual([0, 0, 1, 1, 0, 0, 0, 0, 10, 10, 11, 11, 0, 0, 0, 0]);
    // only the filled slots are copied
    expect([...withCapacity(cache(), 1, 3).data]).toEqual([0, 0, 0, 0, 0, 0, 10, 10, 0, 0, 0, 0]);
  });

  it('take new tokens into free slots in place, and refuse what does not fit', () => {
    const buffer = withCapacity(cache(), 2, 4);
    writeSlots(buffer, 2, float32([2, 1, 1, 2], [2, 2, 12, 12]));
    expect([...buffer.data]).toEqual([0, 0, 1, 1, 2, 2, 0, 0, 10, 10, 11, 11, 12, 12, 0, 0]);
    expect(() => writeSlots(buffer, 3, float32([2, 1, 2, 2], new Array(8).fill(1)))).toThrow(
      /does not fit slots 3\.\.5/,
    );
  });

  it('masks: free slots 0, written slots 1, the original mask untouched', () => {
    const mask = int64([2, 2], [0, 1, 1, 1]);
    const wide = maskWithCapacity(mask, 2, 4);
    expect([...wide.data].map(Number)).toEqual([0, 1, 0, 0, 1, 1, 0, 0]);
    const filled = maskFilled(wide, 2, 1);
    expect([...filled.data].map(Number)).toEqual([0, 1, 1, 0, 1, 1, 1, 0]);
    expect([...wide.data].map(Number)).toEqual([0, 1, 0, 0, 1, 1, 0, 0]);
  });
});
