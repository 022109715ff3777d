import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { readSafetensorsFile } from '@blip2/safetensors/node';
import { describe, expect, it } from 'vitest';
import { ImageProcessor, resizeBicubic } from '../src/index.js';
import { decodeImageFile } from '../src/node.js';

const names = [
  'small_47x31.png',
  'alpha_64x64.png',
  'gray_40x40.png',
  'photo_100x80.jpg',
  'exact_224.png',
  'coco_500x375.jpg',
  'tall_333x500.png',
];
const reference = await readSafetensorsFile(join(fixtures.images, 'pixel_values.safetensors'));

function ref(key: string) {
  const e = reference.get(key);
  if (!e) throw new Error(`fixture tensor ${key} missing`);
  return e;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('decoding (sharp) matches PIL convert("RGB")', () => {
  it.each(names)('%s', async (name) => {
    const img = await decodeImageFile(join(fixtures.images, name));
    const expected = ref(`${name}/decoded_rgb`);
    expect([img.height, img.width, 3]).toEqual(expected.dims);
    expect(Buffer.from(img.data).equals(Buffer.from(expected.data as Uint8Array))).toBe(true);
  });
});

describe('pixel_values match PIL bicubic + rescale + normalize', () => {
  const cases = names.flatMap((name) => [32, 64, 224].map((size) => [name, size] as const));
  it.each(cases)('%s at %i', async (name, size) => {
    const img = await decodeImageFile(join(fixtures.images, name));
    const processor = new ImageProcessor({ size: { height: size, width: size } });
    const pv = processor.preprocess([img]);
    const expected = ref(`${name}/pil/${size}`);
    expect(pv.dims).toEqual([1, ...expected.dims]);
    expect(maxAbs(pv.data, expected.data as Float32Array)).toBeLessThanOrEqual(1e-6);
  });
});

describe('resize', () => {
  it('is the identity at the same size and keeps constant images constant', () => {
    const data = new Uint8Array(5 * 4 * 3).fill(77);
    const img = { width: 5, height: 4, data };
    expect(resizeBicubic(img, 5, 4)).toBe(img);
    const up = resizeBicubic(img, 13, 2);
    expect(up.data.every((v) => v === 77)).toBe(true);
  });
});

// CMYK JPEGs as Pillow writes them (Adobe marker, inverted CMYK) and Pillow 9.4's convert('RGB')
// of each, saved losslessly as PNG (test/oracle/make-cmyk-cases.py wrote both).
describe('CMYK JPEGs decode as PIL convert("RGB"), not through an ICC transform', () => {
  const dir = join(import.meta.dirname, 'fixtures', 'cmyk');
  it.each(['noise', 'ramp', 'photo'])('%s.jpg', async (name) => {
    const img = await decodeImageFile(join(dir, `${name}.jpg`));
    const pil = await decodeImageFile(join(dir, `${name}.pil-rgb.png`));
    expect([img.width, img.height]).toEqual([pil.width, pil.height]);
    expect(maxAbs(img.data, pil.data)).toBe(0);
  });
  it('the ICC transform sharp would apply is far from it (the difference this fixes)', async () => {
    const sharp = (await import('sharp')).default;
    const { data } = await sharp(join(dir, 'noise.jpg'), { ignoreIcc: true })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    const pil = await decodeImageFile(join(dir, 'noise.pil-rgb.png'));
    expect(maxAbs(new Uint8Array(data), pil.data)).toBeGreaterThan(50);
  });
});
