/**
 * Decoded images as the rest of the pipeline sees them: 8-bit RGB, rows top to bottom,
 * pixels interleaved (HWC), exactly what PIL's `Image.convert("RGB")` holds.
 */
import { describe, ProcessorError } from './errors.js';

export interface RgbImage {
  readonly width: number;
  readonly height: number;
  /** width * height * 3 bytes, R G B per pixel */
  readonly data: Uint8Array;
}

/**
 * Raw pixels the caller already has. `channels` says the layout:
 * 1 = L (gray), 2 = LA, 3 = RGB, 4 = RGBA. Defaults to what the length implies.
 */
export interface RawImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array | Uint8ClampedArray;
  readonly channels?: 1 | 2 | 3 | 4;
}

export function isRawImage(x: unknown): x is RawImage {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Partial<RawImage>;
  return (
    typeof r.width === 'number' &&
    typeof r.height === 'number' &&
    (r.data instanceof Uint8Array || r.data instanceof Uint8ClampedArray)
  );
}

/**
 * RGB from raw pixels with PIL's `convert("RGB")` rules: gray is repeated into the three
 * channels and alpha is dropped without compositing (PIL does not premultiply).
 */
export function toRgb(image: RawImage, what = 'raw image'): RgbImage {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new ProcessorError(
      'E_IMAGE_INPUT',
      `${what}: width and height must be non-negative integers, got ${width} x ${height}`,
    );
  }
  if (width === 0 || height === 0) {
    throw new ProcessorError('E_IMAGE_EMPTY', `${what}: image is empty (${width} x ${height})`);
  }
  const n = width * height;
  const channels = image.channels ?? data.length / n;
  if (![1, 2, 3, 4].includes(channels) || data.length !== n * channels) {
    throw new ProcessorError(
      'E_IMAGE_INPUT',
      `${what}: ${data.length} bytes do not hold ${width} x ${height} pixels of ${image.channels ?? '1, 2, 3 or 4'} channels`,
    );
  }
  if (channels === 3) {
    const copy =
      data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { width, height, data: copy };
  }
  const out = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const s = i * channels;
    if (channels <= 2) {
      const v = data[s];
      out[j] = v;
      out[j + 1] = v;
      out[j + 2] = v;
    } else {
      out[j] = data[s];
      out[j + 1] = data[s + 1];
      out[j + 2] = data[s + 2];
    }
  }
  return { width, height, data: out };
}

/** Checks an object claimed to be an RgbImage (e.g. returned by a custom decoder). */
export function checkRgb(image: RgbImage, what: string): RgbImage {
  if (!isRawImage(image))
    throw new ProcessorError(
      'E_IMAGE_INPUT',
      `${what}: expected {width, height, data}, got ${describe(image)}`,
    );
  return toRgb({ ...image, channels: 3 }, what);
}
