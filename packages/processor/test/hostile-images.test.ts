/**
 * Image files as an attacker or an unlucky user supplies them, made by the test: a FIFO, a
 * device, a folder, a file over the byte cap, PNG and GIF headers announcing more pixels than
 * Pillow's decompression-bomb limit. Each is refused quickly with a typed error naming the limit,
 * before the decoder allocates the pixels.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { fixtures } from '@blip2/fixtures';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_IMAGE_PIXELS } from '../src/index.js';
import { decodeImageFile } from '../src/node.js';

const dir = mkdtempSync(join(tmpdir(), 'blip2-hostile-images-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A PNG whose header says width x height (RGB, 8 bit) and whose data is one short row: a bomb's header. */
function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1 + 3 * 16))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function refused(path: string, options?: { maxBytes?: number }) {
  const t0 = performance.now();
  const err = await decodeImageFile(path, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err: err as { code?: string; message?: string } | undefined, ms: performance.now() - t0 };
}

describe('hostile image files', () => {
  it('a FIFO is refused at once (never waits for a writer)', async () => {
    const fifo = join(dir, 'pipe.png');
    execFileSync('mkfifo', [fifo]);
    const { err, ms } = await refused(fifo);
    expect(err).toMatchObject({ code: 'E_IMAGE_FILE', message: expect.stringContaining('is a FIFO') });
    expect(ms).toBeLessThan(2000);
  });

  it('/dev/zero, and a link to it, are refused without reading', async () => {
    expect((await refused('/dev/zero')).err).toMatchObject({
      code: 'E_IMAGE_FILE',
      message: expect.stringContaining('is a device; only regular files are read'),
    });
    const link = join(dir, 'zero.jpg');
    execFileSync('ln', ['-s', '/dev/zero', link]);
    expect((await refused(link)).err).toMatchObject({ code: 'E_IMAGE_FILE' });
  });

  it('a folder is refused', async () => {
    expect((await refused(dir)).err).toMatchObject({
      code: 'E_IMAGE_FILE',
      message: expect.stringContaining('a directory'),
    });
  });

  it('a file above the byte cap is refused naming the cap; at the cap it decodes', async () => {
    const path = join(fixtures.images, 'small_47x31.png');
    const { size } = await import('node:fs').then((fs) => fs.statSync(path));
    expect((await refused(path, { maxBytes: size - 1 })).err).toMatchObject({
      code: 'E_IMAGE_TOO_LARGE',
      message: expect.stringMatching(
        new RegExp(`is ${size} bytes, above the limit of ${size - 1} \\(MAX_IMAGE_FILE_BYTES\\)`),
      ),
    });
    expect((await decodeImageFile(path, { maxBytes: size })).width).toBeGreaterThan(0);
  });

  it("a 16000 x 16000 PNG (Pillow's DecompressionBombError) is refused from its header", async () => {
    const path = join(dir, 'bomb.png');
    writeFileSync(path, pngHeader(16000, 16000));
    const { err, ms } = await refused(path);
    expect(err).toMatchObject({
      code: 'E_IMAGE_TOO_LARGE',
      message: expect.stringContaining(`16000 x 16000 pixels exceed the limit of ${MAX_IMAGE_PIXELS}`),
    });
    expect(MAX_IMAGE_PIXELS).toBe(178_956_970);
    expect(ms).toBeLessThan(2000);
  });

  it('a GIF announcing 65535 x 65535 is refused', async () => {
    const gif = Buffer.from([
      ...Buffer.from('GIF89a'),
      0xff,
      0xff,
      0xff,
      0xff,
      0x00,
      0,
      0, // logical screen 65535 x 65535, no global palette
      0x2c,
      0,
      0,
      0,
      0,
      0xff,
      0xff,
      0xff,
      0xff,
      0x00, // image 65535 x 65535 at 0,0
      0x02,
      0x02,
      0x44,
      0x01,
      0x00, // LZW min size 2, one sub-block
      0x3b,
    ]);
    const path = join(dir, 'bomb.gif');
    writeFileSync(path, gif);
    expect((await refused(path)).err).toMatchObject({ code: 'E_IMAGE_TOO_LARGE' });
  });
});
