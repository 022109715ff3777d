/**
 * Bicubic resize exactly as Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit images
 * (libImaging/Resample.c): a separable convolution, horizontal pass then vertical pass,
 * each rounded back to uint8. When downscaling, the filter support grows by the scale
 * factor (antialiasing). Weights are normalized per output pixel, then turned into
 * fixed point with 22 fractional bits; the sums start at one half (round to nearest)
 * and are clipped to 0..255. Matching those integer steps is what makes the result
 * bit-identical, which no general-purpose JS resizer is.
 */
import type { RgbImage } from './image.js';

/** Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2. */
const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);

/** Pillow's bicubic kernel with a = -0.5 (Keys), support 2. */
const BICUBIC_SUPPORT = 2;
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per output index: first input index, tap count, and `kernelSize` fixed-point weights. */
export interface Coefficients {
  readonly kernelSize: number;
  readonly bounds: Int32Array; // [xmin, count] per output
  readonly weights: Int32Array; // outSize * kernelSize
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box (0, inSize). */
export function precomputeCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterScale;
  const kernelSize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * kernelSize);
  const k = new Float64Array(kernelSize);
  const inverse = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C casts to int (truncation toward zero) before clamping; Math.trunc keeps that.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubic((x + xmin - center + 0.5) * inverse);
      k[x] = w;
      sum += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = sum !== 0 ? k[x] / sum : k[x];
      // normalize_coeffs_8bpc: round half away from zero into fixed point
      weights[xx * kernelSize + x] =
        w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { kernelSize, bounds, weights };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return Math.max(0, Math.min(255, v));
}

/** Resize an RGB image to `width` x `height` with Pillow's BICUBIC, bit for bit. */
export function resizeBicubic(image: RgbImage, width: number, height: number): RgbImage {
  const needHorizontal = width !== image.width;
  const needVertical = height !== image.height;
  if (!needHorizontal && !needVertical) return image;
  const horiz = precomputeCoefficients(image.width, width);
  const vert = precomputeCoefficients(image.height, height);

  let src = image.data;
  let srcWidth = image.width;
  // Pillow only runs the horizontal pass over the rows the vertical pass will read.
  let firstRow = 0;
  let rows = image.height;
  if (needHorizontal && needVertical) {
    firstRow = vert.bounds[0];
    rows = vert.bounds[(height - 1) * 2] + vert.bounds[(height - 1) * 2 + 1] - firstRow;
  }
  if (needHorizontal) {
    const out = new Uint8Array(width * rows * 3);
    const { kernelSize, bounds, weights } = horiz;
    for (let y = 0; y < rows; y++) {
      const rowIn = (y + firstRow) * srcWidth * 3;
      const rowOut = y * width * 3;
      for (let xx = 0; xx < width; xx++) {
        const xmin = bounds[xx * 2];
        const count = bounds[xx * 2 + 1];
        const kOff = xx * kernelSize;
        let r = HALF;
        let g = HALF;
        let b = HALF;
        let p = rowIn + xmin * 3;
        for (let x = 0; x < count; x++, p += 3) {
          const w = weights[kOff + x];
          r += src[p] * w;
          g += src[p + 1] * w;
          b += src[p + 2] * w;
        }
        const o = rowOut + xx * 3;
        out[o] = clip8(r);
        out[o + 1] = clip8(g);
        out[o + 2] = clip8(b);
      }
    }
    src = out;
    srcWidth = width;
  }
  if (!needVertical) return { width, height, data: src };
  const out = new Uint8Array(width * height * 3);
  const { kernelSize, bounds, weights } = vert;
  const stride = srcWidth * 3;
  for (let yy = 0; yy < height; yy++) {
    const ymin = bounds[yy * 2] - firstRow;
    const count = bounds[yy * 2 + 1];
    const kOff = yy * kernelSize;
    const rowOut = yy * stride;
    for (let i = 0; i < stride; i++) {
      let ss = HALF;
      let p = ymin * stride + i;
      for (let y = 0; y < count; y++, p += stride) ss += src[p] * weights[kOff + y];
      out[rowOut + i] = clip8(ss);
    }
  }
  return { width, height, data: out };
}
