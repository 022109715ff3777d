/**
 * A key/value cache kept in JavaScript buffers with free slots, which a step appends
 * into in place: the step graph reads the buffers where they lie (onnxruntime-node
 * wraps an input's memory without copying it) and outputs only the new tokens' keys
 * and values. The alternative, a step graph that outputs the whole grown cache, costs
 * a Concat of the cache in onnxruntime and then, far more, onnxruntime-node's copy of
 * every output into a new (zero-filled) JavaScript buffer: at 200 positions of
 * OPT-2.7b, 131 MB per step.
 *
 * Layout: [rows, heads, slots, head_dim] per layer and key/value, the same as a
 * present.* output; slots [0, filled) hold tokens (or padding, masked), slots
 * [filled, capacity) are free (zeros or stale values, always finite, always masked).
 */
import { type Tensor, tensor } from '@blip2/tensor';

/**
 * Who may append to a set of buffers: the slots some cache built on them has filled.
 * Caches share it; a cache whose `filled` is below it is an older one (a step already
 * appended after it), which must copy the buffers before appending.
 */
export interface SlotClaim {
  claimed: number;
}

/** Free slots added when a cache must grow: a copy of the buffers every this many steps. */
export const SLOT_ROOM = 64;

/** `t`'s first `filled` slots (axis 2) in a new zeroed buffer of `capacity` slots. */
export function withCapacity(t: Tensor<'float32'>, filled: number, capacity: number): Tensor<'float32'> {
  const [rows, heads, slots, headDim] = t.dims;
  const out = new Float32Array(rows * heads * capacity * headDim);
  const keep = filled * headDim;
  for (let r = 0; r < rows * heads; r++) {
    const from = r * slots * headDim;
    out.set(t.data.subarray(from, from + keep), r * capacity * headDim);
  }
  return tensor('float32', [rows, heads, capacity, headDim], out);
}

/** Writes `fresh` [rows, heads, n, head_dim] into slots [at, at + n) of `buffer`, in place. */
export function writeSlots(buffer: Tensor<'float32'>, at: number, fresh: Tensor<'float32'>): void {
  const [rows, heads, capacity, headDim] = buffer.dims;
  const n = fresh.dims[2];
  if (fresh.dims[0] !== rows || fresh.dims[1] !== heads || fresh.dims[3] !== headDim || at + n > capacity) {
    throw new Error(
      `internal: [${fresh.dims}] does not fit slots ${at}..${at + n} of a [${buffer.dims}] cache buffer`,
    );
  }
  const size = n * headDim;
  for (let r = 0; r < rows * heads; r++) {
    buffer.data.set(fresh.data.subarray(r * size, (r + 1) * size), (r * capacity + at) * headDim);
  }
}

/** `mask`'s first `filled` slots in a new [rows, capacity] mask, the rest 0 (free). */
export function maskWithCapacity(mask: Tensor<'int64'>, filled: number, capacity: number): Tensor<'int64'> {
  const [rows, slots] = mask.dims;
  const out = new BigInt64Array(rows * capacity);
  for (let r = 0; r < rows; r++) out.set(mask.data.subarray(r * slots, r * slots + filled), r * capacity);
  return tensor('int64', [rows, capacity], out);
}

/** A copy of `mask` [rows, slots] with slots [at, at + n) set to 1 (tokens just written there). */
export function maskFilled(mask: Tensor<'int64'>, at: number, n: number): Tensor<'int64'> {
  const [rows, slots] = mask.dims;
  const out = mask.data.slice();
  for (let r = 0; r < rows; r++) out.fill(1n, r * slots + at, r * slots + at + n);
  return tensor('int64', [rows, slots], out);
}
