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
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type sharpType from 'sharp';
import { decodeBmp, isBmp } from './bmp.js';
import { ProcessorError } from './errors.js';
import type { RgbImage } from './image.js';
import { MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS } from './limits.js';

const SUPPORTED = 'PNG, JPEG, WebP, GIF, BMP, TIFF';

/** sharp's format names for containers PIL's `Image.open` also reads. */
const PIL_FORMATS = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff']);

let sharpModule: Promise<typeof sharpType> | undefined;

/** sharp is an optional peer dependency (browser apps never install it): loaded on the first decode. */
function loadSharp(): Promise<typeof sharpType> {
  sharpModule ??= import('sharp').then(
    (m) => (m as { default?: typeof sharpType }).default ?? (m as unknown as typeof sharpType),
    (e: unknown) => {
      sharpModule = undefined;
      const code = (e as { code?: string }).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
        throw new ProcessorError(
          'E_DEPENDENCY',
          'decoding images in Node needs the sharp package, which is not installed: npm install sharp',
          { cause: e },
        );
      }
      throw e;
    },
  );
  return sharpModule;
}

/** Decode encoded image bytes (PNG, JPEG, WebP, GIF first frame, BMP, TIFF) to RGB. */
export async function decodeImageBytes(bytes: Uint8Array, source = 'image bytes'): Promise<RgbImage> {
  if (bytes.length === 0)
    throw new ProcessorError('E_IMAGE_DECODE', `${source}: no bytes to decode (empty input)`);
  if (isBmp(bytes)) return decodeBmp(bytes, source);
  try {
    const sharp = await loadSharp();
    const settings = { ignoreIcc: true, pages: 1, autoOrient: false } as const;
    // the header is read without libvips' pixel cap so the error can name the dimensions;
    // the decode itself runs under the cap, the backstop for a header that lies
    const { format, compression, width, height, space } = await sharp(bytes, {
      ...settings,
      limitInputPixels: false,
    }).metadata();
    const image = sharp(bytes, { ...settings, limitInputPixels: MAX_IMAGE_PIXELS });
    if (width !== undefined && height !== undefined && width * height > MAX_IMAGE_PIXELS) {
      throw new ProcessorError(
        'E_IMAGE_TOO_LARGE',
        `${source}: ${width} x ${height} pixels exceed the limit of ${MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS, Pillow's decompression-bomb limit)`,
      );
    }
    // AVIF (HEIF with AV1) is opened by PIL too; HEIC is not
    const pilOpens = PIL_FORMATS.has(format) || (format === 'heif' && compression === 'av1');
    if (!pilOpens) {
      throw new ProcessorError(
        'E_IMAGE_FORMAT',
        `${source}: ${format.toUpperCase()} is not an image format PIL opens (supported: ${SUPPORTED})`,
      );
    }
    if (space === 'cmyk') return await decodeCmyk(image, source);
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
    if (/exceeds pixel limit/i.test(message)) {
      throw new ProcessorError(
        'E_IMAGE_TOO_LARGE',
        `${source}: more pixels than the limit of ${MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS, Pillow's decompression-bomb limit)`,
        { cause: e },
      );
    }
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

/**
 * Read and decode an image file: a regular file only (a FIFO would block forever, a device such
 * as /dev/zero never ends), of at most `maxBytes` bytes.
 */
/**
 * CMYK images (print JPEGs) as Pillow's `convert('RGB')` gives them: the stored CMYK values
 * (Adobe's inverted CMYK un-inverted, as libjpeg's reader in Pillow does; libvips does the same)
 * through Pillow's plain formula `R = (255 - K) - C (255 - K) / 255` with its rounding, per channel,
 * where sharp would convert through an ICC profile (up to 137/255 apart).
 */
async function decodeCmyk(image: ReturnType<typeof sharpType>, source: string): Promise<RgbImage> {
  const { data, info } = await image
    .removeAlpha()
    .pipelineColourspace('cmyk')
    .toColourspace('cmyk')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 4) {
    throw new ProcessorError(
      'E_IMAGE_DECODE',
      `${source}: a CMYK image decoded to ${info.channels} channels instead of 4`,
    );
  }
  if (info.width === 0 || info.height === 0) {
    throw new ProcessorError('E_IMAGE_EMPTY', `${source}: image is empty (${info.width} x ${info.height})`);
  }
  const n = info.width * info.height;
  const rgb = new Uint8Array(n * 3);
  // Pillow's MULDIV255: a * b / 255 rounded, in integers
  const mulDiv255 = (a: number, b: number) => {
    const t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (let i = 0; i < n; i++) {
    const notK = 255 - data[i * 4 + 3]!;
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = notK - mulDiv255(data[i * 4 + c]!, notK);
  }
  return { width: info.width, height: info.height, data: rgb };
}

export async function decodeImageFile(path: string, options: { maxBytes?: number } = {}): Promise<RgbImage> {
  const maxBytes = options.maxBytes ?? MAX_IMAGE_FILE_BYTES;
  const bytes = await readImageFile(path, maxBytes);
  return decodeImageBytes(bytes, path);
}

async function readImageFile(path: string, maxBytes: number): Promise<Uint8Array> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new ProcessorError('E_IMAGE_FILE', `cannot read image file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      const kind = st.isDirectory()
        ? 'a directory'
        : st.isFIFO()
          ? 'a FIFO'
          : st.isCharacterDevice() || st.isBlockDevice()
            ? 'a device'
            : st.isSocket()
              ? 'a socket'
              : 'not a regular file';
      throw new ProcessorError('E_IMAGE_FILE', `image file ${path} is ${kind}; only regular files are read`);
    }
    if (st.size > maxBytes) {
      throw new ProcessorError(
        'E_IMAGE_TOO_LARGE',
        `image file ${path} is ${st.size} bytes, above the limit of ${maxBytes} (MAX_IMAGE_FILE_BYTES)`,
      );
    }
    // read what is there now, never more than the cap (the file may grow while we read)
    const buf = Buffer.allocUnsafe(st.size);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof ProcessorError) throw e;
    throw new ProcessorError('E_IMAGE_FILE', `cannot read image file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    await fh.close();
  }
}
