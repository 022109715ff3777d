import { describe, expect, it } from 'vitest';
import {
  argmax,
  bfloat16ToFloat32,
  checkFeeds,
  concat,
  float16ToFloat32,
  float32,
  float32ToBfloat16,
  float32ToFloat16,
  gather,
  int64,
  logSoftmax,
  maxAbsDiff,
  reshape,
  slice,
  softmax,
  TensorError,
  tensor,
  topk,
} from '../src/index.js';

describe('tensor constructors', () => {
  it('checks dims against data', () => {
    expect(tensor('float32', [2, 3], new Float32Array(6)).dims).toEqual([2, 3]);
    expect(() => tensor('float32', [2, 3], new Float32Array(5))).toThrow(/hold 6 elements but data has 5/);
    expect(() => tensor('int64', [1], new Float32Array(1) as never)).toThrow(TensorError);
    expect(() => float32([-1])).toThrow(/invalid dimension/);
  });
});

describe('half precision', () => {
  it('round-trips float16 with round-to-nearest-even (numpy semantics)', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65520, 0x7c00], // rounds to inf
      [2 ** -24, 0x0001], // smallest subnormal
      [1 + 2 ** -11, 0x3c00], // tie -> even
      [1 + 3 * 2 ** -11, 0x3c02], // tie -> even (up)
      [0.1, 0x2e66],
    ];
    for (const [x, h] of cases) expect(float32ToFloat16(x)).toBe(h);
    for (let h = 0; h < 0x7c00; h += 37) expect(float32ToFloat16(float16ToFloat32(h))).toBe(h);
    expect(Number.isNaN(float16ToFloat32(0x7e00))).toBe(true);
  });

  it('round-trips bfloat16', () => {
    expect(float32ToBfloat16(1)).toBe(0x3f80);
    expect(bfloat16ToFloat32(0x3f80)).toBe(1);
    expect(float32ToBfloat16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(float32ToBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    for (let h = 0; h < 0x7f80; h += 101) expect(float32ToBfloat16(bfloat16ToFloat32(h))).toBe(h);
  });
});

describe('scoring helpers', () => {
  it('argmax takes the first maximum', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
  });
  it('argmax picks a NaN over any number, the first of several, as torch.argmax does', () => {
    expect(argmax(new Float32Array([1, Number.NaN, 3, Number.NaN]))).toBe(1);
    expect(argmax([Number.NEGATIVE_INFINITY, -1])).toBe(1);
  });
  it('logSoftmax writes in place when given its row as the output', () => {
    const row = new Float32Array([0.5, -2, 3, 3]);
    const fresh = logSoftmax(row);
    expect(logSoftmax(row, row)).toBe(row);
    expect(row).toEqual(fresh);
  });
  it('logSoftmax and softmax', () => {
    const ls = logSoftmax([1, 2, 3]);
    const denom = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    expect(ls[0]).toBeCloseTo(1 - denom, 6);
    expect(Array.from(softmax([1000, 1000])).map((v) => v.toFixed(6))).toEqual(['0.500000', '0.500000']);
  });
  it('topk is sorted, lower index first on ties', () => {
    const best = topk([0.1, 0.5, 0.3, 0.5, 0.2], 3);
    expect([...best.values]).toEqual([0.5, 0.5, 0.3].map(Math.fround));
    expect([...best.indices]).toEqual([1, 3, 2]);
    expect([...topk([1, 2], 5).indices]).toEqual([1, 0]);
    // into the caller's buffers, as beam search reuses them every step
    const out = { values: new Float32Array(2), indices: new Int32Array(2) };
    expect(topk(Float32Array.of(4, 9, 9, 1), 2, out)).toEqual(out);
    expect([...out.indices]).toEqual([1, 2]);
  });
});

describe('batch-axis helpers', () => {
  const t = float32([2, 3], [0, 1, 2, 3, 4, 5]);
  it('concat', () => {
    expect(Array.from(concat([t, t], 0).data)).toEqual([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
    expect(concat([t, t], 1).dims).toEqual([2, 6]);
    expect(Array.from(concat([t, t], 1).data)).toEqual([0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]);
    expect(() => concat([t, float32([3, 2])], 0)).toThrow(/concat on axis 0/);
  });
  it('slice, gather, reshape', () => {
    expect(Array.from(slice(t, 1, 1, 3).data)).toEqual([1, 2, 4, 5]);
    expect(Array.from(gather(t, 0, [1, 1, 0]).data)).toEqual([3, 4, 5, 3, 4, 5, 0, 1, 2]);
    expect(() => gather(t, 0, [2])).toThrow(/out of range/);
    expect(reshape(t, [3, -1]).dims).toEqual([3, 2]);
  });
  it('maxAbsDiff', () => {
    expect(maxAbsDiff(t, float32([2, 3], [0, 1, 2, 3, 4, 5.5]))).toBe(0.5);
    expect(() => maxAbsDiff(t, float32([3, 2]))).toThrow(/shapes differ/);
  });
});

describe('checkFeeds', () => {
  const inputs = [
    { name: 'ids', dtype: 'int64' as const, dims: ['batch', 'seq'] },
    { name: 'mask', dtype: 'int64' as const, dims: ['batch', 'seq'] },
  ];
  it('names missing, extra, mistyped and misshapen inputs', () => {
    const ids = int64([1, 2], [1, 2]);
    expect(() => checkFeeds('g', inputs, { ids })).toThrow(/missing mask/);
    expect(() => checkFeeds('g', inputs, { ids, mask: ids, x: ids })).toThrow(/unexpected x/);
    expect(() => checkFeeds('g', inputs, { ids, mask: float32([1, 2]) })).toThrow(
      /'mask' must be int64, got float32/,
    );
    expect(() => checkFeeds('g', inputs, { ids, mask: int64([1, 3], [1, 1, 1]) })).toThrow(
      /'seq' is 2 in one input but 3/,
    );
    expect(() => checkFeeds('g', inputs, { ids, mask: ids })).not.toThrow();
  });
});
