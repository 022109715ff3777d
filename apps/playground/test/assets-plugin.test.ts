/**
 * The dev server side of the static mounts (the browser test covers the built app):
 * Range requests on the checkpoint, the isolation headers, and a 404 (not the HTML
 * fallback) for anything not listed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AssetError, staticMounts } from '../assets-plugin.js';
import { freePort } from './free-port.js';

const APP = join(import.meta.dirname, '..');
let server: ViteDevServer;
let base: string;

beforeAll(async () => {
  server = await createServer({
    root: APP,
    configFile: join(APP, 'vite.config.ts'),
    logLevel: 'warn',
    optimizeDeps: { noDiscovery: true, include: [] },
    server: { host: '127.0.0.1', port: await freePort(), strictPort: true, hmr: false, ws: false },
  });
  await server.listen();
  const url = server.resolvedUrls?.local[0];
  if (!url) throw new Error('vite did not report a URL');
  base = url.replace(/\/$/, '');
});

afterAll(async () => {
  await server?.close();
});

describe('staticMounts on the dev server', () => {
  it('serves the shipped checkpoint with Range and the isolation headers', async () => {
    const weights = readFileSync(join(fixtures.shapesOpt, 'model.safetensors'));
    const res = await fetch(`${base}/models/shapes-blip2-opt/model.safetensors`, {
      headers: { Range: 'bytes=8-23' },
    });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 8-23/${weights.byteLength}`);
    expect(res.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(Buffer.from(await res.arrayBuffer())).toEqual(weights.subarray(8, 24));

    const config = await fetch(`${base}/models/shapes-blip2-t5/config.json`);
    expect(config.headers.get('content-type')).toBe('application/json');
    expect(await config.json()).toEqual(
      JSON.parse(readFileSync(join(fixtures.shapesT5, 'config.json'), 'utf8')),
    );

    const wasm = await fetch(`${base}/ort/ort-wasm-simd-threaded.jsep.wasm`, { method: 'HEAD' });
    expect(wasm.status).toBe(200);
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
  });

  it('answers 404 for files it does not list, and past the end of a file 416', async () => {
    expect((await fetch(`${base}/models/shapes-blip2-opt/processor_config.json`)).status).toBe(404);
    expect((await fetch(`${base}/samples/COCO_val2014_000000000099.jpg`)).status).toBe(404);
    expect((await fetch(`${base}/models/shapes-blip2-opt/..%2F..%2Fpackage.json`)).status).toBe(404);
    const past = await fetch(`${base}/models/shapes-blip2-opt/config.json`, {
      headers: { Range: 'bytes=999999-' },
    });
    expect(past.status).toBe(416);
  });
});

describe('staticMounts configuration', () => {
  it('names the mount and the path that is missing or malformed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'blip2-mounts-'));
    try {
      writeFileSync(join(dir, 'a.json'), '{}');
      const codeOf = (fn: () => unknown) => {
        try {
          fn();
        } catch (e) {
          expect(e).toBeInstanceOf(AssetError);
          return `${(e as AssetError).code}: ${(e as Error).message}`;
        }
        throw new Error('no error');
      };
      expect(codeOf(() => staticMounts([{ url: '/m/', dir: join(dir, 'nope') }]))).toBe(
        `E_ASSET_MISSING: folder for /m/ does not exist: ${join(dir, 'nope')}`,
      );
      expect(codeOf(() => staticMounts([{ url: '/m/', dir, files: ['b.json'] }]))).toBe(
        `E_ASSET_MISSING: file for /m/b.json does not exist: ${join(dir, 'b.json')}`,
      );
      expect(codeOf(() => staticMounts([{ url: 'm', dir }]))).toBe(
        `E_ASSET_MOUNT: mount url "m" must be a path that starts and ends with '/'`,
      );
      expect(codeOf(() => staticMounts([{ url: '/m/', dir, files: ['../a.json'] }]))).toBe(
        'E_ASSET_MOUNT: file name "../a.json" under /m/ is not a plain name',
      );
      expect(staticMounts([{ url: '/m/', dir }]).name).toBe('blip2-playground:static-mounts');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
