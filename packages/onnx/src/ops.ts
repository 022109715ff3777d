/**
 * Op helpers that read like a forward pass: `add(x, attn)`, `layerNorm(x, w, b, eps)`,
 * `linear(x, fc1)`. Plain numbers become float32 scalar constants; integer
 * vectors (shapes, axes) go through `ints`.
 */
import { type DType, float32, int64 } from '@blip2/tensor';
import { GraphBuildError, type LinearWeight, MS_DOMAIN, onnxType, Value } from './graph.js';
import { PACKED_OPS, Q4_ACCURACY_LEVEL, q4PaddedK } from './quantize.js';

type Operand = Value | number;

function graphOf(...xs: Operand[]) {
  for (const x of xs) if (x instanceof Value) return x.graph;
  throw new GraphBuildError('E_NO_GRAPH', 'an op needs at least one graph value among its operands');
}

function val(g: Value['graph'], x: Operand): Value {
  return x instanceof Value ? x : g.constant(float32([], [x]), 'scalar');
}

/** An int64 constant vector (shapes, axes, indices). */
export function ints(g: Value['graph'], values: readonly number[]): Value {
  return g.constant(int64([values.length], values), 'ints');
}

/** An int64 scalar constant. */
export function intScalar(g: Value['graph'], value: number): Value {
  return g.constant(int64([], [value]), 'int');
}

function binary(type: string, a: Operand, b: Operand): Value {
  const g = graphOf(a, b);
  return g.op1(type, [val(g, a), val(g, b)]);
}

export const add = (a: Operand, b: Operand) => binary('Add', a, b);
export const sub = (a: Operand, b: Operand) => binary('Sub', a, b);
export const mul = (a: Operand, b: Operand) => binary('Mul', a, b);
export const div = (a: Operand, b: Operand) => binary('Div', a, b);
export const pow = (a: Operand, b: Operand) => binary('Pow', a, b);
export const matmul = (a: Value, b: Value) => a.graph.op1('MatMul', [a, b]);
export const equal = (a: Value, b: Value) => a.graph.op1('Equal', [a, b]);
export const less = (a: Value, b: Value) => a.graph.op1('Less', [a, b]);

/**
 * torch.finfo(torch.float32).min: what the reference adds or fills at masked attention
 * positions (finite, so a fully masked row stays finite where -inf would give NaN).
 */
export const FLOAT32_MIN = -3.4028234663852886e38;

export const sqrt = (x: Value) => x.graph.op1('Sqrt', [x]);
export const reciprocal = (x: Value) => x.graph.op1('Reciprocal', [x]);
export const sin = (x: Value) => x.graph.op1('Sin', [x]);
export const cos = (x: Value) => x.graph.op1('Cos', [x]);
export const erf = (x: Value) => x.graph.op1('Erf', [x]);
export const tanh = (x: Value) => x.graph.op1('Tanh', [x]);
export const relu = (x: Value) => x.graph.op1('Relu', [x]);
export const neg = (x: Value) => x.graph.op1('Neg', [x]);
export const exp = (x: Value) => x.graph.op1('Exp', [x]);
export const log = (x: Value) => x.graph.op1('Log', [x]);
export const abs = (x: Value) => x.graph.op1('Abs', [x]);
export const floor = (x: Value) => x.graph.op1('Floor', [x]);
export const not = (x: Value) => x.graph.op1('Not', [x]);
export const shapeOf = (x: Value) => x.graph.op1('Shape', [x]);

export function minimum(a: Value, b: Value): Value {
  return a.graph.op1('Min', [a, b]);
}

export function maximum(a: Value, b: Value): Value {
  return a.graph.op1('Max', [a, b]);
}

export function where(cond: Value, a: Operand, b: Operand): Value {
  const g = cond.graph;
  return g.op1('Where', [cond, val(g, a), val(g, b)]);
}

export function cast(x: Value, to: DType): Value {
  return x.graph.op1('Cast', [x], { to: onnxType(to) });
}

export function softmax(x: Value, axis = -1): Value {
  return x.graph.op1('Softmax', [x], { axis });
}

/** Reshape to `shape` (0 copies that dim, -1 infers one). */
export function reshape(x: Value, shape: readonly number[] | Value): Value {
  const s = shape instanceof Value ? shape : ints(x.graph, shape);
  return x.graph.op1('Reshape', [x, s]);
}

export function transpose(x: Value, perm: readonly number[]): Value {
  return x.graph.op1('Transpose', [x], { perm });
}

export function concat(xs: readonly Value[], axis: number): Value {
  return xs[0].graph.op1('Concat', xs, { axis });
}

export function gather(x: Value, indices: Value, axis = 0): Value {
  return x.graph.op1('Gather', [x, indices], { axis });
}

export function unsqueeze(x: Value, axes: readonly number[]): Value {
  return x.graph.op1('Unsqueeze', [x, ints(x.graph, axes)]);
}

export function squeeze(x: Value, axes: readonly number[]): Value {
  return x.graph.op1('Squeeze', [x, ints(x.graph, axes)]);
}

export function slice(
  x: Value,
  starts: readonly number[],
  ends: readonly number[],
  axes: readonly number[],
): Value {
  const g = x.graph;
  return g.op1('Slice', [x, ints(g, starts), ints(g, ends), ints(g, axes)]);
}

export function expand(x: Value, shape: Value): Value {
  return x.graph.op1('Expand', [x, shape]);
}

export function cumsum(x: Value, axis: number): Value {
  return x.graph.op1('CumSum', [x, intScalar(x.graph, axis)]);
}

export function reduceMean(x: Value, axes: readonly number[], keepdims = true): Value {
  // opset 17 ReduceMean still takes axes as an attribute (input since 18)
  return x.graph.op1('ReduceMean', [x], { axes, keepdims: keepdims ? 1 : 0 });
}

/** ReduceSum over `axes` (an input since opset 13). */
export function reduceSum(x: Value, axes: readonly number[], keepdims = true): Value {
  return x.graph.op1('ReduceSum', [x, ints(x.graph, axes)], { keepdims: keepdims ? 1 : 0 });
}

export function reduceMax(x: Value, axes: readonly number[], keepdims = true): Value {
  // opset 17: axes is an attribute, as for ReduceMean
  return x.graph.op1('ReduceMax', [x], { axes, keepdims: keepdims ? 1 : 0 });
}

/** torch.nn.LayerNorm over the last axis. */
export function layerNorm(x: Value, weight: Value, bias: Value | null, eps: number): Value {
  return x.graph.op1('LayerNormalization', bias ? [x, weight, bias] : [x, weight], {
    axis: -1,
    epsilon: { float: eps },
  });
}

export interface LinearOptions {
  /**
   * Compute y^T = W x^T instead of x W^T: MatMul(W, Transpose(x_flat)), then Transpose
   * back, so the weight is MatMul's A operand, read where it lies, and only the few
   * activation rows are transposed (and packed by MLAS). With pre-packing off (mapped
   * weights), onnxruntime's CPU Gemm re-packs its transposed B operand, the whole
   * weight, on every run from 2 rows up; the weight-first form costs about the same
   * from 1 to ~16 rows, but at exactly one row it is 1.2-1.6x slower than Gemm (measured
   * on OPT-2.7b's matrices, docs/benchmarks.md). So: for steps of several rows (beams,
   * batches), not for greedy batch-1 steps.
   */
  readonly weightFirst?: boolean;
}

/**
 * torch.nn.Linear: x @ W^T + b with W stored [out, in] as in the checkpoint, in the
 * op the weight's format runs fastest (quantize.ts' WEIGHT_FORMATS picks the format):
 * - packed q4 / q4f16: com.microsoft.MatMulNBits (N-D input, accuracy_level 4);
 * - packed q8: com.microsoft.DynamicQuantizeMatMul (uint8 activations x int8 weights), or
 *   DequantizeLinear + MatMul where the backend lacks it (PACKED_OPS);
 * - float16 on a provider with float16 kernels: Gemm in float16 over the weight in place;
 * - float32 (or half widened to float32): Gemm(transB=1), or weight-first (below).
 * The float transpose is Gemm's `transB` attribute, never a Transpose node: ORT would
 * fold that into a transposed copy of the weight instead of reading the mapped
 * bytes in place. Gemm is 2-D, so x is flattened to [-1, in] and the leading dims
 * restored after; unlike com.microsoft.FusedMatMul (which takes N-D input), Gemm
 * runs on every onnxruntime-web provider, WebGPU included. `weightFirst` writes
 * the same product the other way round (see `LinearOptions`); both give the same
 * numbers up to float32 summation order.
 */
export function linear(
  x: Value,
  weight: Value,
  bias: Value | null = null,
  options: LinearOptions = {},
): Value {
  const g = x.graph;
  return g.asLinear(weight, () => {
    const w = g.linearWeight(weight);
    if (w.kind === 'packed') return packedLinear(x, w, bias);
    const [out, inF] = g.shapeOfValue(weight);
    const flat = reshape(x, [-1, inF]);
    let y: Value;
    if (w.kind === 'float16') {
      // float16 in and out of the product only: the residual stream stays float32
      y = cast(g.op1('Gemm', [cast(flat, 'float16'), w.value], { transB: 1 }), 'float32');
      if (bias) y = add(y, bias);
    } else if (options.weightFirst) {
      // [out, in] @ [in, rows] -> [out, rows] -> [rows, out]; only activations are transposed
      y = transpose(matmul(weight, transpose(flat, [1, 0])), [1, 0]);
      if (bias) y = add(y, bias);
    } else y = g.op1('Gemm', bias ? [flat, weight, bias] : [flat, weight], { transB: 1 });
    const lead = slice(shapeOf(x), [0], [-1], [0]);
    return reshape(y, concat([lead, ints(g, [out])], 0));
  });
}

/** A linear over a packed weight: both contrib ops take N-D input and multiply the last axis. */
function packedLinear(x: Value, w: LinearWeight & { kind: 'packed' }, bias: Value | null): Value {
  const g = x.graph;
  const [n, k] = w.dims;
  if (w.format === 'q8') {
    if (g.lacks(PACKED_OPS.q8.op)) {
      // int8 [K, N] x scale [N] (axis 1, no zero point: symmetric) -> float32 [K, N]
      const weight = g.op1('DequantizeLinear', [w.data, w.scales], { axis: 1 });
      const y = matmul(x, weight);
      return bias ? add(y, bias) : y;
    }
    // no zero point: the int8 weights are symmetric
    return g.op1(
      'DynamicQuantizeMatMul',
      bias ? [x, w.data, w.scales, null, bias] : [x, w.data, w.scales],
      {},
      MS_DOMAIN,
    );
  }
  const half = w.format === 'q4f16';
  let a = half ? cast(x, 'float16') : x;
  const kBlocks = q4PaddedK(k, w.blockSize);
  let lead: Value | undefined;
  if (kBlocks !== k) {
    // whole blocks only (q4PaddedK says why): rows flattened to 2-D so Pad (opset 17, no axes
    // input) needs no rank, zeros appended to each, the leading dims restored after
    lead = slice(shapeOf(x), [0], [-1], [0]);
    a = g.op1('Pad', [reshape(a, [-1, k]), ints(g, [0, 0, 0, kBlocks - k])]);
  }
  const attrs = { K: kBlocks, N: n, bits: 4, block_size: w.blockSize, accuracy_level: Q4_ACCURACY_LEVEL };
  const inputs = w.zeroPoints ? [a, w.data, w.scales, w.zeroPoints] : [a, w.data, w.scales];
  let y = g.op1('MatMulNBits', inputs, attrs, MS_DOMAIN);
  if (half) y = cast(y, 'float32');
  if (lead) y = reshape(y, concat([lead, ints(g, [n])], 0));
  return bias ? add(y, bias) : y;
}

/**
 * Attention scores `alpha * a @ b^T` over the last two axes of rank-4 activations
 * ([B, H, S, d] x [B, H, L, d] -> [B, H, S, L]). Plain MatMul over a Transpose: ORT's
 * CPU provider fuses the pair into one kernel, and unlike com.microsoft.FusedMatMul
 * every onnxruntime-web provider (WebGPU included) runs both ops.
 */
export function matmulTransB(a: Value, b: Value, alpha = 1): Value {
  const scores = matmul(a, transpose(b, [0, 1, 3, 2]));
  return alpha === 1 ? scores : mul(scores, alpha);
}

/**
 * GELU with the exact erf, as torch's nn.GELU() / ACT2FN['gelu']. Written
 * x * 0.5 * (1 + erf(x / sqrt(2))), the form onnxruntime's GeluFusion recognizes:
 * its CPU provider then runs one com.microsoft.Gelu kernel (the same exact erf)
 * instead of four passes over the activations.
 */
export function gelu(x: Value): Value {
  return mul(mul(x, 0.5), add(erf(div(x, Math.SQRT2)), 1));
}

/** GELU's tanh approximation, as ACT2FN['gelu_new'] / 'gelu_pytorch_tanh' (Flan-T5's gated FFN). */
export function geluTanh(x: Value): Value {
  const inner = mul(add(x, mul(pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(x, 0.5), add(tanh(inner), 1));
}

/** Conv2d with the checkpoint's kernel; `stride` and no padding as a ViT patch embedding uses. */
export function conv2d(x: Value, weight: Value, bias: Value | null, stride: number, kernel: number): Value {
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return x.graph.op1('Conv', inputs, {
    kernel_shape: [kernel, kernel],
    strides: [stride, stride],
    pads: [0, 0, 0, 0],
  });
}
