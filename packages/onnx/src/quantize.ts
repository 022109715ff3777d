/**
 * Weight formats: what a checkpoint weight is stored as and which onnxruntime op
 * multiplies by it. The one table of which weight gets which format is
 * `WEIGHT_FORMATS`; the packers below write onnxruntime's own layouts, so a packed
 * weight is external data used in place like any float weight.
 *
 * - `q4`: block-wise asymmetric 4-bit, `com.microsoft.MatMulNBits`' layout: `B` uint8
 *   [N, n_blocks, block_size / 2] (element 2i in the low nibble, 2i+1 in the high one),
 *   `scales` [N, n_blocks], `zero_points` uint8 [N, ceil(n_blocks / 2)] (block 2j in
 *   the low nibble); w = (q - zero_point) * scale. `accuracy_level` 4 quantizes the
 *   activations to int8 per block and runs the int8 kernels (what makes decode fast).
 * - `q8`: per-output-channel symmetric int8 for `com.microsoft.DynamicQuantizeMatMul`:
 *   `B` int8 [K, N] (MatMul's layout, the transpose of torch's [out, in]), `b_scale`
 *   float32 [N]; the activations are quantized to uint8 per tensor at run time, so the
 *   product runs on MLAS's u8 x s8 kernels. Those add pairs of u8 x s8 products in
 *   int16 with saturation on this CPU (measured: 64 weights of 127 times activations
 *   near 255 come out as 124 instead of 7874), so the weights use 7 bits, [-63, 63],
 *   as onnxruntime's own quantizer does with `reduce_range`.
 * - `fp16`: float16 storage (round to nearest even); compute in float16 where the
 *   provider has float16 kernels, else widened to float32 at session creation.
 */
import { float16ToFloat32, float32ToFloat16 } from '@blip2/tensor';

/** The transformers.js dtype names, chosen per module. */
export const MODEL_DTYPES = ['fp32', 'fp16', 'q8', 'q4', 'q4f16'] as const;
export type ModelDType = (typeof MODEL_DTYPES)[number];

export function isModelDType(s: unknown): s is ModelDType {
  return typeof s === 'string' && (MODEL_DTYPES as readonly string[]).includes(s);
}

/** How one weight is stored. */
export type WeightFormat = 'fp32' | 'fp16' | 'q8' | 'q4' | 'q4f16';

/** What a weight does in the graphs, as the graph builder records it. */
export type WeightRole = 'linear' | 'other';

/**
 * THE table: the format of a weight per module dtype and per role. Only weights used
 * solely as `linear` weights are quantized; layer norms, biases, position tables,
 * embeddings (gathered, and a tied LM head with them), the class token, the query
 * tokens and the patch-embedding Conv keep the checkpoint's float32 under q8/q4, and
 * are stored float16 under fp16 / q4f16 (half the bytes; their ops then read
 * float32 widened at session creation). Softmax and attention scores are
 * activations, always float32.
 */
export const WEIGHT_FORMATS: Readonly<Record<ModelDType, Readonly<Record<WeightRole, WeightFormat>>>> = {
  fp32: { linear: 'fp32', other: 'fp32' },
  fp16: { linear: 'fp16', other: 'fp16' },
  q8: { linear: 'q8', other: 'fp32' },
  q4: { linear: 'q4', other: 'fp32' },
  q4f16: { linear: 'q4f16', other: 'fp16' },
};

/**
 * The contrib op `linear` multiplies each packed format with, and the form it takes
 * where a backend lacks that op (its `capabilities` say `{ [op]: false }`):
 * - q8: `DequantizeLinear` (standard ONNX, per output channel) to float32, then
 *   `MatMul`: every provider runs both, at the cost of dequantizing per run.
 *   onnxruntime-web's WebGPU provider has no DynamicQuantizeMatMul kernel; the
 *   wasm fallback it places such nodes on gave the tiny Q-Former logits 0.26 off
 *   (measured in Chromium, issue 14), so that backend declares the op lacking.
 * - q4, q4f16: none (the 4-bit blocks have no standard op); such a backend refuses
 *   them (`E_DTYPE`).
 */
export const PACKED_OPS: Readonly<
  Record<'q8' | 'q4' | 'q4f16', { readonly op: string; readonly fallback?: 'DequantizeLinear' }>
> = {
  q8: { op: 'DynamicQuantizeMatMul', fallback: 'DequantizeLinear' },
  q4: { op: 'MatMulNBits' },
  q4f16: { op: 'MatMulNBits' },
};

/** The blocks along K q4 packs in: 32 (every provider) and 128 (onnxruntime's CPU kernels run it faster). */
export const Q4_BLOCK_SIZES = [32, 128] as const;
export type Q4BlockSize = (typeof Q4_BLOCK_SIZES)[number];

export function isQ4BlockSize(n: unknown): n is Q4BlockSize {
  return (Q4_BLOCK_SIZES as readonly unknown[]).includes(n);
}

/**
 * MatMulNBits' block along K for a weight of K inputs: `preferred` where K is a whole
 * number of such blocks, else 32 (the fixtures' 24, 37, 96). Who prefers which:
 * - 128 (every BLIP-2 width: ViT-g's 1408 and 6144, the Q-Former's 768 and 3072, OPT's
 *   2560/4096 and their 4x, T5's 2048/4096 and their FFNs, are multiples of it) where
 *   the weights are quantized for onnxruntime's CPU kernels (`capabilities.q4BlockSizes`
 *   of backend-node and of onnxruntime-web's wasm): MLAS's AVX2 4-bit kernel is
 *   compute-bound at one row and its work per block (a scale, a zero point, the int8
 *   row's block sum) is what shrinks: a blip2-opt-2.7b q4 step took 68 ms at block 128
 *   against 87 ms at 32 (same minute, the LM alone, docs/benchmarks.md), its bytes 0.84x;
 *   wasm decoded a token in 12.0 s against 15.8 s. Group size 128 is also GPTQ's/AWQ's.
 * - 32 for exports unless asked (`blip2 export --q4-block`): onnxruntime-web 1.30's WebGPU
 *   `MatMulNBits` gives wrong products for blocks of 128 (measured against wasm in
 *   Chromium, docs/browser.md), and an export is what a browser downloads.
 */
export function q4BlockSize(k: number, preferred: Q4BlockSize = 32): number {
  return k % preferred === 0 ? preferred : 32;
}

/** accuracy_level 4: int8 activations per block (0.25 ms vs 0.64 ms for one row of a 1408x6144 matrix). */
export const Q4_ACCURACY_LEVEL = 4;

/** A weight packed for MatMulNBits (4 bits): the three tensors of its inputs B, scales, zero_points. */
export interface PackedQ4 {
  /** [N, n_blocks, block_size / 2] */
  readonly data: Uint8Array;
  /** [N, n_blocks] */
  readonly scales: Float32Array;
  /** [N, ceil(n_blocks / 2)]; absent for a symmetric packing (MatMulNBits' default zero point, 8) */
  readonly zeroPoints?: Uint8Array;
}

/**
 * Whether a [N, K] weight is packed with zero points. onnxruntime-web's WebGPU kernel
 * reads them as 32-bit words, so their N * ceil(n_blocks / 2) bytes must be a multiple
 * of 4 (every BLIP-2 width is); a weight whose are not (the fixtures' odd widths, e.g.
 * N = 37) is packed symmetric instead, without zero points, and runs on every provider.
 */
export function q4HasZeroPoints(n: number, k: number, blockSize = q4BlockSize(k)): boolean {
  return (n * Math.ceil(q4Blocks(k, blockSize) / 2)) % 4 === 0;
}

/**
 * The K a q4 weight's MatMulNBits multiplies over: K rounded up to whole blocks (the
 * packing already pads the last block with weights of exactly 0), and `linear` pads
 * each activation row with zeros to it. Why: onnxruntime-web's WebGPU kernel reads
 * the activations a whole block at a time without checking K, so a K that is not a
 * multiple of the block (the fixtures' 24 and 37, block 32) reads past the row's end,
 * into the next row or, for the last row, into stale bytes of a pooled GPU buffer;
 * 0 x NaN or 0 x Inf there made the tiny T5's decoder logits NaN (docs/browser.md).
 * Every BLIP-2 width is a multiple of 32, so real checkpoints take no Pad.
 */
export function q4PaddedK(k: number, blockSize = q4BlockSize(k)): number {
  return q4Blocks(k, blockSize) * blockSize;
}

/** Blocks along K of one row. */
export function q4Blocks(k: number, blockSize = q4BlockSize(k)): number {
  return Math.ceil(k / blockSize);
}

/**
 * Packs torch's [N, K] weight (row-major, rows = output features) for MatMulNBits.
 * Each block's range includes 0 (so zero stays exact) and is split into 15 steps.
 * A K that is not a multiple of the block pads the last block with zeros.
 */
export function quantizeQ4(
  weight: Float32Array,
  n: number,
  k: number,
  blockSize = q4BlockSize(k),
  symmetric = !q4HasZeroPoints(n, k, blockSize),
): PackedQ4 {
  checkSize(weight, n, k);
  const nb = q4Blocks(k, blockSize);
  const blob = blockSize / 2;
  const zpRow = Math.ceil(nb / 2);
  const data = new Uint8Array(n * nb * blob);
  const scales = new Float32Array(n * nb);
  const zeroPoints = symmetric ? undefined : new Uint8Array(n * zpRow);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < nb; b++) {
      const start = row * k + b * blockSize;
      const len = Math.min(blockSize, k - b * blockSize);
      let lo = 0;
      let hi = 0;
      for (let i = 0; i < len; i++) {
        const v = weight[start + i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      // symmetric: [-7, 7] steps around the implicit zero point 8
      const scale = symmetric ? Math.max(hi, -lo) / 7 : (hi - lo) / 15;
      const inv = scale === 0 ? 0 : 1 / scale;
      const zp = symmetric ? 8 : scale === 0 ? 0 : clamp(Math.round(-lo * inv), 0, 15);
      scales[row * nb + b] = scale;
      if (zeroPoints) zeroPoints[row * zpRow + (b >> 1)] |= b & 1 ? zp << 4 : zp;
      const out = (row * nb + b) * blob;
      for (let i = 0; i < blockSize; i++) {
        const q = i < len ? clamp(Math.round(weight[start + i] * inv) + zp, 0, 15) : zp;
        data[out + (i >> 1)] |= i & 1 ? q << 4 : q;
      }
    }
  }
  return { data, scales, zeroPoints };
}

/** The float32 [N, K] weight a q4 packing stands for: what MatMulNBits multiplies by. */
export function dequantizeQ4(p: PackedQ4, n: number, k: number, blockSize = q4BlockSize(k)): Float32Array {
  const nb = q4Blocks(k, blockSize);
  const blob = blockSize / 2;
  const zpRow = Math.ceil(nb / 2);
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let j = 0; j < k; j++) {
      const b = Math.floor(j / blockSize);
      const i = j % blockSize;
      const byte = p.data[(row * nb + b) * blob + (i >> 1)];
      const q = i & 1 ? byte >> 4 : byte & 15;
      const zpByte = p.zeroPoints ? p.zeroPoints[row * zpRow + (b >> 1)] : 0x88;
      const zp = b & 1 ? zpByte >> 4 : zpByte & 15;
      out[row * k + j] = (q - zp) * p.scales[row * nb + b];
    }
  }
  return out;
}

/** A weight packed for DynamicQuantizeMatMul: int8 [K, N] and one scale per output column. */
export interface PackedQ8 {
  /** [K, N], int8 */
  readonly data: Int8Array;
  /** [N] */
  readonly scales: Float32Array;
}

/** The int8 weights' range: 255 x 63 x 2 still fits the kernels' int16 pair sums. */
export const Q8_MAX = 63;

/** Packs torch's [N, K] weight as symmetric 7-bit int8 per output channel, transposed to [K, N]. */
export function quantizeQ8(weight: Float32Array, n: number, k: number): PackedQ8 {
  checkSize(weight, n, k);
  const data = new Int8Array(k * n);
  const scales = new Float32Array(n);
  for (let row = 0; row < n; row++) {
    let absMax = 0;
    for (let j = 0; j < k; j++) absMax = Math.max(absMax, Math.abs(weight[row * k + j]));
    const scale = absMax / Q8_MAX;
    const inv = scale === 0 ? 0 : 1 / scale;
    scales[row] = scale;
    for (let j = 0; j < k; j++)
      data[j * n + row] = clamp(Math.round(weight[row * k + j] * inv), -Q8_MAX, Q8_MAX);
  }
  return { data, scales };
}

/** The float32 [N, K] weight a q8 packing stands for. */
export function dequantizeQ8(p: PackedQ8, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++)
    for (let j = 0; j < k; j++) out[row * k + j] = p.data[j * n + row] * p.scales[row];
  return out;
}

/** float32 -> float16 bits, round to nearest even (as torch's `.half()`). */
export function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16(values[i]);
  return out;
}

/** float16 bits -> float32. */
export function fromFloat16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = float16ToFloat32(bits[i]);
  return out;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}

function checkSize(weight: Float32Array, n: number, k: number): void {
  if (weight.length !== n * k)
    throw new RangeError(`a [${n}, ${k}] weight has ${n * k} values, got ${weight.length}`);
}
