/**
 * The main entry in headless Chromium: PNG fixtures decoded by the platform
 * (createImageBitmap + OffscreenCanvas) and preprocessed there, checked against PIL;
 * tokenizer ids checked too, since the browser must give the same ids as Node.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { readSafetensorsFile } from '@blip2/safetensors/node';
import { launchChromium } from '@blip2/test-browser';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const PNGS = ['small_47x31.png', 'alpha_64x64.png', 'gray_40x40.png', 'exact_224.png', 'tall_333x500.png'];
const SIZES = [32, 64, 224];

const ENTRY = `
import { ImageProcessor, Tokenizer, decodeImageBrowser } from ${JSON.stringify(join(__dirname, '../src/index.ts'))};
// bytes as base64: far faster to hand back than arrays of numbers
const b64 = (a) => {
  const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let s = '';
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
  return btoa(s);
};
window.run = async (names, sizes) => {
  const out = {};
  for (const name of names) {
    const blob = await (await fetch('/images/' + name)).blob();
    const rgb = await decodeImageBrowser(blob, name);
    out[name] = { rgb: b64(rgb.data), width: rgb.width, height: rgb.height, pv: {} };
    for (const s of sizes) {
      const pv = new ImageProcessor({ size: { height: s, width: s } }).preprocess([rgb]);
      out[name].pv[s] = b64(pv.data);
    }
  }
  return out;
};
window.tokenize = async (which) => {
  const json = await (await fetch('/tok/' + which + '/tokenizer.json')).json();
  const cases = await (await fetch('/tok/' + which + '/cases.json')).json();
  const tok = Tokenizer.fromJSON(json);
  return cases.cases.map((c) => ({ ids: tok.encode(c.text).ids, offsets: tok.encode(c.text).offsets, want: c.ids, wantOffsets: c.offsets }));
};
`;

let server: Server;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let base = '';

beforeAll(async () => {
  const bundle = await build({
    stdin: { contents: ENTRY, resolveDir: __dirname, loader: 'ts' },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    conditions: ['source'],
  });
  const js = bundle.outputFiles[0].text;
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/') return res.end('<!doctype html><script type="module" src="/bundle.js"></script>');
    if (url === '/bundle.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    const file = url.startsWith('/images/')
      ? join(fixtures.images, url.slice(8))
      : url.startsWith('/tok/')
        ? join(fixtures.root, 'tokenizers', url.slice(5))
        : '';
    if (file && existsSync(file)) return res.writeHead(200).end(readFileSync(file));
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
});

describe('headless Chromium', () => {
  it('decodes the PNG fixtures like PIL and preprocesses them within 1e-6', async () => {
    const page = await browser.context.newPage();
    await page.goto(base);
    await page.waitForFunction('typeof window.run === "function"');
    const result = (await page.evaluate(
      `window.run(${JSON.stringify(PNGS)}, ${JSON.stringify(SIZES)})`,
    )) as Record<string, { rgb: string; pv: Record<number, string> }>;
    const ref = await readSafetensorsFile(join(fixtures.images, 'pixel_values.safetensors'));
    for (const name of PNGS) {
      const rgb = Buffer.from(result[name].rgb, 'base64');
      expect(
        rgb.equals(Buffer.from(ref.get(`${name}/decoded_rgb`)?.data as Uint8Array)),
        `${name} decoded RGB`,
      ).toBe(true);
      for (const s of SIZES) {
        const want = ref.get(`${name}/pil/${s}`)?.data as Float32Array;
        const bytes = Buffer.from(result[name].pv[s], 'base64');
        const got = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
        let m = 0;
        for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
        expect(got.length).toBe(want.length);
        expect(m, `${name} at ${s}`).toBeLessThanOrEqual(1e-6);
      }
    }
    await page.close();
  });

  it.each(['opt', 't5'])('tokenizes the %s cases exactly, offsets included', async (which) => {
    const page = await browser.context.newPage();
    await page.goto(base);
    await page.waitForFunction('typeof window.tokenize === "function"');
    const rows = (await page.evaluate(`window.tokenize(${JSON.stringify(which)})`)) as {
      ids: number[];
      want: number[];
      offsets: number[][];
      wantOffsets: number[][];
    }[];
    expect(rows).toHaveLength(31);
    for (const r of rows) {
      expect(r.ids).toEqual(r.want);
      expect(r.offsets).toEqual(r.wantOffsets);
    }
    await page.close();
  });
});
