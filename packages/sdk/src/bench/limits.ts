/**
 * The machine's limits the bench sets each figure against, measured in the same run
 * on the same backend: onnxruntime's rate for one matrix product of a figure's shape
 * (compute-bound figures), its time for one row through every matrix a decode step
 * multiplies (memory-bound figures), the rate at which it reads mapped weights, and the
 * fixed cost of creating a session.
 */
import { readFileSync } from 'node:fs';
import { GraphBuilder, linear, type Value, type WeightLookup } from '@blip2/onnx';
import type { WeightIndex } from '@blip2/safetensors';
import { type Backend, float32, int64 } from '@blip2/tensor';

export const now = (): number => performance.now();

/** The fastest of `runs` timed calls after one warm-up, in ms: limits are what the machine can do, so the best run. */
export async function fastest(runs: number, f: () => Promise<unknown>): Promise<number> {
  await f();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < runs; r++) {
    const t = now();
    await f();
    best = Math.min(best, now() - t);
  }
  return best;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Random values in [-0.5, 0.5) from a fixed seed: inputs whose content does not change a timing. */
export function noise(n: number, seed = 12345): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

/**
 * FLOP/s of one float32 MatMul [m, k] x [k, n] with the right operand an initializer,
 * on `backend` with its own session options: what onnxruntime's kernel reaches at
 * that shape on this machine, whatever graph surrounds it.
 */
export async function matmulRate(backend: Backend, m: number, k: number, n: number): Promise<number> {
  const g = new GraphBuilder(`limit.matmul_${m}x${k}x${n}`);
  const x = g.input('x', 'float32', [m, k]);
  const w = g.constant(float32([k, n], noise(k * n, 7)), 'w');
  g.output(g.op1('MatMul', [x, w]), 'y', 'float32', [m, n]);
  const session = await backend.load(g.build());
  try {
    const feeds = { x: float32([m, k], noise(m * k)) };
    const ms = await fastest(4, () => session.run(feeds));
    return (2 * m * k * n) / (ms / 1000);
  } finally {
    await session.release();
  }
}

/**
 * FLOP/s of one `linear` of `rows` rows over the checkpoint's own weight `name`, in
 * whatever form it is stored (float, or packed: the op its dtype multiplies with,
 * e.g. DynamicQuantizeMatMul for q8), mapped in place as the model's sessions map it:
 * onnxruntime's rate for one product of the figure's shape and dtype.
 */
export async function linearRate(
  backend: Backend,
  weights: WeightLookup,
  name: string,
  rows: number,
): Promise<number> {
  const [n, k] = weights.get(name).shape;
  const g = new GraphBuilder(`limit.linear_${rows}x${k}x${n}`, { weights });
  const x = g.input('x', 'float32', [rows, k]);
  g.output(linear(x, g.weight(name)), 'y', 'float32', [rows, n]);
  const session = await backend.load(g.build());
  try {
    const feeds = { x: float32([rows, k], noise(rows * k)) };
    const ms = await fastest(4, () => session.run(feeds));
    return (2 * rows * k * n) / (ms / 1000);
  } finally {
    await session.release();
  }
}

/**
 * Bytes/s at which onnxruntime reads weights mapped in place from the checkpoint:
 * a ReduceSum over each of `names` (the axes are a graph input, so the sums cannot be
 * constant-folded at session creation), the fastest of a few runs with the pages
 * already in the page cache. This is the floor of every memory-bound figure.
 */
export async function readBandwidth(
  backend: Backend,
  weights: WeightIndex,
  names: readonly string[],
): Promise<number> {
  const g = new GraphBuilder('limit.read_weights', { weights });
  const axes = g.input('axes', 'int64', [2]);
  let total: ReturnType<GraphBuilder['input']> | undefined;
  let bytes = 0;
  for (const name of names) {
    const sum = g.op1('ReduceSum', [g.weight(name), axes], { keepdims: 0 });
    total = total ? g.op1('Add', [total, sum]) : sum;
    bytes += weights.get(name).byteLength;
  }
  if (!total) throw new Error('readBandwidth: no weights named');
  g.output(total, 'sum', 'float32', []);
  const session = await backend.load(g.build());
  try {
    const ms = await fastest(3, () => session.run({ axes: int64([2], [0, 1]) }));
    return bytes / (ms / 1000);
  } finally {
    await session.release();
  }
}

/**
 * `rows` rows (default 1) through each of `matrices` (logical [out, in] names in
 * `weights`, a lookup that shows packed weights as the model's graphs see them),
 * multiplied by `linear` as the model's step of that many rows multiplies it: Gemm over a
 * mapped float32 weight at one row, weight-first from two rows up where the backend
 * multiplies several rows so (`batchedLinears`), MatMulNBits over 4-bit blocks,
 * DynamicQuantizeMatMul over int8, in one graph run one after another (onnxruntime runs
 * a graph's nodes in turn, each on every intra-op thread, as in a step). The fastest of
 * three runs, in ms: a decode step of `rows` rows cannot beat this without reading fewer
 * bytes, and unlike a reduction over the same bytes it reads them with the kernels the
 * step reads them with.
 */
export async function stepProductsTime(
  backend: Backend,
  weights: WeightLookup,
  matrices: readonly string[],
  rows = 1,
): Promise<number> {
  const weightFirst = rows > 1 && backend.capabilities.batchedLinears === 'weight-first';
  const g = new GraphBuilder(`limit.step_products_${rows}`, { weights });
  const inputs = new Map<number, Value>();
  const input = (width: number) => {
    let x = inputs.get(width);
    if (!x) {
      x = g.input(`x${width}`, 'float32', [rows, width]);
      inputs.set(width, x);
    }
    return x;
  };
  let total: Value | undefined;
  for (const name of matrices) {
    const [, width] = weights.get(name).shape;
    // each product summed to a scalar: the graph's output costs nothing beside the weights
    const product = linear(input(width), g.weight(name), null, { weightFirst });
    const sum = g.op1('ReduceSum', [product], { keepdims: 0 });
    total = total ? g.op1('Add', [total, sum]) : sum;
  }
  if (!total) throw new Error('stepProductsTime: no matrices named');
  g.output(total, 'sum', 'float32', []);
  const session = await backend.load(g.build());
  try {
    const feeds = Object.fromEntries(
      [...inputs.keys()].map((width) => [`x${width}`, float32([rows, width], noise(rows * width))]),
    );
    return await fastest(3, () => session.run(feeds));
  } finally {
    await session.release();
  }
}

/** ms to create one session of a one-node graph: onnxruntime's fixed cost per session. */
export async function sessionFloor(backend: Backend): Promise<number> {
  const g = new GraphBuilder('limit.empty');
  g.output(g.op1('Relu', [g.input('x', 'float32', [1])]), 'y', 'float32', [1]);
  const graph = g.build();
  return fastest(3, async () => (await backend.load(graph)).release());
}

/** Resident memory from /proc/self/status, and file pages' proportional share (each session maps the weights). */
export function memory(): { rss: number; anon: number; file: number; pssFile: number } {
  const kb = (text: string, key: string) =>
    Number(new RegExp(`${key}:\\s+(\\d+)`).exec(text)?.[1] ?? Number.NaN) * 1024;
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8');
    return {
      rss: kb(status, 'VmRSS'),
      anon: kb(status, 'RssAnon'),
      file: kb(status, 'RssFile'),
      pssFile: kb(rollup, 'Pss_File'),
    };
  } catch {
    // not Linux: RSS only
    const rss = process.memoryUsage().rss;
    return { rss, anon: rss, file: 0, pssFile: 0 };
  }
}
