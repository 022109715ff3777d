/**
 * The tensor every package passes around. It mirrors onnxruntime-common's
 * `Tensor` (dtype, dims, flat data) without depending on a runtime, so model
 * modules, generation and processors never import a backend.
 */
import { TensorError } from './errors.js';

export type DType = 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';

/** Storage per dtype: float16/bfloat16 keep their raw 16-bit patterns, bool is 0/1 bytes. */
export interface DataOf {
  float32: Float32Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}
export type TensorData = DataOf[DType];

export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly data: DataOf[D];
}

const ARRAY_OF: { [D in DType]: new (n: number) => DataOf[D] } = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

function checkDims(dims: readonly number[]): void {
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0)
      throw new TensorError('E_DIMS', `invalid dimension ${d} in [${dims.join(', ')}]`);
  }
}

/** A tensor over `data`; throws when the element count disagrees with `dims`. */
export function tensor<D extends DType>(dtype: D, dims: readonly number[], data: DataOf[D]): Tensor<D> {
  checkDims(dims);
  if (!(data instanceof ARRAY_OF[dtype])) {
    throw new TensorError(
      'E_DTYPE',
      `data for a ${dtype} tensor must be a ${ARRAY_OF[dtype].name}, got ${data?.constructor?.name}`,
    );
  }
  if (data.length !== sizeOf(dims)) {
    throw new TensorError(
      'E_SIZE',
      `dims [${dims.join(', ')}] hold ${sizeOf(dims)} elements but data has ${data.length}`,
    );
  }
  return { dtype, dims: [...dims], data };
}

export function zeros<D extends DType>(dtype: D, dims: readonly number[]): Tensor<D> {
  checkDims(dims);
  return { dtype, dims: [...dims], data: new ARRAY_OF[dtype](sizeOf(dims)) };
}

export function float32(dims: readonly number[], data?: ArrayLike<number>): Tensor<'float32'> {
  checkDims(dims);
  return tensor('float32', dims, data ? Float32Array.from(data) : new Float32Array(sizeOf(dims)));
}

export function int64(dims: readonly number[], data: ArrayLike<number | bigint>): Tensor<'int64'> {
  const out = new BigInt64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = BigInt(data[i]);
  return tensor('int64', dims, out);
}

/** Float32 view of a float tensor (copies only for half types). */
export function asFloat32(t: Tensor): Tensor<'float32'> {
  if (t.dtype === 'float32') return t as Tensor<'float32'>;
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') {
    const conv = t.dtype === 'float16' ? float16ToFloat32 : bfloat16ToFloat32;
    const src = t.data as Uint16Array;
    const out = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = conv(src[i]);
    return { dtype: 'float32', dims: t.dims, data: out };
  }
  throw new TensorError('E_DTYPE', `expected a float tensor, got ${t.dtype}`);
}

// ---- half-precision conversion -------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function float16ToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Round-to-nearest-even, as numpy/torch convert. */
export function float32ToFloat16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}

export function bfloat16ToFloat32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** Round-to-nearest-even, as torch's `.to(torch.bfloat16)`. */
export function float32ToBfloat16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return ((b >>> 16) | 0x40) & 0xffff;
  const rounded = b + 0x7fff + ((b >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}
