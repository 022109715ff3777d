/**
 * T5's relative position buckets (transformers' `T5Attention._relative_position_bucket`),
 * computed on the CPU and fed to the graphs as int64 indices into
 * `relative_attention_bias`. Exact distances below `max_exact`, then logarithmically
 * wider buckets up to `max_distance`, beyond which everything shares the last one.
 *
 * The reference computes the logarithmic part in float32 and truncates it to an
 * integer, so a value that lands at 1.9999999 instead of 2 changes the bucket:
 * every step here is rounded to float32 (`Math.fround`) exactly where torch rounds.
 */
import { type Tensor, tensor } from '@blip2/tensor';
import { T5Error } from './errors.js';

const f32 = Math.fround;

export interface BucketOptions {
  /** encoder: true (keys before and after the query get different buckets); decoder: false */
  readonly bidirectional: boolean;
  /** `relative_attention_num_buckets` */
  readonly numBuckets: number;
  /** `relative_attention_max_distance` */
  readonly maxDistance: number;
}

/** Bucket of `relativePosition = memory_position - context_position` (key minus query). */
export function relativePositionBucket(relativePosition: number, o: BucketOptions): number {
  let numBuckets = o.numBuckets;
  let bucket = 0;
  let n = relativePosition;
  if (o.bidirectional) {
    numBuckets = Math.floor(numBuckets / 2);
    if (n > 0) bucket += numBuckets;
    n = Math.abs(n);
  } else {
    // causal: only keys at or before the query have a distance; later keys fall in bucket 0
    n = -Math.min(n, 0);
  }
  const maxExact = Math.floor(numBuckets / 2);
  if (n < maxExact) return bucket + n;
  // torch: log(rp.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact),
  // each op in float32 (the Python float scalars are cast to the tensor's dtype)
  const logRatio = f32(Math.log(f32(f32(n) / maxExact)));
  const scaled = f32(f32(logRatio / f32(Math.log(o.maxDistance / maxExact))) * (numBuckets - maxExact));
  const large = Math.min(maxExact + Math.trunc(scaled), numBuckets - 1);
  return bucket + large;
}

/**
 * int64 [queryLength, keyLength]: the bucket of every (query, key) pair when the
 * queries are positions `keyLength - queryLength ..< keyLength` (the reference's
 * `cache_position`): the whole sequence for the encoder, the newest tokens for a
 * decoder step after `keyLength - queryLength` cached ones.
 */
export function positionBuckets(queryLength: number, keyLength: number, o: BucketOptions): Tensor<'int64'> {
  if (
    !Number.isInteger(queryLength) ||
    !Number.isInteger(keyLength) ||
    queryLength < 0 ||
    keyLength < queryLength
  ) {
    throw new T5Error(
      'E_INPUT',
      `position buckets need 0 <= queryLength <= keyLength (integers), got queryLength ${queryLength}, keyLength ${keyLength}`,
    );
  }
  const first = keyLength - queryLength;
  const out = new BigInt64Array(queryLength * keyLength);
  for (let i = 0; i < queryLength; i++) {
    for (let j = 0; j < keyLength; j++)
      out[i * keyLength + j] = BigInt(relativePositionBucket(j - (first + i), o));
  }
  return tensor('int64', [queryLength, keyLength], out);
}
