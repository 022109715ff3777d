import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpByteReader, openWeights, type WeightIndex } from '../src/index.js';
import { openWeightsFromDir } from '../src/node.js';
import { expectSameBytes } from './helpers.js';

/**
 * A real HTTP server on 127.0.0.1 serving the tiny-blip2-opt folder:
 * /range/<file> honours Range, /plain/<file> ignores it (always 200 + the whole
 * file), /auth/<file> wants a bearer token, /boom/<file> fails with 500.
 */
let server: Server;
let base: string;
const log: { path: string; range: string | undefined; status: number }[] = [];

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const [, mode, name] = (req.url ?? '').split('/');
    const range = req.headers.range;
    const reply = (status: number, body?: Uint8Array, headers: Record<string, string> = {}) => {
      log.push({ path: req.url ?? '', range, status });
      res.writeHead(status, headers);
      res.end(body);
    };
    if (mode === 'boom') return reply(500);
    if (mode === 'auth' && req.headers.authorization !== 'Bearer hf_test') return reply(401);
    let file: Buffer;
    try {
      file = await readFile(join(fixtures.tinyOpt, name));
    } catch {
      return reply(404);
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
    if (mode === 'plain' || !m) return reply(200, file, { 'content-length': String(file.length) });
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), file.length - 1);
    if (start >= file.length) return reply(416, undefined, { 'content-range': `bytes */${file.length}` });
    reply(206, file.subarray(start, end + 1), {
      'content-range': `bytes ${start}-${end}/${file.length}`,
      'content-length': String(end - start + 1),
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function expectSameWeights(a: WeightIndex, b: WeightIndex): Promise<void> {
  expect([...a.tensors.keys()]).toEqual([...b.tensors.keys()]);
  for (const name of a.tensors.keys()) {
    expect(a.get(name)).toEqual(b.get(name));
    expectSameBytes((await a.read(name)).data, (await b.read(name)).data, name);
  }
}

describe('HttpByteReader', () => {
  it('reads a checkpoint with Range requests (206), identically to the file', async () => {
    log.length = 0;
    const http = await openWeights((name) => new HttpByteReader(`${base}/range/${name}`));
    const file = await openWeightsFromDir(fixtures.tinyOpt);
    expect(http.files).toEqual([
      { name: 'model.safetensors', uri: `${base}/range/model.safetensors`, size: 343596 },
    ]);
    await expectSameWeights(http, file);
    // the index was looked for first (404), then only ranges of the weights were fetched
    expect(log[0]).toMatchObject({ path: '/range/model.safetensors.index.json', status: 404 });
    const weightRequests = log.filter((r) => r.path === '/range/model.safetensors');
    expect(weightRequests.every((r) => r.status === 206 && r.range !== undefined)).toBe(true);
    expect(weightRequests.length).toBe(3 + file.tensors.size); // size probe, length, JSON, one per tensor
    await file.close();
  });

  it('a server that ignores Range: one whole download, the same bytes', async () => {
    log.length = 0;
    const http = await openWeights((name) => new HttpByteReader(`${base}/plain/${name}`));
    const file = await openWeightsFromDir(fixtures.tinyOpt);
    await expectSameWeights(http, file);
    expect(log.filter((r) => r.path === '/plain/model.safetensors').length).toBe(1);
    await file.close();
  });

  it('... and a typed error when that file is too large to download whole', async () => {
    const r = new HttpByteReader(`${base}/plain/model.safetensors`, { maxWholeFileBytes: 1000 });
    await expect(r.read(0, 8)).rejects.toMatchObject({ code: 'E_HTTP_RANGE' });
  });

  it('404, 401 and 500 are typed errors naming the URL', async () => {
    const missing = new HttpByteReader(`${base}/range/nothing.safetensors`);
    await expect(missing.size()).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
      message: `${base}/range/nothing.safetensors: HTTP 404`,
    });
    await expect(new HttpByteReader(`${base}/auth/model.safetensors`).size()).rejects.toMatchObject({
      code: 'E_HTTP_UNAUTHORIZED',
      message: expect.stringContaining(`${base}/auth/model.safetensors: HTTP 401`),
    });
    await expect(new HttpByteReader(`${base}/boom/model.safetensors`).read(0, 8)).rejects.toMatchObject({
      code: 'E_HTTP',
      message: `${base}/boom/model.safetensors: HTTP 500 Internal Server Error`,
    });
    await expect(openWeights((name) => new HttpByteReader(`${base}/range/x/${name}`))).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    });
  });

  it('sends the given headers (gated repositories)', async () => {
    const r = new HttpByteReader(`${base}/auth/model.safetensors`, {
      headers: { Authorization: 'Bearer hf_test' },
    });
    expect(await r.size()).toBe(343596);
    expect(await r.read(343590, 6)).toEqual(
      new Uint8Array((await readFile(join(fixtures.tinyOpt, 'model.safetensors'))).subarray(343590)),
    );
  });

  it('refuses reads past the end without asking the server', async () => {
    const r = new HttpByteReader(`${base}/range/model.safetensors`);
    await expect(r.read(343590, 10)).rejects.toMatchObject({ code: 'E_IO' });
  });

  it('a network failure is E_HTTP', async () => {
    const r = new HttpByteReader('http://127.0.0.1:1/model.safetensors');
    await expect(r.size()).rejects.toMatchObject({ code: 'E_HTTP' });
  });
});
