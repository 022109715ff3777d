/**
 * The model cache under faults, against a real HTTP server on 127.0.0.1: cut connections, a file
 * that changes between two requests (A then B: the cache holds A or B, never a splice), servers
 * without validators, moving hub branches, hangs and crawling bodies (the timeouts fire, with
 * small values set here), links planted in the cache, and two processes sharing one cache.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { build } from 'tsup';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveModel } from '../src/sources/resolve.js';
import { serveModel, type TestServer } from './http-server.js';

let server: TestServer;
const original = readFileSync(join(fixtures.tinyOpt, 'model.safetensors'));
/** version B of the weights: same size, other bytes (a same-size change is the hard case) */
const versionB = Buffer.from(original.map((b, i) => (i > 1000 ? b ^ 0x5a : b)));
const temps: string[] = [];
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), 'blip2-faults-'));
  temps.push(d);
  return d;
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fast = { connectMs: 300, idleMs: 300, minBytesPerSecond: 1024 };

beforeAll(async () => {
  server = await serveModel(fixtures.tinyOpt);
});
afterAll(async () => {
  await server.close();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
beforeEach(() => {
  server.setFile('model.safetensors', original);
  server.validators = true;
  server.commit = undefined;
  server.hang.clear();
  server.slow.clear();
  server.cutAfter.clear();
  server.requests.length = 0;
});

const weightGets = () =>
  server.requests.filter((q) => q.path.endsWith('model.safetensors') && q.range !== 'bytes=0-0');

describe('downloads that never splice two versions', () => {
  it('a partial download of A is not resumed into B: If-Range makes the server send all of B', async () => {
    const cacheDir = fresh();
    server.cutAfter.set('model.safetensors', 100_000);
    await expect(resolveModel(`${server.url}/plain`, { cacheDir })).rejects.toMatchObject({ code: 'E_HTTP' });
    const dir = join(cacheDir, readdirSync(cacheDir)[0]!);
    expect(readFileSync(join(dir, 'model.safetensors.incomplete')).length).toBe(100_000);
    // the server now has B, and the probe happens to see the old version's ETag: only If-Range saves us
    server.setFile('model.safetensors', versionB);
    server.requests.length = 0;
    const r = await resolveModel(`${server.url}/plain`, { cacheDir });
    expect(sha(readFileSync(join(r.dir, 'model.safetensors')))).toBe(sha(versionB));
    expect(existsSync(join(r.dir, 'model.safetensors.incomplete'))).toBe(false);
    // the new version was seen by the probe: no resume was even tried
    expect(weightGets().every((q) => q.range === undefined)).toBe(true);
  });

  it('If-Range alone protects the resume when the file changes after the probe', async () => {
    const cacheDir = fresh();
    server.cutAfter.set('model.safetensors', 100_000);
    await expect(resolveModel(`${server.url}/plain`, { cacheDir })).rejects.toMatchObject({ code: 'E_HTTP' });
    // change the file between the probe and the download: the first GET after a probe swaps it
    let swapped = false;
    const fetchSwap: typeof fetch = async (url, init) => {
      const range = new Headers(init?.headers).get('range');
      if (!swapped && String(url).endsWith('model.safetensors') && range !== 'bytes=0-0') {
        swapped = true;
        server.setFile('model.safetensors', versionB);
      }
      return fetch(url, init);
    };
    server.requests.length = 0;
    const r = await resolveModel(`${server.url}/plain`, { cacheDir, fetch: fetchSwap });
    expect(sha(readFileSync(join(r.dir, 'model.safetensors')))).toBe(sha(versionB));
    const resume = weightGets();
    expect(resume[0]).toMatchObject({ range: 'bytes=100000-' });
    expect(resume[0]!.ifRange).toMatch(/^"[0-9a-f]{40}"$/);
  });

  it('a server with no ETag or Last-Modified: an interrupted download starts over from zero', async () => {
    const cacheDir = fresh();
    server.validators = false;
    server.cutAfter.set('model.safetensors', 100_000);
    await expect(resolveModel(`${server.url}/plain`, { cacheDir })).rejects.toMatchObject({ code: 'E_HTTP' });
    server.requests.length = 0;
    const r = await resolveModel(`${server.url}/plain`, { cacheDir });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(original)).toBe(true);
    expect(weightGets().map((q) => q.range)).toEqual([undefined]);
  });

  it('a cached file whose server ETag changed (same size) is fetched again; an unchanged one is not', async () => {
    const cacheDir = fresh();
    await resolveModel(`${server.url}/plain`, { cacheDir });
    server.requests.length = 0;
    await resolveModel(`${server.url}/plain`, { cacheDir });
    expect(weightGets()).toEqual([]);
    server.setFile('model.safetensors', versionB);
    const r = await resolveModel(`${server.url}/plain`, { cacheDir });
    expect(sha(readFileSync(join(r.dir, 'model.safetensors')))).toBe(sha(versionB));
    expect(weightGets().length).toBe(1);
  });

  it('hub: a branch resolves to its commit; an updated branch gives a new snapshot', async () => {
    const cacheDir = fresh();
    const c1 = 'a'.repeat(40);
    const c2 = 'b'.repeat(40);
    server.commit = c1;
    const r1 = await resolveModel('org/tiny', { cacheDir, endpoint: server.url });
    expect(r1.commit).toBe(c1);
    expect(r1.dir).toContain(join('models--org--tiny', 'snapshots', c1));
    expect(readFileSync(join(cacheDir, 'models--org--tiny', 'refs', 'main'), 'utf8')).toBe(c1);
    // every file was asked for at the commit, not at the moving branch
    expect(server.requests.filter((q) => q.path.includes('/resolve/main/')).map((q) => q.path)).toEqual([
      '/org/tiny/resolve/main/config.json',
    ]);
    server.commit = c2;
    server.setFile('model.safetensors', versionB);
    const r2 = await resolveModel('org/tiny', { cacheDir, endpoint: server.url });
    expect(r2.dir).toContain(join('snapshots', c2));
    expect(sha(readFileSync(join(r2.dir, 'model.safetensors')))).toBe(sha(versionB));
    expect(sha(readFileSync(join(r1.dir, 'model.safetensors')))).toBe(sha(original));
    expect(readFileSync(join(cacheDir, 'models--org--tiny', 'refs', 'main'), 'utf8')).toBe(c2);
  });
});

describe('the cache never writes through a link', () => {
  it('a symlinked .incomplete is replaced; the file it points to is untouched', async () => {
    const cacheDir = fresh();
    await resolveModel(`${server.url}/plain`, { cacheDir });
    const dir = join(cacheDir, readdirSync(cacheDir)[0]!);
    rmSync(join(dir, 'model.safetensors'));
    const outside = join(fresh(), 'victim.bin');
    writeFileSync(outside, 'precious');
    symlinkSync(outside, join(dir, 'model.safetensors.incomplete'));
    const r = await resolveModel(`${server.url}/plain`, { cacheDir });
    expect(readFileSync(outside, 'utf8')).toBe('precious');
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(original)).toBe(true);
    expect(lstatSync(join(r.dir, 'model.safetensors')).isSymbolicLink()).toBe(false);
  });

  it('a cached file replaced by a link is fetched again, and the link target is untouched', async () => {
    const cacheDir = fresh();
    await resolveModel(`${server.url}/plain`, { cacheDir });
    const dir = join(cacheDir, readdirSync(cacheDir)[0]!);
    const outside = join(fresh(), 'other.safetensors');
    writeFileSync(outside, versionB);
    rmSync(join(dir, 'model.safetensors'));
    symlinkSync(outside, join(dir, 'model.safetensors'));
    const r = await resolveModel(`${server.url}/plain`, { cacheDir });
    expect(readFileSync(outside).equals(versionB)).toBe(true);
    expect(lstatSync(join(r.dir, 'model.safetensors')).isFile()).toBe(true);
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(original)).toBe(true);
  });
});

describe('timeouts', () => {
  it('a server that never answers: E_HTTP_TIMEOUT naming the limit, within the connect timeout', async () => {
    server.hang.add('config.json');
    const t0 = performance.now();
    const err = await resolveModel(`${server.url}/plain`, { cacheDir: fresh(), timeouts: fast }).catch(
      (e) => e,
    );
    expect(err).toMatchObject({ code: 'E_HTTP_TIMEOUT' });
    expect(err.message).toMatch(/no response within 300 ms \(timeouts\.connectMs/);
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it('a body at 100 bytes/s: E_HTTP_TIMEOUT naming the minimum speed, and the bytes kept to resume', async () => {
    const cacheDir = fresh();
    server.slow.set('model.safetensors', 100);
    const err = await resolveModel(`${server.url}/plain`, { cacheDir, timeouts: fast }).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_HTTP_TIMEOUT' });
    expect(err.message).toMatch(/below the minimum of 1024 bytes\/s/);
    const dir = join(cacheDir, readdirSync(cacheDir)[0]!);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    server.slow.clear();
    const r = await resolveModel(`${server.url}/plain`, { cacheDir, timeouts: fast });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(original)).toBe(true);
  });

  it('the timeouts are checked: a bad value is a typed error naming it', async () => {
    await expect(
      resolveModel(`${server.url}/plain`, { cacheDir: fresh(), timeouts: { connectMs: -1 } }),
    ).rejects.toMatchObject({ code: 'E_OPTION', message: expect.stringContaining('timeouts.connectMs') });
  });
});

describe('two processes, one cache', () => {
  let child = '';
  beforeAll(async () => {
    // inside the package, so that the bundle's @blip2/* imports resolve as an installed package's
    const cache = join(import.meta.dirname, '..', 'node_modules', '.cache');
    mkdirSync(cache, { recursive: true });
    const outDir = mkdtempSync(join(cache, 'blip2-faults-child-'));
    temps.push(outDir);
    await build({
      entry: { child: join(import.meta.dirname, 'fixtures', 'resolve-child.ts') },
      outDir,
      format: ['esm'],
      dts: false,
      silent: true,
      config: false,
    });
    child = join(outDir, 'child.js');
  });

  const run = (source: string, cacheDir: string) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, [child, source, cacheDir], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d) => {
        out += d;
      });
      p.on('exit', (code) => resolve({ code, out }));
    });

  it('share one download of each file and both get the whole model', async () => {
    const cacheDir = fresh();
    server.slow.set('model.safetensors', 2_000_000); // ~0.3 s: long enough for the two to overlap
    const [a, b] = await Promise.all([
      run(`${server.url}/plain`, cacheDir),
      run(`${server.url}/plain`, cacheDir),
    ]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const dirA = JSON.parse(a.out).dir as string;
    expect(JSON.parse(b.out).dir).toBe(dirA);
    expect(readFileSync(join(dirA, 'model.safetensors')).equals(original)).toBe(true);
    expect(weightGets().length).toBe(1);
    expect(readdirSync(dirA).filter((f) => /\.(lock|incomplete)$/.test(f))).toEqual([]);
  });
});
