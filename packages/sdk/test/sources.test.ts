import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2Error } from '../src/errors.js';
import type { LoadProgress } from '../src/sources/progress.js';
import { resolveModel } from '../src/sources/resolve.js';
import { serveModel, type TestServer } from './http-server.js';

let server: TestServer;
beforeAll(async () => {
  server = await serveModel(fixtures.tinyOpt);
});
afterAll(() => server.close());

const fresh = () => mkdtempSync(join(tmpdir(), 'blip2-cache-'));
const same = (dir: string, file: string) =>
  readFileSync(join(dir, file)).equals(readFileSync(join(fixtures.tinyOpt, file)));

describe('model sources', () => {
  it('a local folder resolves to its real path', async () => {
    const r = await resolveModel(fixtures.tinyOpt);
    expect(r.kind).toBe('folder');
    expect(existsSync(join(r.dir, 'config.json'))).toBe(true);
  });

  it('names what is wrong with a bad source', async () => {
    await expect(resolveModel('')).rejects.toMatchObject({ code: 'E_SOURCE' });
    await expect(resolveModel('./no/such/folder')).rejects.toThrow(/not an existing folder/);
    await expect(resolveModel(join(fixtures.tinyOpt, 'config.json'))).rejects.toMatchObject({
      code: 'E_SOURCE',
    });
    await expect(resolveModel(fixtures.images)).rejects.toMatchObject({ code: 'E_MISSING_FILE' });
  });

  it('downloads a URL folder with progress, and a second run makes no downloads', async () => {
    const cacheDir = fresh();
    const events: LoadProgress[] = [];
    const r = await resolveModel(`${server.url}/plain/`, { cacheDir, onProgress: (e) => events.push(e) });
    expect(r.kind).toBe('url');
    for (const f of ['config.json', 'tokenizer.json', 'model.safetensors', 'preprocessor_config.json'])
      expect(same(r.dir, f)).toBe(true);
    const last = events.at(-1);
    expect(last).toMatchObject({ phase: 'download' });
    if (last?.phase === 'download') expect(last.overallLoaded).toBe(last.overallTotal);
    const before = server.requests.filter(
      (q) => q.path.endsWith('model.safetensors') && q.range !== 'bytes=0-0',
    ).length;
    await resolveModel(`${server.url}/plain/`, { cacheDir });
    const after = server.requests.filter(
      (q) => q.path.endsWith('model.safetensors') && q.range !== 'bytes=0-0',
    ).length;
    expect(after).toBe(before);
  });

  it('hub layout: follows the redirect, sends the token only to the hub, verifies sha256', async () => {
    const cacheDir = fresh();
    server.token = 'secret';
    try {
      await expect(resolveModel('org/tiny', { cacheDir, endpoint: server.url })).rejects.toMatchObject({
        code: 'E_HTTP_UNAUTHORIZED',
      });
      server.requests.length = 0;
      const r = await resolveModel('org/tiny@main', { cacheDir, endpoint: server.url, token: 'secret' });
      expect(r.dir).toContain(join('models--org--tiny', 'snapshots', 'main'));
      expect(same(r.dir, 'model.safetensors')).toBe(true);
      const cdn = server.requests.filter((q) => q.path.startsWith('/cdn/'));
      expect(cdn.length).toBeGreaterThan(0);
      expect(cdn.filter((q) => q.auth !== undefined)).toEqual([]);
    } finally {
      server.token = undefined;
    }
  });

  it('a download cut halfway is resumed with a Range request and never trusted half-written', async () => {
    const cacheDir = fresh();
    server.cutAfter.set('model.safetensors', 100_000);
    await expect(resolveModel(`${server.url}/plain`, { cacheDir })).rejects.toThrow(/run again to resume/);
    const dir = readdirSync(cacheDir).map((d) => join(cacheDir, d))[0];
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    expect(readFileSync(join(dir, 'model.safetensors.incomplete')).length).toBe(100_000);
    server.requests.length = 0;
    const r = await resolveModel(`${server.url}/plain`, { cacheDir });
    expect(same(r.dir, 'model.safetensors')).toBe(true);
    expect(
      server.requests.some((q) => q.path.endsWith('model.safetensors') && q.range === 'bytes=100000-'),
    ).toBe(true);
  });

  it('a corrupted download is detected by sha256 and discarded', async () => {
    const cacheDir = fresh();
    server.corrupt.add('model.safetensors');
    try {
      await expect(resolveModel('org/tiny', { cacheDir, endpoint: server.url })).rejects.toMatchObject({
        code: 'E_DOWNLOAD_HASH',
      });
    } finally {
      server.corrupt.clear();
    }
    const dir = join(cacheDir, 'models--org--tiny', 'snapshots', 'main');
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    expect(existsSync(join(dir, 'model.safetensors.incomplete'))).toBe(false);
    const r = await resolveModel('org/tiny', { cacheDir, endpoint: server.url });
    expect(same(r.dir, 'model.safetensors')).toBe(true);
  });

  it('HTTP errors name the URL', async () => {
    const err = await resolveModel(`${server.url}/nothing-here`, { cacheDir: fresh() }).catch((e) => e);
    expect(err).toBeInstanceOf(Blip2Error);
    expect(err.code).toBe('E_MISSING_FILE');
    expect(err.message).toContain(`${server.url}/nothing-here/config.json`);
  });
});
