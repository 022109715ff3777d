/**
 * The few CPU helpers generation and the SDK need between graph runs: scoring the
 * last position's logits and rearranging batch rows (beams, padding). Everything
 * heavier runs inside an onnxruntime graph.
 */
import { TensorError } from './errors.js';
import { type DataOf, type DType, sizeOf, type Tensor, tensor } from './tensor.js';

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new TensorError('E_AXIS', `axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Index of the largest value of a row (first one on ties, as torch.argmax). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  let bestV = row[0];
  for (let i = 1; i < row.length; i++) {
    if (row[i] > bestV || (Number.isNaN(row[i]) && !Number.isNaN(bestV))) {
      bestV = row[i];
      best = i;
    }
  }
  return best;
}

/**
 * log(softmax(row)) with float64 sums and float32 results (torch's log_softmax accumulates
 * wider too), written into `out` (a new array by default; `row` itself to work in place).
 */
export function logSoftmax(
  row: ArrayLike<number>,
  out: Float32Array = new Float32Array(row.length),
): Float32Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

export function softmax(row: ArrayLike<number>): Float32Array {
  const out = logSoftmax(row);
  for (let i = 0; i < out.length; i++) out[i] = Math.exp(out[i]);
  return out;
}

/** `topk`'s result: values and their indices in the row, largest first. */
export interface TopK {
  readonly values: Float32Array;
  readonly indices: Int32Array;
}

/**
 * The k largest values of `row` with their indices, largest first; equal values keep
 * the lower index first (torch.topk on CPU returns them in that order for sorted=True).
 * O(n k): k is small (beams x 2). Writes into `out` when given (beam search reuses its
 * buffers every step; they must hold min(k, n)), else into new arrays.
 */
export function topk(row: ArrayLike<number>, k: number, out?: TopK): TopK {
  k = Math.min(k, row.length);
  const { values, indices } = out ?? { values: new Float32Array(k), indices: new Int32Array(k) };
  let size = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (size === k && !(v > values[k - 1])) continue;
    let pos = size < k ? size++ : k - 1;
    while (pos > 0 && v > values[pos - 1]) {
      values[pos] = values[pos - 1];
      indices[pos] = indices[pos - 1];
      pos--;
    }
    values[pos] = v;
    indices[pos] = i;
  }
  return { values, indices };
}

function outer(dims: readonly number[], axis: number): { before: number; after: number } {
  let before = 1;
  for (let i = 0; i < axis; i++) before *= dims[i];
  let after = 1;
  for (let i = axis + 1; i < dims.length; i++) after *= dims[i];
  return { before, after };
}

function alloc<D extends DType>(like: Tensor<D>, n: number): DataOf[D] {
  return new (like.data.constructor as new (n: number) => DataOf[D])(n);
}

/** Concatenation along `axis` (all other dims equal). */
export function concat<D extends DType>(ts: readonly Tensor<D>[], axis = 0): Tensor<D> {
  if (ts.length === 0) throw new TensorError('E_EMPTY', 'concat of no tensors');
  const rank = ts[0].dims.length;
  axis = normAxis(axis, rank);
  for (const t of ts) {
    if (t.dtype !== ts[0].dtype) throw new TensorError('E_DTYPE', `concat of ${ts[0].dtype} and ${t.dtype}`);
    if (t.dims.length !== rank || t.dims.some((d, i) => i !== axis && d !== ts[0].dims[i]))
      throw new TensorError('E_SHAPE', `concat on axis ${axis}: [${ts[0].dims}] vs [${t.dims}]`);
  }
  const dims = [...ts[0].dims];
  dims[axis] = ts.reduce((s, t) => s + t.dims[axis], 0);
  const out = alloc(ts[0], sizeOf(dims));
  const { before, after } = outer(dims, axis);
  let off = 0;
  for (let b = 0; b < before; b++) {
    for (const t of ts) {
      const chunk = t.dims[axis] * after;
      (out as Uint8Array).set((t.data as Uint8Array).subarray(b * chunk, (b + 1) * chunk), off);
      off += chunk;
    }
  }
  return tensor(ts[0].dtype, dims, out);
}

/** Elements `start..end` (end exclusive) along `axis`. */
export function slice<D extends DType>(t: Tensor<D>, axis: number, start: number, end: number): Tensor<D> {
  axis = normAxis(axis, t.dims.length);
  const n = t.dims[axis];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = Math.max(0, Math.min(n, start));
  end = Math.max(start, Math.min(n, end));
  return gather(
    t,
    axis,
    Array.from({ length: end - start }, (_, i) => start + i),
  );
}

/** Rows `indices` along `axis`, in that order (repeats allowed: beam reordering). */
export function gather<D extends DType>(t: Tensor<D>, axis: number, indices: readonly number[]): Tensor<D> {
  axis = normAxis(axis, t.dims.length);
  const n = t.dims[axis];
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= n)
      throw new TensorError('E_INDEX', `index ${i} out of range [0, ${n}) on axis ${axis}`);
  }
  const dims = [...t.dims];
  dims[axis] = indices.length;
  const out = alloc(t, sizeOf(dims));
  const { before, after } = outer(t.dims, axis);
  let off = 0;
  for (let b = 0; b < before; b++) {
    const base = b * n * after;
    for (const i of indices) {
      (out as Uint8Array).set((t.data as Uint8Array).subarray(base + i * after, base + (i + 1) * after), off);
      off += after;
    }
  }
  return tensor(t.dtype, dims, out);
}

/** Same data, new dims (one -1 allowed). */
export function reshape<D extends DType>(t: Tensor<D>, dims: readonly number[]): Tensor<D> {
  const n = t.data.length;
  const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const resolved = dims.map((d) => (d === -1 ? n / known : d));
  return tensor(t.dtype, resolved, t.data);
}

/** Row `i` of the last axis viewed flat: logits[b, -1, :] for a [B, T, V] tensor is row(b*T + T-1). */
export function lastAxisRow(t: Tensor<'float32'>, i: number): Float32Array {
  const v = t.dims[t.dims.length - 1];
  return t.data.subarray(i * v, (i + 1) * v);
}

/** Largest |a - b| over two same-shaped float tensors (the fixtures' parity measure). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) {
    throw new TensorError('E_SHAPE', `shapes differ: [${a.dims}] vs [${b.dims}]`);
  }
  let m = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(Number(a.data[i]) - Number(b.data[i]));
    if (d > m || Number.isNaN(d)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

/**
 * Index of the first NaN or ±Infinity in `data`, or -1: the check that a model's output
 * (or a weight) holds numbers at all. `x - x` is 0 for every finite x and NaN otherwise,
 * one subtraction per element.
 */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (x - x !== 0) return i;
  }
  return -1;
}
