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
 *
 * Beam search's cache moves neither: row b's token at slot t lies in buffer row
 * `pastRows[b, t]` (int64 [rows, slots]), a step writes each row's new token into its
 * own buffer row, and a reorder only picks rows of `pastRows` (and of the mask:
 * pastRows'[b, t] = pastRows[beam_idx[b], t], a `gather` of a few hundred ints). The
 * step graph attends over every buffer row's slots, masked to the row's own.
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

/**
 * `t`'s first `filled` slots (axis 2) in a new zeroed buffer of `capacity` slots and
 * `rows` rows (default `t`'s; more when beams outnumber the rows they started from).
 */
export function withCapacity(
  t: Tensor<'float32'>,
  filled: number,
  capacity: number,
  rows = t.dims[0],
): Tensor<'float32'> {
  const [had, heads, slots, headDim] = t.dims;
  const out = new Float32Array(rows * heads * capacity * headDim);
  const keep = filled * headDim;
  for (let r = 0; r < had * heads; r++) {
    const from = r * slots * headDim;
    out.set(t.data.subarray(from, from + keep), r * capacity * headDim);
  }
  return tensor('float32', [rows, heads, capacity, headDim], out);
}

/**
 * Writes `fresh` [rows, heads, n, head_dim] into slots [at, at + n) of `buffer`'s first
 * `rows` rows, in place (a beam cache's buffers may hold more rows than it has beams).
 */
export function writeSlots(buffer: Tensor<'float32'>, at: number, fresh: Tensor<'float32'>): void {
  const [bufferRows, heads, capacity, headDim] = buffer.dims;
  const [rows, , n] = fresh.dims;
  if (rows > bufferRows || fresh.dims[1] !== heads || fresh.dims[3] !== headDim || at + n > capacity) {
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

/** `pastRows` for a cache whose row b holds its own tokens: b at every one of `slots` slots. */
export function ownRows(rows: number, slots: number): Tensor<'int64'> {
  const out = new BigInt64Array(rows * slots);
  for (let r = 0; r < rows; r++) out.fill(BigInt(r), r * slots, (r + 1) * slots);
  return tensor('int64', [rows, slots], out);
}

/** A copy of `pastRows` with slot `at` of row b set to b: a step wrote each row's token into its own buffer row. */
export function ownSlot(pastRows: Tensor<'int64'>, at: number): Tensor<'int64'> {
  const [rows, slots] = pastRows.dims;
  const out = pastRows.data.slice();
  for (let r = 0; r < rows; r++) out[r * slots + at] = BigInt(r);
  return tensor('int64', [rows, slots], out);
}

/**
 * The first `filled` slots of each row of a beam cache, gathered from the buffer rows
 * `pastRows` names into a plain [rows, heads, filled, head_dim] tensor: for the steps
 * that read a cache row by row (one row left, several new tokens), never for beams.
 */
export function gatherSlots(
  buffer: Tensor<'float32'>,
  pastRows: Tensor<'int64'>,
  filled: number,
): Tensor<'float32'> {
  const [, heads, capacity, headDim] = buffer.dims;
  const [rows, slots] = pastRows.dims;
  const out = new Float32Array(rows * heads * filled * headDim);
  for (let b = 0; b < rows; b++) {
    for (let t = 0; t < filled; t++) {
      const from = Number(pastRows.data[b * slots + t]);
      for (let h = 0; h < heads; h++) {
        const at = ((from * heads + h) * capacity + t) * headDim;
        out.set(buffer.data.subarray(at, at + headDim), ((b * heads + h) * filled + t) * headDim);
      }
    }
  }
  return tensor('float32', [rows, heads, filled, headDim], out);
}
