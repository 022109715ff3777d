/**
 * BMP decoding against what Pillow's BmpImagePlugin + `convert("RGB")` yields. Files are
 * written here from known RGB pixels by a small encoder, so every expected value is
 * either the source pixel itself or, for 16-bit pixels, the source channel quantized and
 * expanded with Pillow's own formula.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeBmp, isBmp } from '../src/bmp.js';
import { ImageProcessor, ProcessorError, type RgbImage } from '../src/index.js';
import { decodeImageBytes, decodeImageFile } from '../src/node.js';

// ---------------------------------------------------------------- a small BMP encoder

const BI_RGB = 0;
const BI_RLE8 = 1;
const BI_RLE4 = 2;
const BI_BITFIELDS = 3;

interface BmpSpec {
  headerSize?: 12 | 40 | 52 | 56 | 108 | 124;
  width: number;
  height: number;
  bits: number;
  compression?: number;
  topDown?: boolean;
  /** palette entries as [r, g, b]; written BGRX (BGR for 12-byte headers) */
  palette?: readonly (readonly [number, number, number])[];
  /** biClrUsed; defaults to the palette length */
  colorsUsed?: number;
  /** r, g, b, a masks for BI_BITFIELDS */
  masks?: readonly number[];
  /** packed pixel bytes per row, top row first (padded to 4 bytes by the encoder) */
  rows?: readonly Uint8Array[];
  /** the whole pixel array as stored (RLE streams) */
  data?: Uint8Array;
  /** overrides bfOffBits */
  offset?: number;
}

function encodeBmp(spec: BmpSpec): Uint8Array {
  const headerSize = spec.headerSize ?? 40;
  const core = headerSize === 12;
  const entry = core ? 3 : 4;
  const palette = spec.palette ?? [];
  const inlineMasks = spec.compression === BI_BITFIELDS && headerSize === 40;
  let pixelData: Uint8Array;
  if (spec.data) {
    pixelData = spec.data;
  } else {
    const rows = spec.rows ?? [];
    const stride = Math.ceil((spec.width * spec.bits) / 32) * 4;
    pixelData = new Uint8Array(stride * rows.length);
    rows.forEach((row, i) => {
      const stored = spec.topDown ? i : rows.length - 1 - i;
      pixelData.set(row, stored * stride);
    });
  }
  const masksLength = inlineMasks ? 12 : 0;
  const paletteStart = 14 + headerSize + masksLength;
  const dataStart = paletteStart + palette.length * entry;
  const out = new Uint8Array(dataStart + pixelData.length);
  const view = new DataView(out.buffer);
  out[0] = 0x42;
  out[1] = 0x4d;
  view.setUint32(2, out.length, true);
  view.setUint32(10, spec.offset ?? dataStart, true);
  view.setUint32(14, headerSize, true);
  if (core) {
    view.setUint16(18, spec.width, true);
    view.setUint16(20, spec.height, true);
    view.setUint16(22, 1, true);
    view.setUint16(24, spec.bits, true);
  } else {
    view.setInt32(18, spec.width, true);
    view.setInt32(22, spec.topDown ? -spec.height : spec.height, true);
    view.setUint16(26, 1, true);
    view.setUint16(28, spec.bits, true);
    view.setUint32(30, spec.compression ?? BI_RGB, true);
    view.setUint32(34, pixelData.length, true);
    view.setUint32(38, 2835, true);
    view.setUint32(42, 2835, true);
    view.setUint32(46, spec.colorsUsed ?? palette.length, true);
    const masks = spec.masks ?? [];
    if (spec.compression === BI_BITFIELDS) {
      // right after a 40-byte header, or inside V2+ headers at the same file position;
      // V2 (52 bytes) has no room for the alpha mask
      masks.slice(0, inlineMasks || headerSize === 52 ? 3 : 4).forEach((m, i) => {
        view.setUint32(54 + 4 * i, m, true);
      });
    }
  }
  palette.forEach(([r, g, b], i) => {
    out.set([b, g, r], paletteStart + i * entry);
  });
  out.set(pixelData, dataStart);
  return out;
}

// ---------------------------------------------------------------- known pixels

/** Deterministic "random" bytes (an LCG), so that the tests are reproducible. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

// odd width: rows of 7 pixels exercise the 4-byte row padding for every depth
const W = 7;
const H = 5;
const source: RgbImage = { width: W, height: H, data: noise(W * H * 3, 1) };
const px = (x: number, y: number) => source.data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3);

function rowsOf(bytesPerPixel: number, pack: (rgb: Uint8Array, x: number, y: number) => number[]) {
  return Array.from({ length: H }, (_, y) => {
    const row = new Uint8Array(W * bytesPerPixel);
    for (let x = 0; x < W; x++) row.set(pack(px(x, y), x, y), x * bytesPerPixel);
    return row;
  });
}

function expectRgb(image: RgbImage, width: number, height: number, expected: Uint8Array | number[]) {
  expect([image.width, image.height]).toEqual([width, height]);
  expect(Array.from(image.data)).toEqual(Array.from(expected));
}

/** Indexed test image: a 16-colour palette and indices from the noise. */
const palette16 = Array.from({ length: 16 }, (_, i) => {
  const c = noise(3, 100 + i);
  return [c[0], c[1], c[2]] as const;
});
const indices = noise(W * H, 7);
function indexedRows(bits: 1 | 4 | 8) {
  const levels = 1 << Math.min(bits, 4); // 8-bit uses the 16 entries too
  return Array.from({ length: H }, (_, y) => {
    const row = new Uint8Array(Math.ceil((W * bits) / 8));
    for (let x = 0; x < W; x++) {
      const index = indices[y * W + x] % levels;
      if (bits === 8) row[x] = index;
      else if (bits === 4) row[x >> 1] |= index << (x & 1 ? 0 : 4);
      else row[x >> 3] |= index << (7 - (x & 7));
    }
    return row;
  });
}
function indexedExpected(bits: 1 | 4 | 8, pal: readonly (readonly number[])[]) {
  const levels = 1 << Math.min(bits, 4);
  return Array.from(indices).flatMap((i) => [...pal[i % levels]]);
}

describe('uncompressed BMP (BI_RGB)', () => {
  it.each([40, 108, 124] as const)('24-bit BGR, bottom-up and top-down, %i-byte header', (headerSize) => {
    for (const topDown of [false, true]) {
      const rows = rowsOf(3, ([r, g, b]) => [b, g, r]);
      const img = decodeBmp(encodeBmp({ headerSize, width: W, height: H, bits: 24, rows, topDown }));
      expectRgb(img, W, H, source.data);
    }
  });

  it('24-bit with the OS/2 BITMAPCOREHEADER (12 bytes)', () => {
    const rows = rowsOf(3, ([r, g, b]) => [b, g, r]);
    expectRgb(
      decodeBmp(encodeBmp({ headerSize: 12, width: W, height: H, bits: 24, rows })),
      W,
      H,
      source.data,
    );
  });

  it('32-bit BGRX: the fourth byte is ignored, not alpha', () => {
    const junk = noise(W * H, 9);
    const rows = rowsOf(4, ([r, g, b], x, y) => [b, g, r, junk[y * W + x]]);
    for (const topDown of [false, true]) {
      const img = decodeBmp(encodeBmp({ width: W, height: H, bits: 32, rows, topDown }));
      expectRgb(img, W, H, source.data);
    }
  });

  it.each([1, 4, 8] as const)('%i-bit palette (BGRX entries), both row orders', (bits) => {
    const pal = bits === 1 ? palette16.slice(0, 2) : palette16;
    for (const topDown of [false, true]) {
      const img = decodeBmp(
        encodeBmp({ width: W, height: H, bits, palette: pal, rows: indexedRows(bits), topDown }),
      );
      expectRgb(img, W, H, indexedExpected(bits, pal));
    }
  });

  it.each([1, 4, 8] as const)('%i-bit palette with BGR entries (BITMAPCOREHEADER)', (bits) => {
    // a core header has no colour count: the palette always has 2^bits entries
    const full = Array.from({ length: 1 << bits }, (_, i) => palette16[i % 16]);
    const img = decodeBmp(
      encodeBmp({ headerSize: 12, width: W, height: H, bits, palette: full, rows: indexedRows(bits) }),
    );
    expectRgb(img, W, H, indexedExpected(bits, full));
  });

  it('a gray-ramp palette (PIL opens it as mode L) and a black/white one (mode 1)', () => {
    const ramp = Array.from({ length: 256 }, (_, i) => [i, i, i] as const);
    const gray = noise(W * H, 11);
    const rows = Array.from({ length: H }, (_, y) => gray.subarray(y * W, (y + 1) * W));
    const img = decodeBmp(encodeBmp({ width: W, height: H, bits: 8, palette: ramp, rows }));
    expectRgb(
      img,
      W,
      H,
      Array.from(gray).flatMap((v) => [v, v, v]),
    );

    const bw = [
      [0, 0, 0],
      [255, 255, 255],
    ] as const;
    const one = decodeBmp(encodeBmp({ width: W, height: H, bits: 1, palette: bw, rows: indexedRows(1) }));
    expectRgb(one, W, H, indexedExpected(1, bw));
  });

  it('pixel indices past a short palette read as black (PIL zero-fills the palette)', () => {
    const pal = palette16.slice(0, 3);
    const rows = [new Uint8Array([0, 1, 2, 3, 200])];
    const img = decodeBmp(encodeBmp({ width: 5, height: 1, bits: 8, palette: pal, rows }));
    expectRgb(img, 5, 1, [...pal[0], ...pal[1], ...pal[2], 0, 0, 0, 0, 0, 0]);
  });

  it('a pixel offset pointing at the palette makes PIL skip the palette, as we do', () => {
    const pal = palette16;
    const file = encodeBmp({ width: W, height: H, bits: 4, palette: pal, rows: indexedRows(4), offset: 54 });
    expectRgb(decodeBmp(file), W, H, indexedExpected(4, pal));
  });

  it('the last row needs no padding bytes', () => {
    const rows = rowsOf(3, ([r, g, b]) => [b, g, r]);
    const file = encodeBmp({ width: W, height: H, bits: 24, rows, topDown: true });
    const padding = 4 - ((W * 3) % 4);
    expectRgb(decodeBmp(file.subarray(0, file.length - padding)), W, H, source.data);
  });
});

/**
 * Pillow's `Unpack.c`, `ImagingUnpackBGR15` and `ImagingUnpackBGR16` (the unpackers of
 * raw modes "BGR;15" and "BGR;16"): `out = v * 255 / 31` for 5-bit channels and
 * `v * 255 / 63` for the 6-bit green of 5-6-5, C integer division (truncation). Not bit
 * replication: 4/31 expands to 32, where `v << 3 | v >> 2` gives 33.
 */
const pil5 = (v: number) => Math.floor((v * 255) / 31);
const pil6 = (v: number) => Math.floor((v * 255) / 63);

describe('16-bit BMP', () => {
  it('Pillow expansion spot values', () => {
    expect([0, 1, 4, 15, 16, 30, 31].map(pil5)).toEqual([0, 8, 32, 123, 131, 246, 255]);
    expect([0, 1, 2, 31, 32, 62, 63].map(pil6)).toEqual([0, 4, 8, 125, 129, 250, 255]);
  });

  const p555 = ([r, g, b]: Uint8Array, topBit: number) => {
    const v = (topBit << 15) | ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
    return [v & 255, v >> 8];
  };
  const expected555 = Array.from(source.data).map((v) => pil5(v >> 3));

  it('BI_RGB is 5-5-5 (bit 15 ignored)', () => {
    const top = noise(W * H, 5);
    const rows = rowsOf(2, (rgb, x, y) => p555(rgb, top[y * W + x] & 1));
    for (const topDown of [false, true]) {
      expectRgb(decodeBmp(encodeBmp({ width: W, height: H, bits: 16, rows, topDown })), W, H, expected555);
    }
  });

  it.each([40, 56, 108, 124] as const)('BI_BITFIELDS 5-5-5 and 5-6-5, %i-byte header', (headerSize) => {
    const rows555 = rowsOf(2, (rgb) => p555(rgb, 0));
    const masks555 = [0x7c00, 0x3e0, 0x1f, 0];
    const img555 = decodeBmp(
      encodeBmp({
        headerSize,
        width: W,
        height: H,
        bits: 16,
        compression: BI_BITFIELDS,
        masks: masks555,
        rows: rows555,
      }),
    );
    expectRgb(img555, W, H, expected555);

    const rows565 = rowsOf(2, ([r, g, b]) => {
      const v = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3);
      return [v & 255, v >> 8];
    });
    const masks565 = [0xf800, 0x7e0, 0x1f, 0];
    const img565 = decodeBmp(
      encodeBmp({
        headerSize,
        width: W,
        height: H,
        bits: 16,
        compression: BI_BITFIELDS,
        masks: masks565,
        rows: rows565,
      }),
    );
    const expected565 = Array.from(source.data).map((v, i) => (i % 3 === 1 ? pil6(v >> 2) : pil5(v >> 3)));
    expectRgb(img565, W, H, expected565);
  });
});

describe('32-bit BI_BITFIELDS (alpha masks decode as RGBA, then convert("RGB") drops alpha)', () => {
  // byte positions of r, g, b, a inside each little-endian pixel, from the masks
  const layouts: [string, number[], number[]][] = [
    ['BGRX', [0xff0000, 0xff00, 0xff, 0], [2, 1, 0, 3]],
    ['XBGR', [0xff000000, 0xff0000, 0xff00, 0], [3, 2, 1, 0]],
    ['BGXR', [0xff000000, 0xff00, 0xff, 0], [3, 1, 0, 2]],
    ['ABGR', [0xff000000, 0xff0000, 0xff00, 0xff], [3, 2, 1, 0]],
    ['RGBA', [0xff, 0xff00, 0xff0000, 0xff000000], [0, 1, 2, 3]],
    ['BGRA', [0xff0000, 0xff00, 0xff, 0xff000000], [2, 1, 0, 3]],
    ['BGAR', [0xff000000, 0xff00, 0xff, 0xff0000], [3, 1, 0, 2]],
  ];
  const alpha = noise(W * H, 13);
  it.each(layouts)('%s', (_name, masks, [ri, gi, bi, ai]) => {
    const rows = rowsOf(4, ([r, g, b], x, y) => {
      const p = [0, 0, 0, 0];
      p[ri] = r;
      p[gi] = g;
      p[bi] = b;
      p[ai] = alpha[y * W + x];
      return p;
    });
    // masks with alpha need a V3+ header (a 40-byte header has no alpha mask)
    const headers = masks[3] ? ([56, 108, 124] as const) : ([40, 108, 124] as const);
    for (const headerSize of headers) {
      const file = encodeBmp({
        headerSize,
        width: W,
        height: H,
        bits: 32,
        compression: BI_BITFIELDS,
        masks,
        rows,
      });
      expectRgb(decodeBmp(file), W, H, source.data);
    }
  });

  it('all-zero masks read as BGRA, as in PIL', () => {
    const rows = rowsOf(4, ([r, g, b], x, y) => [b, g, r, alpha[y * W + x]]);
    const file = encodeBmp({
      width: W,
      height: H,
      bits: 32,
      compression: BI_BITFIELDS,
      masks: [0, 0, 0],
      rows,
    });
    expectRgb(decodeBmp(file), W, H, source.data);
  });

  it('24-bit BI_BITFIELDS with the standard masks', () => {
    const rows = rowsOf(3, ([r, g, b]) => [b, g, r]);
    const masks = [0xff0000, 0xff00, 0xff];
    expectRgb(
      decodeBmp(encodeBmp({ width: W, height: H, bits: 24, compression: BI_BITFIELDS, masks, rows })),
      W,
      H,
      source.data,
    );
  });
});

describe('run-length encoded BMP (BmpRleDecoder)', () => {
  const pal = palette16;
  const c = (i: number) => [...pal[i]];

  it('RLE8: runs, absolute runs with word padding, delta, end of line, end of bitmap', () => {
    // 6 x 3, stored bottom-up: the first decoded row is the image's last row
    const stream = new Uint8Array([
      // row 2 (bottom): run of 2 x idx1, absolute 3 pixels [2, 3, 4] + pad byte, run 1 x idx5, EOL
      2, 1, 0, 3, 2, 3, 4, 0, 1, 5, 0, 0,
      // row 1: run 2 x idx6, delta right 2 (zeros), end of line (pads the rest with idx 0)
      2, 6, 0, 2, 2, 0, 0, 0,
      // row 0 (top): a run longer than the row is clipped to the row, then end of bitmap
      9, 7, 0, 1,
    ]);
    const img = decodeBmp(
      encodeBmp({ width: 6, height: 3, bits: 8, compression: BI_RLE8, palette: pal, data: stream }),
    );
    expectRgb(img, 6, 3, [
      ...[7, 7, 7, 7, 7, 7].flatMap(c),
      ...[6, 6, 0, 0, 0, 0].flatMap(c),
      ...[1, 1, 2, 3, 4, 5].flatMap(c),
    ]);
  });

  it('RLE8: a delta moving up a row, and a top-down file', () => {
    const stream = new Uint8Array([1, 9, 0, 2, 1, 1, 2, 8, 0, 0, 3, 4, 0, 0, 0, 1]);
    // 1 x idx9; delta (1 right, 1 up) writes zeros up to row 1, x = 2; 2 x idx8; EOL;
    // 3 x idx4; EOL fills the last pixel, and the decoder stops before end-of-bitmap
    const img = decodeBmp(
      encodeBmp({
        width: 4,
        height: 3,
        bits: 8,
        compression: BI_RLE8,
        palette: pal,
        data: stream,
        topDown: true,
      }),
    );
    expectRgb(img, 4, 3, [...[9, 0, 0, 0], ...[0, 0, 8, 8], ...[4, 4, 4, 0]].flatMap(c));
  });

  it('RLE4: alternating nibble runs, absolute nibbles, delta, end of line', () => {
    // 5 x 2, bottom-up
    const stream = new Uint8Array([
      // bottom row: run of 5 alternating 0xA, 0xB; end of line
      5, 0xab, 0, 0,
      // top row: absolute 4 pixels [1, 2, 3, 4] (2 bytes, already word aligned), delta 1, EOL
      0, 4, 0x12, 0x34, 0, 2, 1, 0, 0, 0,
    ]);
    const img = decodeBmp(
      encodeBmp({ width: 5, height: 2, bits: 4, compression: BI_RLE4, palette: pal, data: stream }),
    );
    expectRgb(img, 5, 2, [...[1, 2, 3, 4, 0], ...[10, 11, 10, 11, 10]].flatMap(c));
  });

  it('RLE4: an odd absolute count keeps count // 2 bytes, as PIL does', () => {
    // an encoder stores absolute [1, 2, 3] as 0x12 0x30; PIL reads 3 // 2 = 1 byte (pixels
    // 1, 2), yet advances x by 3; word alignment (the stream starts at the even byte 118)
    // then skips 0x30, so pixel 3 is lost. The run [2, 0x77] at x = 3 is clipped to one
    // pixel, which lands at index 2, and end-of-line pads the row.
    const stream = new Uint8Array([0, 3, 0x12, 0x30, 2, 0x77, 0, 0]);
    const img = decodeBmp(
      encodeBmp({ width: 4, height: 1, bits: 4, compression: BI_RLE4, palette: pal, data: stream }),
    );
    expectRgb(img, 4, 1, [1, 2, 7, 0].flatMap(c));
  });
});

describe('what PIL rejects is a typed error', () => {
  const base = (): BmpSpec => ({ width: W, height: H, bits: 24, rows: rowsOf(3, ([r, g, b]) => [b, g, r]) });
  const fails = (bytes: Uint8Array, code: string, text: RegExp) => {
    let err: unknown;
    try {
      decodeBmp(bytes, 'cat.bmp');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProcessorError);
    expect((err as ProcessorError).code).toBe(code);
    expect((err as ProcessorError).message).toContain('cat.bmp');
    expect((err as ProcessorError).message).toMatch(text);
  };

  it('unsupported compression (BI_JPEG, BI_PNG, unknown)', () => {
    fails(encodeBmp({ ...base(), compression: 4 }), 'E_IMAGE_FORMAT', /compression 4 \(BI_JPEG\)/);
    fails(encodeBmp({ ...base(), compression: 5 }), 'E_IMAGE_FORMAT', /compression 5 \(BI_PNG\)/);
    fails(encodeBmp({ ...base(), compression: 9 }), 'E_IMAGE_FORMAT', /compression 9/);
  });

  it('a bad header size, a bad bit depth, an unsupported bitfields layout', () => {
    const file = encodeBmp(base());
    new DataView(file.buffer).setUint32(14, 20, true);
    fails(file, 'E_IMAGE_FORMAT', /header size 20/);
    fails(encodeBmp({ ...base(), bits: 2, rows: [] }), 'E_IMAGE_FORMAT', /pixel depth 2/);
    fails(
      encodeBmp({ ...base(), bits: 16, compression: BI_BITFIELDS, masks: [0x1f, 0x7e0, 0xf800], rows: [] }),
      'E_IMAGE_FORMAT',
      /bitfields layout.*0x1f, 0x7e0, 0xf800/,
    );
    fails(
      encodeBmp({ ...base(), bits: 8, compression: BI_BITFIELDS, masks: [0xff0000, 0xff00, 0xff], rows: [] }),
      'E_IMAGE_FORMAT',
      /bitfields/,
    );
  });

  it('zero width or height', () => {
    fails(encodeBmp({ ...base(), width: 0, rows: [] }), 'E_IMAGE_EMPTY', /0 x 5/);
    fails(encodeBmp({ ...base(), height: 0, rows: [] }), 'E_IMAGE_EMPTY', /7 x 0/);
  });

  it("dimensions past PIL's decompression-bomb limit", () => {
    fails(
      encodeBmp({ ...base(), width: 20000, height: 20000, rows: [] }),
      'E_IMAGE_TOO_LARGE',
      /20000 x 20000.*limit of 178956970 pixels/,
    );
    // a "negative" height whose top byte is not 0xFF is a huge unsigned height to PIL
    const file = encodeBmp(base());
    new DataView(file.buffer).setInt32(22, -(2 ** 24) - 1, true);
    fails(file, 'E_IMAGE_TOO_LARGE', /limit/);
  });

  it('truncated header, masks and pixel data', () => {
    const file = encodeBmp(base());
    fails(file.subarray(0, 16), 'E_IMAGE_DECODE', /truncated/);
    fails(file.subarray(0, 40), 'E_IMAGE_DECODE', /truncated.*info header/);
    fails(file.subarray(0, file.length - 8), 'E_IMAGE_DECODE', /truncated BMP pixel data/);
    const masked = encodeBmp({
      ...base(),
      bits: 32,
      compression: BI_BITFIELDS,
      masks: [0xff0000, 0xff00, 0xff],
    });
    fails(masked.subarray(0, 60), 'E_IMAGE_DECODE', /masks/);
  });

  it('RLE streams that stop before the last pixel (PIL: "not enough image data")', () => {
    const rle = (data: number[]) =>
      encodeBmp({
        width: 4,
        height: 2,
        bits: 8,
        compression: BI_RLE8,
        palette: palette16,
        data: new Uint8Array(data),
      });
    fails(rle([4, 1, 0, 0, 0, 1]), 'E_IMAGE_DECODE', /ends after 4 of 8 pixels/); // early end of bitmap
    fails(rle([4, 1, 0, 0, 2]), 'E_IMAGE_DECODE', /RLE8.*ends after 4 of 8/); // truncated mid-command
    fails(rle([4, 1, 0, 4, 1, 2]), 'E_IMAGE_DECODE', /ends after/); // truncated absolute run
  });

  it('RLE with a black-and-white palette or RGB pixels (PIL: unknown raw mode)', () => {
    const bw = [
      [0, 0, 0],
      [255, 255, 255],
    ] as const;
    const data = new Uint8Array([4, 1, 0, 0, 4, 0, 0, 1]);
    fails(
      encodeBmp({ width: 4, height: 2, bits: 8, compression: BI_RLE8, palette: bw, data }),
      'E_IMAGE_DECODE',
      /BI_RLE8 cannot be decoded.*mode 1 image/,
    );
    fails(encodeBmp({ width: 4, height: 2, bits: 24, compression: BI_RLE8, data }), 'E_IMAGE_DECODE', /RGB/);
  });

  it('more than 256 palette entries, and a palette size PIL refuses', () => {
    const pal = Array.from({ length: 300 }, (_, i) => [i & 255, 1, 2] as const);
    fails(
      encodeBmp({ ...base(), bits: 8, palette: pal, rows: indexedRows(8) }),
      'E_IMAGE_DECODE',
      /300 entries/,
    );
    fails(
      encodeBmp({ ...base(), bits: 8, colorsUsed: 70000, palette: [], rows: [] }),
      'E_IMAGE_FORMAT',
      /palette size 70000/,
    );
  });

  it('isBmp only accepts the "BM" signature', () => {
    expect(isBmp(new Uint8Array([0x42, 0x4d]))).toBe(true);
    expect(isBmp(new Uint8Array([0x42]))).toBe(false);
    fails(new Uint8Array([0x89, 0x50, 0x4e, 0x47]), 'E_IMAGE_FORMAT', /not a BMP/);
  });
});

describe('Node decoding entry points', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a .bmp written from a fixture PNG decodes to the same RGB and pixel_values', async () => {
    const name = 'small_47x31.png';
    const png = await decodeImageFile(join(fixtures.images, name));
    const { width, height } = png;
    const rows = Array.from({ length: height }, (_, y) => {
      const row = new Uint8Array(width * 3);
      for (let x = 0; x < width; x++) {
        const s = (y * width + x) * 3;
        row.set([png.data[s + 2], png.data[s + 1], png.data[s]], x * 3);
      }
      return row;
    });
    dir = await mkdtemp(join(tmpdir(), 'blip2-bmp-'));
    const path = join(dir, 'small_47x31.bmp');
    await writeFile(path, encodeBmp({ width, height, bits: 24, rows }));

    const bmp = await decodeImageFile(path);
    expect([bmp.width, bmp.height]).toEqual([47, 31]);
    expect(Buffer.from(bmp.data).equals(Buffer.from(png.data))).toBe(true);

    const processor = new ImageProcessor({ size: { height: 64, width: 64 } });
    const fromBmp = processor.preprocess([bmp]);
    const fromPng = processor.preprocess([png]);
    expect(fromBmp.dims).toEqual([1, 3, 64, 64]);
    const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    expect(bytesOf(fromBmp.data as Float32Array).equals(bytesOf(fromPng.data as Float32Array))).toBe(true);
  });

  it('decodeImageBytes routes BMP bytes to the BMP decoder (sharp has no BMP loader)', async () => {
    const rows = rowsOf(3, ([r, g, b]) => [b, g, r]);
    const img = await decodeImageBytes(encodeBmp({ width: W, height: H, bits: 24, rows }), 'x.bmp');
    expectRgb(img, W, H, source.data);
    await expect(
      decodeImageBytes(encodeBmp({ width: W, height: H, bits: 24, rows, compression: 4 }), 'x.bmp'),
    ).rejects.toMatchObject({ code: 'E_IMAGE_FORMAT', message: expect.stringContaining('x.bmp') });
  });

  it('SVG is refused with E_IMAGE_FORMAT (PIL does not open SVG)', async () => {
    const svg = new TextEncoder().encode(
      '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="red"/></svg>',
    );
    const err = await decodeImageBytes(svg, 'logo.svg').catch((e) => e);
    expect(err).toBeInstanceOf(ProcessorError);
    expect(err.code).toBe('E_IMAGE_FORMAT');
    expect(err.message).toMatch(/logo\.svg: SVG is not an image format PIL opens/);
  });
});
