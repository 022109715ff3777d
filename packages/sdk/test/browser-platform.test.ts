/**
 * The browser platform's pieces that need no browser, in Node (which has fetch):
 * how a source string resolves, the typed errors of readJson, header reads by
 * Range, and which backend choices are refused.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fixtures } from '@blip2/fixtures';
import type { Backend } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend, resolveBrowserSource, urlFiles } from '../src/browser-platform.js';
import { type ModelServer, serveCheckpoint } from './browser/model-server.js';

let server: ModelServer;
/** answers every path with a fixed status, type and body (an SPA fallback, a broken JSON, a 500) */
let odd: { url: string; close(): Promise<void> };

beforeAll(async () => {
  server = await serveCheckpoint(fixtures.tinyOpt);
  const s = createServer((req, res) => {
    if (req.url?.startsWith('/spa/'))
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>app</title>');
    else if (req.url?.startsWith('/broken/'))
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"model_type": ');
    else res.writeHead(500, { 'Content-Type': 'text/plain' }).end('boom');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  odd = {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => s.close(() => r())),
  };
});

afterAll(async () => {
  await server?.close();
  await odd?.close();
});

describe('resolveBrowserSource', () => {
  it('takes absolute URLs as folders and hub ids to the resolve layout', () => {
    expect(resolveBrowserSource('https://cdn.example.com/blip2').base).toBe('https://cdn.example.com/blip2/');
    const hub = resolveBrowserSource('Salesforce/blip2-opt-2.7b@v1.0', {
      endpoint: 'https://mirror.example.com/',
      token: 'hf_x',
    });
    expect(hub.kind).toBe('hub');
    expect(hub.urlOf?.('config.json')).toBe(
      'https://mirror.example.com/Salesforce/blip2-opt-2.7b/resolve/v1.0/config.json',
    );
    expect(hub.headers).toEqual({ Authorization: 'Bearer hf_x' });
    const main = resolveBrowserSource('org/name', { revision: 'refs/pr/1' });
    expect(main.base).toBe('https://huggingface.co/org/name/resolve/refs%2Fpr%2F1/');
    expect(resolveBrowserSource('https://cdn.example.com/m/', { token: 'hf_x' }).headers).toEqual({});
  });

  it('names a source it cannot use', () => {
    expect(() => resolveBrowserSource('')).toThrow(expect.objectContaining({ code: 'E_SOURCE' }));
    expect(() => resolveBrowserSource('C:\\models\\blip2')).toThrow(
      "model source 'C:\\models\\blip2' is not an http(s) URL",
    );
    // Node has no page location to resolve against
    expect(() => resolveBrowserSource('./models/blip2/')).toThrow(
      expect.objectContaining({
        code: 'E_SOURCE',
        message: expect.stringContaining("'./models/blip2/' is a relative URL"),
      }),
    );
  });
});

describe('urlFiles', () => {
  it('reads JSON, returns undefined for an absent optional file and names the URL of a missing one', async () => {
    const files = urlFiles(`${server.url}/model/`);
    expect(files.location).toBe(`${server.url}/model`);
    expect(await files.readJson('config.json')).toMatchObject({ model_type: 'blip-2' });
    expect(await files.readJson('processor_config.json', true)).toBeUndefined();
    await expect(files.readJson('processor_config.json')).rejects.toMatchObject({
      code: 'E_MISSING_FILE',
      message: expect.stringContaining(`${server.url}/model/processor_config.json`),
    });
  });

  it('gives typed errors for 401, 500, an HTML fallback page and broken JSON', async () => {
    server.token = 'hf_secret';
    try {
      const hub = resolveBrowserSource('org/tiny', { endpoint: server.url });
      await expect(urlFiles(hub.base, hub).readJson('config.json')).rejects.toMatchObject({
        code: 'E_HTTP_UNAUTHORIZED',
        message: expect.stringContaining(`${server.url}/org/tiny/resolve/main/config.json`),
      });
      const authed = resolveBrowserSource('org/tiny', { endpoint: server.url, token: 'hf_secret' });
      expect(await urlFiles(authed.base, authed).readJson('config.json')).toMatchObject({
        model_type: 'blip-2',
      });
      await expect(urlFiles(hub.base, hub).openWeights()).rejects.toMatchObject({
        code: 'E_HTTP_UNAUTHORIZED',
      });
    } finally {
      server.token = undefined;
    }
    await expect(urlFiles(`${odd.url}/fail/`).readJson('config.json')).rejects.toMatchObject({
      code: 'E_HTTP',
      message: expect.stringContaining(`HTTP 500 Internal Server Error for ${odd.url}/fail/config.json`),
    });
    expect(await urlFiles(`${odd.url}/spa/`).readJson('generation_config.json', true)).toBeUndefined();
    await expect(urlFiles(`${odd.url}/spa/`).readJson('config.json')).rejects.toMatchObject({
      code: 'E_MISSING_FILE',
      message: expect.stringContaining('answered an HTML page'),
    });
    await expect(urlFiles(`${odd.url}/broken/`).readJson('config.json')).rejects.toMatchObject({
      code: 'E_INPUT',
      message: expect.stringContaining(`${odd.url}/broken/config.json: not valid JSON`),
    });
  });

  it('reads the safetensors headers with Range requests only, and the weight URIs are URLs', async () => {
    const seen = server.requests.length;
    const weights = await urlFiles(`${server.url}/model/`).openWeights();
    expect(weights.files).toEqual([
      expect.objectContaining({ name: 'model.safetensors', uri: `${server.url}/model/model.safetensors` }),
    ]);
    expect(weights.has('query_tokens')).toBe(true);
    const requests = server.requests.slice(seen).filter((r) => r.path === '/model/model.safetensors');
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every((r) => r.range !== undefined)).toBe(true);
    await weights.close();
    await expect(urlFiles(`${server.url}/nothing/`).openWeights()).rejects.toMatchObject({
      code: 'E_MISSING_FILE',
      message: expect.stringContaining(`${server.url}/nothing/model.safetensors`),
    });
  });
});

describe('createBackend', () => {
  it('refuses Node backends and devices, and passes a Backend instance through', async () => {
    await expect(createBackend({ backend: 'node' })).rejects.toMatchObject({ code: 'E_OPTION' });
    await expect(createBackend({ device: 'cuda' })).rejects.toMatchObject({
      code: 'E_OPTION',
      message: expect.stringContaining("device 'cuda'"),
    });
    await expect(createBackend({ backend: 'gpu' as never })).rejects.toMatchObject({
      code: 'E_OPTION',
    });
    const mine: Backend = {
      name: 'mine',
      capabilities: {
        batchedLinears: 'gemm',
        sharedWeights: false,
        deviceOutputs: false,
        computeDtypes: ['float32'],
      },
      load: async () => ({}) as never,
    };
    expect(await createBackend({ backend: mine })).toBe(mine);
  });

  it('without a device it takes WebGPU only when there is an adapter (none in Node: wasm)', async () => {
    const backend = await createBackend({});
    expect(backend.name).toBe('web:wasm');
  });
});
