/**
 * Browser image decoding through the platform: `createImageBitmap` with colour-space
 * conversion and premultiplication off, drawn on an OffscreenCanvas and read back. This
 * is exact for opaque images (PNG is lossless, and Chromium decodes with libpng/
 * libjpeg-turbo). Pixels are read through WebGL2 where available, which keeps the RGB
 * of translucent pixels; the 2D-canvas fallback stores premultiplied alpha, so there
 * translucent pixels may differ from PIL by rounding.
 */
import { describe, ProcessorError } from './errors.js';
import { isRawImage, type RawImage, type RgbImage, toRgb } from './image.js';
import { MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS } from './limits.js';

/** Anything the main entry can turn into RGB pixels without Node. */
export type BrowserImageInput =
  | RawImage
  | ImageData
  | ImageBitmap
  | HTMLImageElement
  | Blob
  | Uint8Array
  | ArrayBuffer;

const has = (name: string) => typeof (globalThis as Record<string, unknown>)[name] !== 'undefined';

export function isBrowserImage(x: unknown): boolean {
  return (
    (has('ImageData') && x instanceof ImageData) ||
    (has('ImageBitmap') && x instanceof ImageBitmap) ||
    (has('HTMLImageElement') && x instanceof HTMLImageElement) ||
    (has('Blob') && x instanceof Blob)
  );
}

/**
 * Pixels through a WebGL texture: uploads with premultiplication and colour conversion
 * off and reads the texture back, so translucent pixels keep their exact RGB (a 2D canvas
 * stores premultiplied alpha and loses it). Null where WebGL2 is unavailable.
 */
function readWithWebGl(
  source: ImageBitmap | HTMLImageElement,
  width: number,
  height: number,
): Uint8Array | null {
  if (!has('OffscreenCanvas')) return null;
  const gl = new OffscreenCanvas(width, height).getContext('webgl2', { premultipliedAlpha: false });
  if (!gl || width > gl.getParameter(gl.MAX_TEXTURE_SIZE) || height > gl.getParameter(gl.MAX_TEXTURE_SIZE))
    return null;
  const texture = gl.createTexture();
  const framebuffer = gl.createFramebuffer();
  try {
    gl.bindTexture(gl.TEXTURE_2D, texture);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
    gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, width, height, 0, gl.RGBA, gl.UNSIGNED_BYTE, source);
    gl.bindFramebuffer(gl.FRAMEBUFFER, framebuffer);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, texture, 0);
    if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) return null;
    const out = new Uint8Array(width * height * 4);
    // texture row 0 is the image's top row, so no flip is needed
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, out);
    return gl.getError() === gl.NO_ERROR ? out : null;
  } finally {
    gl.deleteFramebuffer(framebuffer);
    gl.deleteTexture(texture);
  }
}

function fromBitmapLike(
  source: ImageBitmap | HTMLImageElement,
  width: number,
  height: number,
  what: string,
): RgbImage {
  if (width === 0 || height === 0)
    throw new ProcessorError('E_IMAGE_EMPTY', `${what}: image is empty (${width} x ${height})`);
  if (width * height > MAX_IMAGE_PIXELS)
    throw new ProcessorError(
      'E_IMAGE_TOO_LARGE',
      `${what}: ${width} x ${height} pixels exceed the limit of ${MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS, Pillow's decompression-bomb limit)`,
    );
  const viaGl = readWithWebGl(source, width, height);
  if (viaGl) return toRgb({ width, height, data: viaGl, channels: 4 }, what);
  if (!has('OffscreenCanvas'))
    throw new ProcessorError(
      'E_IMAGE_INPUT',
      `${what}: this runtime has no OffscreenCanvas to read pixels with`,
    );
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' });
  if (!ctx) throw new ProcessorError('E_IMAGE_INPUT', `${what}: cannot create a 2D canvas context`);
  ctx.drawImage(source, 0, 0);
  const data = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' });
  return toRgb({ width, height, data: data.data, channels: 4 }, what);
}

async function decodeBlob(blob: Blob, what: string): Promise<RgbImage> {
  if (blob.size === 0)
    throw new ProcessorError('E_IMAGE_DECODE', `${what}: no bytes to decode (empty input)`);
  if (blob.size > MAX_IMAGE_FILE_BYTES)
    throw new ProcessorError(
      'E_IMAGE_TOO_LARGE',
      `${what}: ${blob.size} bytes, above the limit of ${MAX_IMAGE_FILE_BYTES} (MAX_IMAGE_FILE_BYTES)`,
    );
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none',
      imageOrientation: 'none',
    }); // PIL ignores EXIF orientation
  } catch (e) {
    const head = new Uint8Array(await blob.slice(0, 12).arrayBuffer());
    const known = sniff(head) !== null;
    throw new ProcessorError(
      known ? 'E_IMAGE_DECODE' : 'E_IMAGE_FORMAT',
      known
        ? `${what}: cannot decode ${sniff(head)} image (${(e as Error).message})`
        : `${what}: not a supported image format`,
      { cause: e },
    );
  }
  try {
    return fromBitmapLike(bitmap, bitmap.width, bitmap.height, what);
  } finally {
    bitmap.close();
  }
}

/** Format from the magic bytes, for error messages. */
export function sniff(b: Uint8Array): string | null {
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'PNG';
  if (b[0] === 0xff && b[1] === 0xd8) return 'JPEG';
  if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return 'GIF';
  if (b[0] === 0x42 && b[1] === 0x4d) return 'BMP';
  if (b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45)
    return 'WebP';
  return null;
}

/** Decode any browser image source to RGB, PIL's `convert("RGB")` rules (alpha dropped). */
export async function decodeImageBrowser(input: unknown, what = 'image'): Promise<RgbImage> {
  if (isRawImage(input)) return toRgb(input, what);
  if (has('ImageData') && input instanceof ImageData)
    return toRgb({ width: input.width, height: input.height, data: input.data, channels: 4 }, what);
  if (has('ImageBitmap') && input instanceof ImageBitmap)
    return fromBitmapLike(input, input.width, input.height, what);
  if (has('HTMLImageElement') && input instanceof HTMLImageElement) {
    if (!input.complete) await input.decode();
    return fromBitmapLike(input, input.naturalWidth, input.naturalHeight, what);
  }
  if (has('Blob') && input instanceof Blob) return decodeBlob(input, what);
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) {
    if (!has('createImageBitmap')) {
      throw new ProcessorError(
        'E_IMAGE_INPUT',
        `${what}: encoded bytes need a decoder; in Node use decodeImageBytes from @blip2/processor/node`,
      );
    }
    const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
    return decodeBlob(new Blob([bytes as Uint8Array<ArrayBuffer>]), what);
  }
  throw new ProcessorError(
    'E_IMAGE_INPUT',
    `${what}: expected raw pixels, ImageData, ImageBitmap, HTMLImageElement, Blob or encoded bytes, got ${describe(input)}`,
  );
}
