import { describe, expect, it } from 'vitest';
import { positionBuckets, relativePositionBucket, T5Error } from '../src/index.js';

/**
 * A second, independent reading of transformers' `_relative_position_bucket`, written
 * the way torch evaluates it: whole Float32Array/Int32Array "tensors", each
 * elementwise op rounding to float32, `.to(torch.long)` truncating.
 */
function torchStyleBuckets(
  relative: Int32Array,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): Int32Array {
  const n = relative.length;
  const buckets = new Int32Array(n);
  let rp = Int32Array.from(relative);
  if (bidirectional) {
    numBuckets = Math.floor(numBuckets / 2);
    for (let i = 0; i < n; i++) buckets[i] += (rp[i] > 0 ? 1 : 0) * numBuckets;
    rp = rp.map(Math.abs);
  } else {
    rp = rp.map((v) => -Math.min(v, 0));
  }
  const maxExact = Math.floor(numBuckets / 2);
  const asFloat = Float32Array.from(rp);
  const ratio = asFloat.map((v) => v / maxExact);
  const logged = ratio.map(Math.log);
  const divided = logged.map((v) => v / Math.fround(Math.log(maxDistance / maxExact)));
  const scaled = divided.map((v) => v * (numBuckets - maxExact));
  const large = Int32Array.from(scaled, (v) => Math.min(maxExact + Math.trunc(v), numBuckets - 1));
  for (let i = 0; i < n; i++) buckets[i] += rp[i] < maxExact ? rp[i] : large[i];
  return buckets;
}

describe('relative position buckets', () => {
  const settings = [
    { numBuckets: 32, maxDistance: 128 }, // every published T5 / Flan-T5
    { numBuckets: 8, maxDistance: 16 }, // the tiny fixture
    { numBuckets: 7, maxDistance: 20 }, // odd counts: the integer halvings matter
    { numBuckets: 64, maxDistance: 256 },
  ];
  for (const s of settings) {
    for (const bidirectional of [true, false]) {
      it(`match the torch-style port for |distance| <= 600 (${s.numBuckets} buckets, max ${s.maxDistance}, ${bidirectional ? 'encoder' : 'decoder'})`, () => {
        const relative = Int32Array.from({ length: 1201 }, (_, i) => i - 600);
        const expected = torchStyleBuckets(relative, bidirectional, s.numBuckets, s.maxDistance);
        const actual = Array.from(relative, (r) => relativePositionBucket(r, { bidirectional, ...s }));
        expect(actual).toEqual(Array.from(expected));
        expect(Math.max(...actual)).toBeLessThan(s.numBuckets);
      });
    }
  }

  it('land exactly on the logarithmic boundaries that float rounding could push down', () => {
    const enc = { bidirectional: true, numBuckets: 32, maxDistance: 128 };
    const dec = { bidirectional: false, numBuckets: 32, maxDistance: 128 };
    // encoder: 16 per side, exact below 8; 8 * 16^(k/8): 16 -> +2, 32 -> +4, 64 -> +6
    expect([-1, 1, -7, 7, -8, 8].map((r) => relativePositionBucket(r, enc))).toEqual([1, 17, 7, 23, 8, 24]);
    expect([-16, 16, -32, 32, -64, 64].map((r) => relativePositionBucket(r, enc))).toEqual([
      10, 26, 12, 28, 14, 30,
    ]);
    expect([-127, -128, -5000, 5000].map((r) => relativePositionBucket(r, enc))).toEqual([15, 15, 15, 31]);
    // decoder: keys after the query all fall in bucket 0; exact below 16, then 16 + trunc(log(n/16) / log(8) * 16)
    expect([3, 1, 0, -1, -15, -16, -20, -32, -64, -128].map((r) => relativePositionBucket(r, dec))).toEqual([
      0, 0, 0, 1, 15, 16, 17, 21, 26, 31,
    ]);
  });

  it('tabulate (query, key) pairs with the queries at the end of the keys', () => {
    const o = { bidirectional: false, numBuckets: 8, maxDistance: 16 };
    // a decoder step: one query at position 5 over keys 0..5
    const step = positionBuckets(1, 6, o);
    expect(step.dims).toEqual([1, 6]);
    expect(Array.from(step.data, Number)).toEqual(
      [5, 5, 3, 2, 1, 0].map((d) => relativePositionBucket(-d, o)),
    );
    const full = positionBuckets(3, 3, { ...o, bidirectional: true });
    expect(Array.from(full.data, Number)).toEqual(
      [0, 1, 2, -1, 0, 1, -2, -1, 0].map((r) => relativePositionBucket(r, { ...o, bidirectional: true })),
    );
    expect(() => positionBuckets(4, 3, o)).toThrow(T5Error);
    expect(() => positionBuckets(4, 3, o)).toThrow(/queryLength 4, keyLength 3/);
  });
});
