// The whole model from a real local HTTP server: `fromPretrained` on a URL folder and
// on a hub id (with the hub's redirect to a CDN), then the reference's tokens. Also
// what goes wrong remotely: a download cut halfway (resumed by the next run with a
// Range request), a corrupted file (sha256), 401/403/404/5xx, an abort.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2Error, Blip2ForConditionalGeneration, type LoadProgress } from '../src/index.js';
import { serveModel, type TestServer } from './http-server.js';
import { ids, loadReference, type Reference } from './models-reference.js';

let server: TestServer;
let ref: Reference;
beforeAll(async () => {
  server = await serveModel(fixtures.tinyOpt);
  ref = await loadReference(fixtures.tinyOpt);
});
afterAll(async () => {
  await server.close();
  await ref.close();
});

const freshCache = () => mkdtempSync(join(tmpdir(), 'blip2-remote-'));
const weightRequests = () =>
  server.requests.filter((q) => q.path.endsWith('model.safetensors') && q.range !== 'bytes=0-0');

/** case0/greedy of the fixture: the model that came over HTTP must reproduce it. */
async function expectReferenceTokens(model: Blip2ForConditionalGeneration): Promise<void> {
  const record = ref.generate.find((r) => r.name === 'case0/greedy');
  const c = ref.cases[0];
  if (!record) throw new Error('fixture has no case0/greedy');
  const out = await model.generate(
    { pixelValues: await ref.tensor('case0/pixel_values'), inputIds: ids([c.input_ids]) },
    { maxNewTokens: 12, doSample: false },
  );
  expect(out.sequences).toEqual(record.new);
}

describe('fromPretrained over HTTP', () => {
  it('URL layout: downloads with progress, builds, loads, and generates the reference tokens', async () => {
    const cacheDir = freshCache();
    const events: LoadProgress[] = [];
    const model = await Blip2ForConditionalGeneration.fromPretrained(`${server.url}/plain/`, {
      cacheDir,
      onProgress: (e) => events.push(e),
      onWarning: () => {},
    });
    try {
      await expectReferenceTokens(model);
    } finally {
      await model.dispose();
    }
    const phases = [...new Set(events.map((e) => e.phase))];
    expect(phases).toEqual(['download', 'build', 'load']);
    const downloads = events.filter((e) => e.phase === 'download');
    const lastDownload = downloads.at(-1);
    if (lastDownload?.phase !== 'download') throw new Error('no download event');
    expect(lastDownload.overallLoaded).toBe(lastDownload.overallTotal);
    const weightBytes = readFileSync(join(fixtures.tinyOpt, 'model.safetensors')).length;
    expect(
      downloads.some(
        (e) => e.phase === 'download' && e.file === 'model.safetensors' && e.loaded === weightBytes,
      ),
    ).toBe(true);
    const lastLoad = events.at(-1);
    expect(lastLoad).toMatchObject({ phase: 'load' });
    if (lastLoad?.phase === 'load') expect(lastLoad.done).toBe(lastLoad.total);

    // a second run is served from the cache: no weight bytes asked for again
    const before = weightRequests().length;
    const again = await Blip2ForConditionalGeneration.fromPretrained(`${server.url}/plain/`, {
      cacheDir,
      onWarning: () => {},
    });
    await again.dispose();
    expect(weightRequests().length).toBe(before);
  });

  it('hub layout: token, redirect to the CDN, and the reference tokens', async () => {
    const cacheDir = freshCache();
    server.token = 'hf_secret';
    try {
      const e = await Blip2ForConditionalGeneration.fromPretrained('org/tiny', {
        cacheDir,
        endpoint: server.url,
      }).catch((x) => x);
      expect(e).toBeInstanceOf(Blip2Error);
      expect(e.code).toBe('E_HTTP_UNAUTHORIZED');
      expect(e.message).toContain(`${server.url}/org/tiny/resolve/main/`);
      expect(e.message).toMatch(/401/);

      server.requests.length = 0;
      const model = await Blip2ForConditionalGeneration.fromPretrained('org/tiny', {
        cacheDir,
        endpoint: server.url,
        token: 'hf_secret',
        onWarning: () => {},
      });
      try {
        await expectReferenceTokens(model);
      } finally {
        await model.dispose();
      }
      expect(server.requests.some((q) => q.path === '/cdn/model.safetensors')).toBe(true);
      expect(server.requests.filter((q) => q.path.startsWith('/cdn/') && q.auth)).toEqual([]);
    } finally {
      server.token = undefined;
    }
  });

  it('a download killed halfway fails, and the next fromPretrained resumes it with Range', async () => {
    const cacheDir = freshCache();
    server.cutAfter.set('model.safetensors', 50_000);
    const e = await Blip2ForConditionalGeneration.fromPretrained(`${server.url}/plain/`, { cacheDir }).catch(
      (x) => x,
    );
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.message).toContain(`${server.url}/plain/model.safetensors`);
    expect(e.message).toMatch(/run again to resume/);
    const [folder] = readdirSync(cacheDir);
    // never trusted half-written: only the .incomplete file exists
    expect(existsSync(join(cacheDir, folder, 'model.safetensors'))).toBe(false);
    expect(readFileSync(join(cacheDir, folder, 'model.safetensors.incomplete')).length).toBe(50_000);

    server.requests.length = 0;
    const model = await Blip2ForConditionalGeneration.fromPretrained(`${server.url}/plain/`, {
      cacheDir,
      onWarning: () => {},
    });
    try {
      await expectReferenceTokens(model);
    } finally {
      await model.dispose();
    }
    expect(weightRequests().map((q) => q.range)).toEqual(['bytes=50000-']);
    expect(
      readFileSync(join(cacheDir, folder, 'model.safetensors')).equals(
        readFileSync(join(fixtures.tinyOpt, 'model.safetensors')),
      ),
    ).toBe(true);
  });

  it('a corrupted download is detected by sha256, discarded, and a clean run succeeds', async () => {
    const cacheDir = freshCache();
    server.corrupt.add('model.safetensors');
    try {
      const e = await Blip2ForConditionalGeneration.fromPretrained('org/tiny', {
        cacheDir,
        endpoint: server.url,
      }).catch((x) => x);
      expect(e).toBeInstanceOf(Blip2Error);
      expect(e.code).toBe('E_DOWNLOAD_HASH');
      expect(e.message).toContain('model.safetensors');
      expect(e.message).toMatch(/sha256/);
    } finally {
      server.corrupt.clear();
    }
    const snapshot = join(cacheDir, 'models--org--tiny', 'snapshots', 'main');
    expect(existsSync(join(snapshot, 'model.safetensors'))).toBe(false);
    expect(existsSync(join(snapshot, 'model.safetensors.incomplete'))).toBe(false);
    const model = await Blip2ForConditionalGeneration.fromPretrained('org/tiny', {
      cacheDir,
      endpoint: server.url,
      onWarning: () => {},
    });
    try {
      await expectReferenceTokens(model);
    } finally {
      await model.dispose();
    }
  });

  it('a missing remote file is E_MISSING_FILE naming the URL', async () => {
    const e = await Blip2ForConditionalGeneration.fromPretrained(`${server.url}/plain/nothing/`, {
      cacheDir: freshCache(),
    }).catch((x) => x);
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_MISSING_FILE');
    expect(e.message).toContain(`${server.url}/plain/nothing/config.json`);
  });

  it('abort via signal: E_ABORTED, and the next run resumes', async () => {
    const cacheDir = freshCache();
    const controller = new AbortController();
    const e = await Blip2ForConditionalGeneration.fromPretrained(`${server.url}/plain/`, {
      cacheDir,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'download' && p.file === 'model.safetensors' && p.loaded > 0) controller.abort();
      },
    }).catch((x) => x);
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_ABORTED');
    expect(e.message).toContain('model.safetensors');
    const [folder] = readdirSync(cacheDir);
    expect(existsSync(join(cacheDir, folder, 'model.safetensors'))).toBe(false);

    const model = await Blip2ForConditionalGeneration.fromPretrained(`${server.url}/plain/`, {
      cacheDir,
      onWarning: () => {},
    });
    await model.dispose();

    // aborted before it starts: nothing is fetched
    server.requests.length = 0;
    const already = AbortSignal.abort();
    const e2 = await Blip2ForConditionalGeneration.fromPretrained(`${server.url}/plain/`, {
      cacheDir: freshCache(),
      signal: already,
    }).catch((x) => x);
    expect(e2).toMatchObject({ code: 'E_ABORTED' });
  });
});

describe('HTTP status errors name the URL', () => {
  let status = 500;
  let statusServer: Server;
  let base: string;
  beforeAll(async () => {
    statusServer = createServer((_req, res) => res.writeHead(status).end('no'));
    await new Promise<void>((r) => statusServer.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(statusServer.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => statusServer.close(() => r())));

  it.each([
    [401, 'E_HTTP_UNAUTHORIZED'],
    [403, 'E_HTTP_UNAUTHORIZED'],
    [500, 'E_HTTP'],
    [503, 'E_HTTP'],
  ])('HTTP %i -> %s', async (code, expected) => {
    status = code;
    const e = await Blip2ForConditionalGeneration.fromPretrained(`${base}/model/`, {
      cacheDir: freshCache(),
    }).catch((x) => x);
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe(expected);
    expect(e.message).toContain(`${base}/model/`);
    expect(e.message).toContain(String(code));
  });
});
