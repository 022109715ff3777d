/**
 * backend-web in headless Chromium (Debian's /usr/bin/chromium, WebGPU through
 * SwiftShader): the same graphs on `webgpu` and on `wasm`, compared with
 * backend-node CPU.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { type BuiltGraph, float32, maxAbsDiff, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebDoctorReport } from '../src/index.js';
import { withBrowserPage } from './browser-harness.js';
import { buildGraphs, HID, IN, inputs, OUT, writeCheckpoint } from './model.js';
import type { GraphRequest, RunResult } from './pages/graph-page.js';

const dir = mkdtempSync(join(tmpdir(), 'backend-web-browser-'));
const fileSize = writeCheckpoint(dir);
const WEIGHTS_URL = '/weights/model.safetensors';
const X_HEAD = inputs(2 * 5 * IN, 21);
const X_PROJ = inputs(3 * IN, 22);

let head: BuiltGraph;
let proj: BuiltGraph;
let cpuHead: Record<string, Tensor>;
let cpuProj: Record<string, Tensor>;

beforeAll(async () => {
  ({ head, proj } = await buildGraphs(dir));
  const cpu = createNodeBackend();
  cpuHead = await (await cpu.load(head)).run({ x: float32([2, 5, IN], X_HEAD) });
  cpuProj = await (await cpu.load(proj)).run({ x: float32([3, IN], X_PROJ) });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function request(graph: BuiltGraph, url: string, dims: number[], x: Float32Array): GraphRequest {
  return {
    graphUrl: url,
    name: graph.name,
    inputs: graph.inputs,
    outputs: graph.outputs,
    externalData: graph.externalData.map((f) => ({ ...f, uri: WEIGHTS_URL })),
    feeds: { x: { dims, data: Array.from(x) } },
  };
}

const asTensor = (o: { dims: number[]; data: number[] }) => float32(o.dims, o.data);

describe('backend-web in headless Chromium', () => {
  it('runs the graphs on webgpu and on wasm like backend-node CPU, fetching the weights once per backend', async () => {
    const files = {
      '/head.onnx': head.bytes,
      '/proj.onnx': proj.bytes,
      [WEIGHTS_URL]: join(dir, 'model.safetensors'),
    };
    await withBrowserPage(
      { entry: join(import.meta.dirname, 'pages/graph-page.ts'), files },
      async (page, _baseUrl, server) => {
        const report = await page.evaluate(() =>
          (globalThis as unknown as { webDoctor(): Promise<WebDoctorReport> }).webDoctor(),
        );
        expect(report.runtime).toBe('browser');
        expect(report.crossOriginIsolated).toBe(true);
        expect(report.threads.available).toBe(true);
        expect(report.providers.find((p) => p.name === 'webgpu')?.available).toBe(true);
        expect(report.webgpuAdapter?.vendor).toBeTruthy();

        const graphs = [
          request(head, '/head.onnx', [2, 5, IN], X_HEAD),
          request(proj, '/proj.onnx', [3, IN], X_PROJ),
        ];
        for (const [device, tolerance] of [
          ['webgpu', 1e-3],
          ['wasm', 1e-5],
        ] as const) {
          const before = server.requests.filter((r) => r === WEIGHTS_URL).length;
          const result = await page.evaluate(
            ([d, g]) =>
              (
                globalThis as unknown as {
                  runGraphs(d: string, g: readonly GraphRequest[]): Promise<RunResult>;
                }
              ).runGraphs(d, g),
            [device, graphs] as const,
          );
          expect(result.backend).toBe(`web:${device}`);
          expect(result.warnings).toEqual([]);
          // two graphs, one weight file, one download
          expect(server.requests.filter((r) => r === WEIGHTS_URL).length - before).toBe(1);
          expect(result.progress.at(-1)).toMatchObject({
            location: 'model.safetensors',
            loaded: fileSize,
            total: fileSize,
          });

          const [h, p] = result.outputs;
          expect(h.logits.dims).toEqual([2, 5, OUT]);
          expect(p.y.dims).toEqual([3, HID]);
          const diffs = {
            logits: maxAbsDiff(asTensor(h.logits), cpuHead.logits),
            probs: maxAbsDiff(asTensor(h.probs), cpuHead.probs),
            y: maxAbsDiff(asTensor(p.y), cpuProj.y),
          };
          console.log(`${device}: max |web - node cpu| = ${JSON.stringify(diffs)}`);
          for (const d of Object.values(diffs)) expect(d).toBeLessThan(tolerance);
        }
      },
    );
  });

  it('without isolation headers doctor() says why threads are off, and wasm still runs', async () => {
    const files = { '/head.onnx': head.bytes, [WEIGHTS_URL]: join(dir, 'model.safetensors') };
    const entry = join(import.meta.dirname, 'pages/graph-page.ts');
    await withBrowserPage({ entry, files, crossOriginIsolated: false }, async (page) => {
      const report = await page.evaluate(() =>
        (globalThis as unknown as { webDoctor(): Promise<WebDoctorReport> }).webDoctor(),
      );
      expect(report.crossOriginIsolated).toBe(false);
      expect(report.threads.available).toBe(false);
      expect(report.threads.problem).toContain('Cross-Origin-Embedder-Policy: require-corp');
      const result = await page.evaluate(
        ([g]) =>
          (
            globalThis as unknown as { runGraphs(d: string, g: readonly GraphRequest[]): Promise<RunResult> }
          ).runGraphs('wasm', g),
        [[request(head, '/head.onnx', [2, 5, IN], X_HEAD)]] as const,
      );
      expect(maxAbsDiff(asTensor(result.outputs[0].logits), cpuHead.logits)).toBeLessThan(1e-5);
    });
  });
});
