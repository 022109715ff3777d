/**
 * backend-web on onnxruntime-web's wasm provider, in Node: the same graphs as
 * backend-node, with weights read from a path or fetched over real HTTP.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import {
  type BuiltGraph,
  float32,
  int64,
  isDeviceTensor,
  maxAbsDiff,
  type Tensor,
  TensorError,
} from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createWebBackend,
  doctor,
  WASM_MAX_WEIGHT_BYTES,
  WebBackendError,
  type WeightProgress,
} from '../src/index.js';
import {
  buildGraphs,
  HID,
  headReference,
  IN,
  inputs,
  OUT,
  projReference,
  withWeightsAt,
  writeCheckpoint,
} from './model.js';

const dir = mkdtempSync(join(tmpdir(), 'backend-web-'));
const fileSize = writeCheckpoint(dir);
let head: BuiltGraph;
let proj: BuiltGraph;

// A real HTTP server on 127.0.0.1 serving the checkpoint; it counts what it serves.
let server: Server;
let base = '';
const served: string[] = [];
let truncate = false;

beforeAll(async () => {
  ({ head, proj } = await buildGraphs(dir));
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  server = createServer((req, res) => {
    served.push(req.url ?? '');
    if (req.url !== '/ckpt/model.safetensors') {
      res.writeHead(404).end();
      return;
    }
    const body = truncate ? bytes.subarray(0, bytes.length - 100) : bytes;
    res
      .writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length) })
      .end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const X_HEAD = inputs(2 * 3 * IN, 11);
const X_PROJ = inputs(4 * IN, 12);

async function runHead(
  graph: BuiltGraph,
  backend: {
    load(
      g: BuiltGraph,
    ): Promise<{ run(f: Record<string, Tensor>): Promise<Record<string, Tensor>>; release(): Promise<void> }>;
  },
) {
  const s = await backend.load(graph);
  const out = await s.run({ x: float32([2, 3, IN], X_HEAD) });
  await s.release();
  return out;
}

describe('backend-web (wasm) in Node', () => {
  it('matches a float64 TypeScript forward and backend-node CPU, weights read from a path', async () => {
    const web = await createWebBackend({ device: 'wasm' });
    expect(web.name).toBe('web:wasm');
    // each session holds its own copy of the weights: adapters load no extra batched-step session
    expect(web.capabilities).toEqual({
      batchedLinears: 'gemm',
      sharedWeights: false,
      deviceOutputs: false,
      computeDtypes: ['float32'],
      // wasm runs onnxruntime's CPU MatMulNBits: blocks of 128 right, and faster
      q4BlockSizes: [128, 32],
    });
    const out = await runHead(head, web);
    const cpu = await runHead(head, createNodeBackend());
    const ref = headReference(X_HEAD, 6);
    expect(out.logits.dims).toEqual([2, 3, OUT]);
    expect(out.probs.dims).toEqual([2, 3, OUT]);
    expect(maxAbsDiff(out.logits, float32([2, 3, OUT], ref.logits))).toBeLessThan(1e-5);
    expect(maxAbsDiff(out.probs, float32([2, 3, OUT], ref.probs))).toBeLessThan(1e-6);
    expect(maxAbsDiff(out.logits, cpu.logits)).toBeLessThan(1e-5);
    expect(maxAbsDiff(out.probs, cpu.probs)).toBeLessThan(1e-6);
  });

  it('reads f16 weights through the Cast, as backend-node does', async () => {
    const web = await createWebBackend();
    const s = await web.load(proj);
    const { y } = await s.run({ x: float32([4, IN], X_PROJ) });
    const cpu = await (await createNodeBackend().load(proj)).run({ x: float32([4, IN], X_PROJ) });
    expect(y.dims).toEqual([4, HID]);
    expect(maxAbsDiff(y, float32([4, HID], projReference(X_PROJ, 4)))).toBeLessThan(1e-5);
    expect(maxAbsDiff(y, cpu.y)).toBeLessThan(1e-6);
  });

  it('fetches a weight file by URL once and shares it between sessions, reporting progress', async () => {
    const progress: WeightProgress[] = [];
    const web = await createWebBackend({ device: 'wasm', onProgress: (p) => progress.push(p) });
    const url = `${base}/ckpt/model.safetensors`;
    const before = served.length;
    // both graphs at once: the second load must wait for the first download, not start its own
    const [sh, sp] = await Promise.all([
      web.load(withWeightsAt(head, () => url)),
      web.load(withWeightsAt(proj, () => url)),
    ]);
    expect(served.slice(before)).toEqual(['/ckpt/model.safetensors']);
    expect(web.cachedWeightFiles).toBe(1);
    const s3 = await web.load(withWeightsAt(head, () => url));
    expect(served.length - before).toBe(1);

    const ref = headReference(X_HEAD, 6);
    for (const s of [sh, s3]) {
      const { probs } = await s.run({ x: float32([2, 3, IN], X_HEAD) });
      expect(maxAbsDiff(probs, float32([2, 3, OUT], ref.probs))).toBeLessThan(1e-6);
    }
    const { y } = await sp.run({ x: float32([4, IN], X_PROJ) });
    expect(maxAbsDiff(y, float32([4, HID], projReference(X_PROJ, 4)))).toBeLessThan(1e-5);

    expect(progress[0]).toEqual({ location: 'model.safetensors', uri: url, loaded: 0, total: fileSize });
    expect(progress.at(-1)).toEqual({
      location: 'model.safetensors',
      uri: url,
      loaded: fileSize,
      total: fileSize,
    });
    for (let i = 1; i < progress.length; i++)
      expect(progress[i].loaded).toBeGreaterThanOrEqual(progress[i - 1].loaded);

    // files still to be used are kept, the others dropped
    web.clearWeightCache([url]);
    expect(web.cachedWeightFiles).toBe(1);
    web.clearWeightCache([`${base}/ckpt/other.safetensors`]);
    expect(web.cachedWeightFiles).toBe(0);
    // sessions created before keep working: onnxruntime copied the bytes it needed
    const again = await sh.run({ x: float32([2, 3, IN], X_HEAD) });
    expect(maxAbsDiff(again.probs, float32([2, 3, OUT], ref.probs))).toBeLessThan(1e-6);
    for (const s of [sh, sp, s3]) await s.release();
  });

  it('names the missing weight file', async () => {
    const web = await createWebBackend();
    const missing = join(dir, 'nowhere', 'model.safetensors');
    const err = await web.load(withWeightsAt(head, () => missing)).catch((e) => e);
    expect(err).toBeInstanceOf(WebBackendError);
    expect(err.code).toBe('E_WEIGHT_FILES');
    expect(err.message).toContain(missing);
    expect(err.message).toContain('head');
  });

  it('names the URL that answered 404, and retries after a failed download', async () => {
    const web = await createWebBackend();
    const url = `${base}/ckpt/missing.safetensors`;
    const err = await web.load(withWeightsAt(head, () => url)).catch((e) => e);
    expect(err).toBeInstanceOf(WebBackendError);
    expect(err.code).toBe('E_FETCH');
    expect(err.message).toContain(url);
    expect(err.message).toContain('404');
    expect(web.cachedWeightFiles).toBe(0);
  });

  it('refuses a truncated download by its announced size', async () => {
    const web = await createWebBackend();
    truncate = true;
    try {
      const err = await web.load(withWeightsAt(head, () => `${base}/ckpt/model.safetensors`)).catch((e) => e);
      expect(err).toBeInstanceOf(WebBackendError);
      expect(err.code).toBe('E_WEIGHT_FILES');
      expect(err.message).toContain(`${fileSize - 100} bytes but the graph expects ${fileSize}`);
    } finally {
      truncate = false;
    }
    // the failure was not cached: the same backend loads the good file afterwards
    const s = await web.load(withWeightsAt(head, () => `${base}/ckpt/model.safetensors`));
    await s.release();
  });

  it('refuses weights that cannot fit in 32-bit wasm memory before downloading them', async () => {
    const web = await createWebBackend();
    const before = served.length;
    const huge = {
      ...head,
      externalData: [
        { location: 'model.safetensors', uri: `${base}/ckpt/model.safetensors`, size: 5 * 2 ** 30 },
      ],
    };
    const err = await web.load(huge).catch((e) => e);
    expect(err).toBeInstanceOf(WebBackendError);
    expect(err.code).toBe('E_TOO_LARGE');
    expect(err.message).toMatch(/5\.00 GiB.*4\.00 GiB.*blip2 export .*--dtype q4/);
    expect(served.length).toBe(before);
    expect(WASM_MAX_WEIGHT_BYTES).toBe(2 ** 32);

    // the limit also applies when the size is only known after reading
    const small = await createWebBackend({ maxWeightBytes: 1000 });
    const unsized = withWeightsAt(head, (l) => join(dir, l));
    const err2 = await small
      .load({
        ...unsized,
        externalData: unsized.externalData.map(({ location, uri }) => ({ location, uri })),
      })
      .catch((e) => e);
    expect(err2.code).toBe('E_TOO_LARGE');
  });

  it('WebGPU is unavailable in Node: a typed error, or wasm with one warning', async () => {
    const err = await createWebBackend({ device: 'webgpu' }).catch((e) => e);
    expect(err).toBeInstanceOf(WebBackendError);
    expect(err.code).toBe('E_PROVIDER_UNAVAILABLE');
    expect(err.message).toContain("device 'webgpu' is unavailable: navigator.gpu is missing");

    const warnings: string[] = [];
    const web = await createWebBackend({
      device: 'webgpu',
      fallback: 'wasm',
      onWarning: (m) => warnings.push(m),
    });
    expect(web.device).toBe('wasm');
    expect(web.name).toBe('web:wasm');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("device 'webgpu' is unavailable, running on wasm instead");
    const out = await runHead(head, web);
    expect(maxAbsDiff(out.probs, float32([2, 3, OUT], headReference(X_HEAD, 6).probs))).toBeLessThan(1e-6);

    const nn = await createWebBackend({ device: 'webnn' }).catch((e) => e);
    expect(nn.code).toBe('E_PROVIDER_UNAVAILABLE');
    expect(nn.message).toContain('navigator.ml');
  });

  it('checks feeds before onnxruntime sees them, and refuses a released session', async () => {
    const s = await (await createWebBackend()).load(head);
    await expect(s.run({ x: int64([1, 1, IN], new Array(IN).fill(0)) })).rejects.toThrow(TensorError);
    await expect(s.run({ x: float32([2, 3, IN + 1]) })).rejects.toThrow(
      /input 'x' has dims \[2, 3, 17\], expected \[batch, seq, 16\]/,
    );
    await expect(s.run({})).rejects.toThrow(/missing x/);
    // only the outputs asked for
    const only = await s.run({ x: float32([1, 1, IN], X_HEAD.subarray(0, IN)) }, ['probs']);
    expect(Object.keys(only)).toEqual(['probs']);
    await s.release();
    const err = await s.run({ x: float32([1, 1, IN]) }).catch((e) => e);
    expect(err.code).toBe('E_RELEASED');
  });

  it('keepOnDevice on wasm keeps nothing (outputs are already in wasm memory) and names outputs that do not exist', async () => {
    const web = await createWebBackend({ device: 'wasm' });
    const s = await web.load(head, { keepOnDevice: ['logits'] });
    const x = float32([1, 1, IN], X_HEAD.subarray(0, IN));
    const kept = await s.runOnDevice({ x });
    expect(Object.values(kept).map((t) => isDeviceTensor(t))).toEqual([false, false]);
    expect(maxAbsDiff(kept.logits as Tensor, (await s.run({ x })).logits)).toBe(0);
    await s.release();
    const err = await web.load(head, { keepOnDevice: ['logits', 'present.0.key'] }).catch((e) => e);
    expect(err).toBeInstanceOf(WebBackendError);
    expect(err).toMatchObject({ code: 'E_KEEP_ON_DEVICE' });
    expect(err.message).toContain(
      `'present.0.key', which is not an output of the graph (outputs are logits, probs)`,
    );
  });

  it('doctor() reports what Node offers', async () => {
    const report = await doctor();
    expect(report.runtime).toBe('node');
    expect(report.onnxruntimeWeb).toBe('1.30.0');
    const byName = Object.fromEntries(report.providers.map((p) => [p.name, p]));
    expect(byName.wasm.available).toBe(true);
    expect(byName.webgpu.available).toBe(false);
    expect(byName.webgpu.problem).toMatch(/navigator\.gpu.*backend-node/);
    expect(byName.webnn.available).toBe(false);
  });
});
