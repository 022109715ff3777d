/**
 * Node image decoding. BMP goes through our own port of PIL's BMP reader (`bmp.ts`):
 * sharp's prebuilt libvips has no BMP loader. Everything else goes through sharp
 * (libvips: libspng, libjpeg-turbo, libwebp, cgif, libtiff). For PNG, JPEG, WebP and GIF
 * this yields the same pixels as PIL's `Image.open(...).convert("RGB")`: libjpeg-turbo
 * with default settings on both sides, alpha dropped (not composited), gray repeated,
 * palettes expanded. Two settings keep it that way: `ignoreIcc` (PIL never applies an
 * embedded ICC profile) and no auto-orient (PIL ignores the EXIF orientation too).
 *
 * Only containers PIL opens are accepted: sharp would also render SVG (and read HEIC
 * when built with it), which BLIP-2's reference pipeline could never have seen.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { decodeBmp, isBmp } from './bmp.js';
import { ProcessorError } from './errors.js';
import type { RgbImage } from './image.js';

const SUPPORTED = 'PNG, JPEG, WebP, GIF, BMP, TIFF';

/** sharp's format names for containers PIL's `Image.open` also reads. */
const PIL_FORMATS = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff']);

/** Decode encoded image bytes (PNG, JPEG, WebP, GIF first frame, BMP, TIFF) to RGB. */
export async function decodeImageBytes(bytes: Uint8Array, source = 'image bytes'): Promise<RgbImage> {
  if (bytes.length === 0)
    throw new ProcessorError('E_IMAGE_DECODE', `${source}: no bytes to decode (empty input)`);
  if (isBmp(bytes)) return decodeBmp(bytes, source);
  try {
    const image = sharp(bytes, { ignoreIcc: true, pages: 1, autoOrient: false });
    const { format, compression } = await image.metadata();
    // AVIF (HEIF with AV1) is opened by PIL too; HEIC is not
    const pilOpens = PIL_FORMATS.has(format) || (format === 'heif' && compression === 'av1');
    if (!pilOpens) {
      throw new ProcessorError(
        'E_IMAGE_FORMAT',
        `${source}: ${format.toUpperCase()} is not an image format PIL opens (supported: ${SUPPORTED})`,
      );
    }
    const { data, info } = await image
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) {
      throw new ProcessorError(
        'E_IMAGE_DECODE',
        `${source}: decoder produced ${info.channels} channels instead of 3`,
      );
    }
    if (info.width === 0 || info.height === 0) {
      throw new ProcessorError('E_IMAGE_EMPTY', `${source}: image is empty (${info.width} x ${info.height})`);
    }
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (e) {
    if (e instanceof ProcessorError) throw e;
    const message = e instanceof Error ? e.message : String(e);
    if (/unsupported image format/i.test(message)) {
      throw new ProcessorError('E_IMAGE_FORMAT', `${source}: not a supported image format (${SUPPORTED})`, {
        cause: e,
      });
    }
    throw new ProcessorError('E_IMAGE_DECODE', `${source}: cannot decode image (${message.trim()})`, {
      cause: e,
    });
  }
}

/** Read and decode an image file. */
export async function decodeImageFile(path: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ProcessorError('E_IMAGE_FILE', `cannot read image file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return decodeImageBytes(bytes, path);
}
