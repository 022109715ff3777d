/**
 * BMP decoding that yields exactly the pixels of Pillow's `Image.open(...).convert("RGB")`.
 *
 * sharp's prebuilt libvips has no BMP loader, and browsers' BMP decoders are not PIL's,
 * so this module re-states Pillow's `BmpImagePlugin` (header parsing, the choice of mode
 * and raw mode, `BmpRleDecoder`) and the `Unpack.c` unpackers it selects, quirks
 * included: what PIL reads, we read the same way; what PIL rejects, we reject with a
 * typed `ProcessorError`. Pure TypeScript, no Node APIs, so browsers can use it too.
 *
 * Names follow the plugin: `header_size`, `bits`, `compression`, `colors`,
 * `palette_padding`, `direction` (-1 = rows stored bottom-up), raw modes "BGR;15" etc.
 */
import { ProcessorError } from './errors.js';
import type { RgbImage } from './image.js';
import { MAX_IMAGE_PIXELS } from './limits.js';

/** `BmpImageFile.COMPRESSIONS` */
const RAW = 0;
const RLE8 = 1;
const RLE4 = 2;
const BITFIELDS = 3;
const COMPRESSION_NAMES = ['BI_RGB', 'BI_RLE8', 'BI_RLE4', 'BI_BITFIELDS', 'BI_JPEG', 'BI_PNG'];

/** Header sizes `BmpImageFile._bitmap` accepts (core, info, V2, V3, OS/2 v2, V4, V5). */
const HEADER_SIZES = [12, 40, 52, 56, 64, 108, 124];

/** `BIT2MODE`: bits per pixel -> (mode, raw mode) before palettes and bitfields refine it. */
const BIT2MODE: Record<number, [Mode, RawMode]> = {
  1: ['P', 'P;1'],
  4: ['P', 'P;4'],
  8: ['P', 'P'],
  16: ['RGB', 'BGR;15'],
  24: ['RGB', 'BGR'],
  32: ['RGB', 'BGRX'],
};

type Mode = '1' | 'L' | 'P' | 'RGB' | 'RGBA';
type RawMode =
  | '1'
  | 'L'
  | 'P'
  | 'P;1'
  | 'P;4'
  | 'BGR;15'
  | 'BGR;16'
  | 'BGR'
  | 'BGRX'
  | 'XBGR'
  | 'BGXR'
  | 'ABGR'
  | 'RGBA'
  | 'BGRA'
  | 'BGAR';

/** Bits each raw mode consumes per pixel (the unpacker's `bits` in Unpack.c's table). */
const RAW_BITS: Record<RawMode, number> = {
  '1': 1,
  L: 8,
  P: 8,
  'P;1': 1,
  'P;4': 4,
  'BGR;15': 16,
  'BGR;16': 16,
  BGR: 24,
  BGRX: 32,
  XBGR: 32,
  BGXR: 32,
  ABGR: 32,
  RGBA: 32,
  BGRA: 32,
  BGAR: 32,
};

/**
 * The BI_BITFIELDS layouts PIL knows (`SUPPORTED` / `MASK_MODES`), keyed by
 * "bits:r,g,b[,a]" masks. 32-bit layouts match on all four masks, 24/16-bit on RGB only.
 */
const MASK_MODES: Record<string, RawMode> = {
  '32:ff0000,ff00,ff,0': 'BGRX',
  '32:ff000000,ff0000,ff00,0': 'XBGR',
  '32:ff000000,ff00,ff,0': 'BGXR',
  '32:ff000000,ff0000,ff00,ff': 'ABGR',
  '32:ff,ff00,ff0000,ff000000': 'RGBA',
  '32:ff0000,ff00,ff,ff000000': 'BGRA',
  '32:ff000000,ff00,ff,ff0000': 'BGAR',
  '32:0,0,0,0': 'BGRA',
  '24:ff0000,ff00,ff': 'BGR',
  '16:f800,7e0,1f': 'BGR;16',
  '16:7c00,3e0,1f': 'BGR;15',
};

/** True when the bytes carry the BMP file signature PIL's `_accept` checks. */
export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

/** Decode a Windows/OS2 bitmap file ("BM...") to RGB, as PIL would. */
export function decodeBmp(bytes: Uint8Array, source = 'BMP bytes'): RgbImage {
  const fail = (
    code: 'E_IMAGE_DECODE' | 'E_IMAGE_FORMAT' | 'E_IMAGE_EMPTY' | 'E_IMAGE_TOO_LARGE',
    what: string,
  ): never => {
    throw new ProcessorError(code, `${source}: ${what}`);
  };
  const u16 = (at: number) => bytes[at] | (bytes[at + 1] << 8);
  const u32 = (at: number) =>
    (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;

  if (!isBmp(bytes)) fail('E_IMAGE_FORMAT', 'not a BMP file (no "BM" signature)');
  if (bytes.length < 18)
    fail('E_IMAGE_DECODE', `truncated BMP: ${bytes.length} bytes, the file header needs 18`);
  let offset = u32(10);
  const headerSize = u32(14);
  if (!HEADER_SIZES.includes(headerSize))
    fail(
      'E_IMAGE_FORMAT',
      `unsupported BMP header size ${headerSize} (PIL reads ${HEADER_SIZES.join(', ')})`,
    );
  const h = 18; // header_data starts after the size field
  let pos = 14 + headerSize;
  if (bytes.length < pos)
    fail('E_IMAGE_DECODE', `truncated BMP: the ${headerSize}-byte info header ends at byte ${bytes.length}`);

  let width: number;
  let height: number;
  let bits: number;
  let compression: number;
  let colors = 0;
  let palettePadding: 3 | 4;
  let direction = -1;
  let masks: number[] = [];
  if (headerSize === 12) {
    // BITMAPCOREHEADER: 16-bit unsigned sizes, always bottom-up, BGR palette triples
    width = u16(h);
    height = u16(h + 2);
    bits = u16(h + 6);
    compression = RAW;
    palettePadding = 3;
  } else {
    // PIL flips only when the height's top byte is 0xFF; other "negative" heights read as
    // huge unsigned values and fail the size limit below, as in PIL.
    const yFlip = bytes[h + 7] === 0xff;
    direction = yFlip ? 1 : -1;
    width = u32(h);
    height = yFlip ? 2 ** 32 - u32(h + 4) : u32(h + 4);
    bits = u16(h + 10);
    compression = u32(h + 12);
    colors = u32(h + 28);
    palettePadding = 4;
    if (compression === BITFIELDS) {
      if (headerSize >= 52) {
        // V2+ headers carry the masks (V3+ an alpha mask too); a 40-byte header is
        // followed by three masks, and its fourth "mask" is reserved, not alpha
        masks = [u32(h + 36), u32(h + 40), u32(h + 44), headerSize >= 56 ? u32(h + 48) : 0];
      } else {
        if (bytes.length < pos + 12)
          fail('E_IMAGE_DECODE', `truncated BMP: the BI_BITFIELDS masks after the header are missing`);
        masks = [u32(pos), u32(pos + 4), u32(pos + 8), 0];
        pos += 12;
      }
    }
  }

  if (!colors) colors = 2 ** bits;
  if (offset === 14 + headerSize && bits <= 8) {
    // the pixel offset points at the palette: PIL skips the palette it expects there
    offset += palettePadding * colors;
  }

  const base = BIT2MODE[bits];
  if (!base) fail('E_IMAGE_FORMAT', `unsupported BMP pixel depth ${bits} (PIL reads 1, 4, 8, 16, 24, 32)`);
  let [mode, rawMode] = base;
  let rle = false;
  if (compression === BITFIELDS) {
    // 32-bit layouts are matched on all four masks, 24/16-bit ones on R, G, B only
    const used = bits === 32 ? masks : masks.slice(0, 3);
    const found = MASK_MODES[`${bits}:${used.map((m) => m.toString(16)).join(',')}`];
    if (!found) {
      fail(
        'E_IMAGE_FORMAT',
        `unsupported BMP bitfields layout: ${bits} bits with masks ${masks.map((m) => `0x${m.toString(16)}`).join(', ')}`,
      );
    }
    rawMode = found as RawMode;
    if (rawMode.includes('A')) mode = 'RGBA';
  } else if (compression === RLE8 || compression === RLE4) {
    rle = true;
  } else if (compression !== RAW) {
    fail(
      'E_IMAGE_FORMAT',
      `unsupported BMP compression ${compression}${COMPRESSION_NAMES[compression] ? ` (${COMPRESSION_NAMES[compression]})` : ''}`,
    );
  }

  // Palette: read right after the header (and masks), whatever the pixel offset says.
  let palette: Uint8Array | null = null;
  if (mode === 'P') {
    if (!(colors > 0 && colors <= 65536)) fail('E_IMAGE_FORMAT', `unsupported BMP palette size ${colors}`);
    const raw = bytes.subarray(pos, Math.min(bytes.length, pos + palettePadding * colors));
    pos += raw.length;
    // A palette equal to the gray ramp (black/white for two colors) makes PIL open the
    // file as L or 1 and unpack the pixels with *that* raw mode, even when the bit depth
    // does not match it.
    let grayscale = true;
    for (let i = 0; i < (colors === 2 ? 2 : colors); i++) {
      const value = colors === 2 ? i * 255 : i & 255;
      const at = i * palettePadding;
      if (at + 3 > raw.length || raw[at] !== value || raw[at + 1] !== value || raw[at + 2] !== value) {
        grayscale = false;
        break;
      }
    }
    if (grayscale) {
      mode = colors === 2 ? '1' : 'L';
      rawMode = mode;
    } else {
      palette = realizePalette(raw, palettePadding, source);
    }
  }
  const dataStart = offset || pos;

  // ImageFile refuses empty images; Image.open refuses decompression bombs.
  if (width === 0 || height === 0) fail('E_IMAGE_EMPTY', `image is empty (${width} x ${height})`);
  if (width * height > MAX_IMAGE_PIXELS) {
    fail(
      'E_IMAGE_TOO_LARGE',
      `BMP dimensions ${width} x ${height} exceed the limit of ${MAX_IMAGE_PIXELS} pixels (MAX_IMAGE_PIXELS, Pillow's decompression-bomb limit)`,
    );
  }

  let pixels: Uint8Array; // mode-specific samples: 1 byte (1/L/P), 3 (RGB) or 4 (RGBA)
  if (rle) {
    if (mode !== 'P' && mode !== 'L') {
      // BmpRleDecoder hands PIL's raw decoder "P" samples, which it cannot store in a
      // mode "1" (black-and-white palette) or RGB (16/24/32-bit) image
      fail(
        'E_IMAGE_DECODE',
        `${bits}-bit BMP with ${COMPRESSION_NAMES[compression]} cannot be decoded: PIL's RLE decoder writes palette indices, which it cannot store in a mode ${mode} image`,
      );
    }
    pixels = decodeRle(bytes, dataStart, width, height, compression === RLE4, direction, source);
  } else {
    pixels = decodeRaw(bytes, dataStart, width, height, bits, rawMode, direction, source);
  }
  return { width, height, data: toRgbFrom(mode, pixels, width * height, palette) };
}

/**
 * The palette as PIL's core holds it after `putpalette("RGB", "BGRX"|"BGR", data)`: 256
 * entries that `ImagingPaletteNew` (Palette.c) allocates zeroed, the file's entries
 * written over the first ones. Pixel indices past the file's palette read as black.
 */
function realizePalette(raw: Uint8Array, padding: 3 | 4, source: string): Uint8Array {
  const entries = Math.floor(raw.length / padding);
  if (entries > 256) {
    throw new ProcessorError(
      'E_IMAGE_DECODE',
      `${source}: BMP palette has ${entries} entries; PIL accepts at most 256`,
    );
  }
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < entries; i++) {
    table[i * 3] = raw[i * padding + 2];
    table[i * 3 + 1] = raw[i * padding + 1];
    table[i * 3 + 2] = raw[i * padding];
  }
  return table;
}

function samplesPerPixel(rawMode: RawMode): 1 | 3 | 4 {
  if (rawMode === '1' || rawMode === 'L' || rawMode.startsWith('P')) return 1;
  return rawMode.includes('A') ? 4 : 3;
}

/**
 * PIL's raw decoder (`RawDecode.c`) with the BMP stride: rows of `(width * bits + 31) / 32`
 * words, of which the unpacker consumes `ceil(width * rawbits / 8)` bytes. The last row
 * needs no padding; any other shortfall is "image file is truncated".
 */
function decodeRaw(
  bytes: Uint8Array,
  start: number,
  width: number,
  height: number,
  bits: number,
  rawMode: RawMode,
  direction: number,
  source: string,
): Uint8Array {
  const stride = 4 * Math.floor((width * bits + 31) / 32);
  const rowBytes = Math.ceil((width * RAW_BITS[rawMode]) / 8);
  if (rowBytes > stride) {
    throw new ProcessorError(
      'E_IMAGE_DECODE',
      `${source}: BMP rows of ${stride} bytes cannot hold ${width} pixels of raw mode ${rawMode}`,
    );
  }
  const needed = start + stride * (height - 1) + rowBytes;
  if (needed > bytes.length) {
    throw new ProcessorError(
      'E_IMAGE_DECODE',
      `${source}: truncated BMP pixel data: ${height} rows of ${stride} bytes from byte ${start} need ${needed} bytes, the file has ${bytes.length}`,
    );
  }
  const spp = samplesPerPixel(rawMode);
  const out = new Uint8Array(width * height * spp);
  for (let i = 0; i < height; i++) {
    const y = direction < 0 ? height - 1 - i : i;
    unpackRow(bytes, start + i * stride, out, y * width * spp, width, rawMode);
  }
  return out;
}

/** 5- and 6-bit channels to 8 bits as Unpack.c's BGR;15 / BGR;16 do: `v * 255 / 31` (or 63), truncated. */
const expand5 = (v: number) => Math.floor((v * 255) / 31);
const expand6 = (v: number) => Math.floor((v * 255) / 63);

/** One row through the Unpack.c unpacker for `rawMode` (ImagingUnpackBGR15, unpackP4, ...). */
function unpackRow(src: Uint8Array, at: number, out: Uint8Array, o: number, width: number, rawMode: RawMode) {
  switch (rawMode) {
    case '1': // MSB first, set bits are white
      for (let x = 0; x < width; x++) out[o + x] = (src[at + (x >> 3)] >> (7 - (x & 7))) & 1 ? 255 : 0;
      return;
    case 'P;1':
      for (let x = 0; x < width; x++) out[o + x] = (src[at + (x >> 3)] >> (7 - (x & 7))) & 1;
      return;
    case 'P;4': // high nibble first
      for (let x = 0; x < width; x++) out[o + x] = (src[at + (x >> 1)] >> (x & 1 ? 0 : 4)) & 15;
      return;
    case 'P':
    case 'L':
      out.set(src.subarray(at, at + width), o);
      return;
    case 'BGR;15':
    case 'BGR;16':
      for (let x = 0; x < width; x++, o += 3) {
        const p = src[at + 2 * x] | (src[at + 2 * x + 1] << 8);
        if (rawMode === 'BGR;15') {
          out[o] = expand5((p >> 10) & 31);
          out[o + 1] = expand5((p >> 5) & 31);
        } else {
          out[o] = expand5((p >> 11) & 31);
          out[o + 1] = expand6((p >> 5) & 63);
        }
        out[o + 2] = expand5(p & 31);
      }
      return;
    case 'BGR':
      for (let x = 0; x < width; x++, o += 3) {
        const s = at + 3 * x;
        out[o] = src[s + 2];
        out[o + 1] = src[s + 1];
        out[o + 2] = src[s];
      }
      return;
    default: {
      // 32-bit layouts: byte index of R, G, B (and A) within each little-endian pixel
      const [r, g, b, a] = BYTE_ORDER[rawMode];
      const spp = a < 0 ? 3 : 4;
      for (let x = 0; x < width; x++, o += spp) {
        const s = at + 4 * x;
        out[o] = src[s + r];
        out[o + 1] = src[s + g];
        out[o + 2] = src[s + b];
        if (a >= 0) out[o + 3] = src[s + a];
      }
    }
  }
}

const BYTE_ORDER: Record<string, [number, number, number, number]> = {
  BGRX: [2, 1, 0, -1],
  XBGR: [3, 2, 1, -1],
  BGXR: [3, 1, 0, -1],
  ABGR: [3, 2, 1, 0],
  RGBA: [0, 1, 2, 3],
  BGRA: [2, 1, 0, 3],
  BGAR: [3, 1, 0, 2],
};

/**
 * `BmpRleDecoder.decode`: expands the run-length stream into one sample per pixel in file
 * row order. Runs are clipped at the row end, absolute runs are not; end-of-line pads
 * the row with index 0; a delta writes zeros; RLE4 absolute runs keep only whole bytes
 * (`count // 2` of them); word alignment is measured from the start of the file. The
 * stream may stop early (end-of-bitmap or truncation), but PIL then fails with "not
 * enough image data" unless every pixel was written.
 */
function decodeRle(
  bytes: Uint8Array,
  start: number,
  width: number,
  height: number,
  rle4: boolean,
  direction: number,
  source: string,
): Uint8Array {
  const destLength = width * height;
  const data = new Uint8Array(destLength);
  let n = 0; // len(data); writes past destLength are dropped by the raw decoder anyway
  const put = (v: number) => {
    if (n < destLength) data[n] = v;
    n++;
  };
  let pos = start;
  let x = 0;
  while (n < destLength) {
    if (pos + 2 > bytes.length) break;
    let count = bytes[pos];
    const byte = bytes[pos + 1];
    pos += 2;
    if (count) {
      // encoded mode
      if (x + count > width) count = Math.max(0, width - x);
      if (rle4) for (let i = 0; i < count; i++) put(i % 2 === 0 ? byte >> 4 : byte & 15);
      else for (let i = 0; i < count; i++) put(byte);
      x += count;
    } else if (byte === 0) {
      // end of line
      n = Math.ceil(n / width) * width;
      x = 0;
    } else if (byte === 1) {
      break; // end of bitmap
    } else if (byte === 2) {
      // delta: zeros up to the new position
      if (pos + 2 > bytes.length) {
        pos = bytes.length;
        break;
      }
      n += bytes[pos] + bytes[pos + 1] * width;
      pos += 2;
      x = n % width;
    } else {
      // absolute mode
      const byteCount = rle4 ? byte >> 1 : byte;
      const end = Math.min(bytes.length, pos + byteCount);
      for (let i = pos; i < end; i++) {
        if (rle4) {
          put(bytes[i] >> 4);
          put(bytes[i] & 15);
        } else put(bytes[i]);
      }
      const got = end - pos;
      pos = end;
      if (got < byteCount) break;
      x += byte;
      if (pos % 2 !== 0) pos++;
    }
  }
  if (n < destLength) {
    throw new ProcessorError(
      'E_IMAGE_DECODE',
      `${source}: BMP ${rle4 ? 'RLE4' : 'RLE8'} stream from byte ${start} ends after ${Math.min(n, destLength)} of ${destLength} pixels (PIL: "not enough image data")`,
    );
  }
  if (direction > 0) return data;
  const flipped = new Uint8Array(destLength);
  for (let y = 0; y < height; y++)
    flipped.set(data.subarray(y * width, (y + 1) * width), (height - 1 - y) * width);
  return flipped;
}

/** `convert("RGB")` from the mode PIL opened the file as: palette lookup, gray repeated, alpha dropped. */
function toRgbFrom(mode: Mode, pixels: Uint8Array, count: number, palette: Uint8Array | null): Uint8Array {
  if (mode === 'RGB') return pixels;
  const out = new Uint8Array(count * 3);
  for (let i = 0, o = 0; i < count; i++, o += 3) {
    if (mode === 'RGBA') {
      out[o] = pixels[4 * i];
      out[o + 1] = pixels[4 * i + 1];
      out[o + 2] = pixels[4 * i + 2];
    } else if (palette) {
      const p = pixels[i] * 3;
      out[o] = palette[p];
      out[o + 1] = palette[p + 1];
      out[o + 2] = palette[p + 2];
    } else {
      out[o] = pixels[i];
      out[o + 1] = pixels[i];
      out[o + 2] = pixels[i];
    }
  }
  return out;
}
