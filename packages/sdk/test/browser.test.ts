/**
 * Issue 8's browser check: in headless Debian Chromium a page loads the tiny OPT
 * fixture through `@blip2/sdk/browser` on `webgpu` and on `wasm`, and case 0 must
 * match transformers: logits within 1e-3 on WebGPU (its float math) and 1e-4 on
 * wasm, generated tokens identical. The page also takes the real path (the browser
 * decodes the PNG, the processor prepares it, the model captions it), and loads by
 * hub id, by page-relative URL, and with the errors a user meets first.
 *
 * The checkpoint is served from a second origin that honours Range and sends CORS
 * headers, as a CDN or the Hugging Face hub does.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { maxAbsDiff, type Tensor, tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withBrowserPage } from '../../backend-web/test/browser-harness.js';
import { Blip2ForConditionalGeneration } from '../src/index.js';
import { type ModelServer, serveCheckpoint } from './browser/model-server.js';
import type { CaseRequest, CaseResult, ErrorResult, PlainTensor } from './browser/page.js';
import { generateRecord, readF32Tensors, referenceJson } from './browser/reference.js';

const ENTRY = join(import.meta.dirname, 'browser/page.ts');
const CASE = referenceJson.cases[0];
const IMAGE_URL = `/images/${CASE.image}`;
const GENERATIONS = ['case0/greedy', 'case0/greedy_rep'];
const MODEL_FILES = [
  'config.json',
  'generation_config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
  'preprocessor_config.json',
];
const WEIGHTS_BYTES = statSync(join(fixtures.tinyOpt, 'model.safetensors')).size;

/** What the harness serves on the page's own origin: the image, and the checkpoint under /local/ for relative URLs. */
const PAGE_FILES: Record<string, string> = {
  [IMAGE_URL]: join(fixtures.images, CASE.image),
  ...Object.fromEntries(MODEL_FILES.map((f) => [`/local/${f}`, join(fixtures.tinyOpt, f)])),
};

let server: ModelServer;
let reference: Map<string, Tensor<'float32'>>;
let pilPixels: Tensor<'float32'>;
let nodeCaption: { tokens: number[]; text: string };
let nodeAnswer: string;
const QUESTION = 'what color is the circle?';

const batched = (t: Tensor<'float32'>): Tensor<'float32'> => tensor('float32', [1, ...t.dims], t.data);
const asPlain = (t: Tensor<'float32'>): PlainTensor => ({ dims: [...t.dims], data: Array.from(t.data) });
const fromPlain = (p: PlainTensor): Tensor<'float32'> => tensor('float32', p.dims, Float32Array.from(p.data));

beforeAll(async () => {
  server = await serveCheckpoint(fixtures.tinyOpt);
  reference = await readF32Tensors(join(fixtures.tinyOpt, 'reference.safetensors'));
  const pixels = await readF32Tensors(join(fixtures.images, 'pixel_values.safetensors'));
  const pil = pixels.get(`${CASE.image}/pil/32`);
  if (!pil) throw new Error(`pixel_values.safetensors has no ${CASE.image}/pil/32`);
  pilPixels = batched(pil);
  // The caption the Node SDK (onnxruntime-node, CPU) gives on PIL's pixels: the browser must agree.
  const model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt);
  try {
    const out = await model.generate({ pixelValues: pilPixels });
    nodeCaption = { tokens: out.sequences[0], text: await model.caption(join(fixtures.images, CASE.image)) };
    nodeAnswer = await model.ask(join(fixtures.images, CASE.image), QUESTION);
  } finally {
    await model.dispose();
  }
});

afterAll(() => server?.close());

type PageFns = {
  runCase(req: CaseRequest): Promise<CaseResult>;
  runVision(url: string, pixels: PlainTensor): Promise<{ lastHiddenState: PlainTensor }>;
  runHub(
    source: string,
    endpoint: string,
    token: string | undefined,
    image: string,
    question: string,
  ): Promise<{ backend: string; answer: string }>;
  loadError(source: string, options: Record<string, unknown>): Promise<ErrorResult | null>;
};

describe('@blip2/sdk/browser in headless Chromium', () => {
  it('runs case 0 of the tiny OPT fixture on webgpu and on wasm like transformers', async () => {
    const caseRef = (name: string) => {
      const t = reference.get(`${CASE.key}/${name}`);
      if (!t) throw new Error(`reference.safetensors has no ${CASE.key}/${name}`);
      return batched(t);
    };
    const request = (device: 'webgpu' | 'wasm'): CaseRequest => ({
      modelUrl: `${server.url}/model/`,
      device,
      pixelValues: asPlain(caseRef('pixel_values')),
      inputIds: CASE.input_ids,
      generations: Object.fromEntries(GENERATIONS.map((n) => [n, generateRecord(n).kwargs])),
      imageUrl: IMAGE_URL,
    });

    await withBrowserPage({ entry: ENTRY, files: PAGE_FILES }, async (page, baseUrl, harness) => {
      // The page bundle (esbuild, platform 'browser') must hold nothing of the Node entry:
      // its inline source map lists every module that went in.
      const bundle = await (await fetch(`${baseUrl}/page.js`)).text();
      const map = /sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)/.exec(bundle);
      const sources = JSON.parse(Buffer.from(map?.[1] ?? '', 'base64').toString('utf8')).sources as string[];
      expect(sources.some((s) => /(^|\/)src\/browser-platform\.ts$/.test(s))).toBe(true);
      const nodeOnly = sources.filter((s) =>
        /backend-node|onnxruntime-node|\/sharp\/|node-platform|(^|\/)src\/sources\/(resolve|download)|safetensors\/src\/node|processor\/src\/(node|decode-node|load-node)/.test(
          s,
        ),
      );
      expect(nodeOnly).toEqual([]);

      for (const [device, tolerance] of [
        ['webgpu', 1e-3],
        ['wasm', 1e-4],
      ] as const) {
        const seen = server.requests.length;
        let result: CaseResult;
        try {
          result = await page.evaluate(
            (req) => (globalThis as unknown as PageFns).runCase(req),
            request(device),
          );
        } catch (e) {
          throw new Error(`${(e as Error).message}\npage log:\n${harness.logs.join('\n')}`);
        }
        expect(result.backend).toBe(`web:${device}`);
        expect(result.warnings).toEqual([]);

        const logitsDiff = maxAbsDiff(fromPlain(result.logits), caseRef('logits'));
        const pixelDiff = maxAbsDiff(fromPlain(result.processedPixelValues), pilPixels);
        console.log(
          `${device}: max |logits - transformers| = ${logitsDiff.toExponential(2)}, ` +
            `max |browser pixels - PIL| = ${pixelDiff.toExponential(2)}, caption ${JSON.stringify(result.caption)}`,
        );
        expect(result.logits.dims).toEqual(caseRef('logits').dims);
        expect(logitsDiff).toBeLessThanOrEqual(tolerance);
        for (const name of GENERATIONS)
          expect(result.generated[name], name).toEqual(generateRecord(name).new);

        // the real path: PNG decoded by Chromium, PIL-exact resize, same caption as Node
        expect(pixelDiff).toBeLessThanOrEqual(1e-6);
        expect(result.captionTokens).toEqual(nodeCaption.tokens);
        expect(result.caption).toBe(nodeCaption.text);

        // the weights: headers through Range requests, then one whole download shared by every graph
        // fromPretrained loads; the full-logits graph, which generation never needs, is loaded on this
        // page's first `forward` and fetches them once more (onnxruntime-web copies weights into each
        // session, so loading it up front would hold the language model twice). The hub test below
        // (no forward) sees exactly one download.
        const weights = server.requests.slice(seen).filter((r) => r.path === '/model/model.safetensors');
        expect(weights.filter((r) => r.range === undefined)).toHaveLength(2);
        expect(weights.filter((r) => r.range !== undefined).length).toBeGreaterThan(0);
        const downloads = result.progress.filter((e) => e.phase === 'download');
        expect(downloads.at(-1)).toMatchObject({
          phase: 'download',
          file: 'model.safetensors',
          loaded: WEIGHTS_BYTES,
          total: WEIGHTS_BYTES,
          overallLoaded: WEIGHTS_BYTES,
          overallTotal: WEIGHTS_BYTES,
        });
        expect(result.progress.some((e) => e.phase === 'load')).toBe(true);
      }
    });
  });

  it('loads by hub id with a token, by page-relative URL, and names what is wrong', async () => {
    await withBrowserPage({ entry: ENTRY, files: PAGE_FILES }, async (page) => {
      server.token = 'hf_secret';
      try {
        const seen = server.requests.length;
        const hub = await page.evaluate(
          ([endpoint, image, question]) =>
            (globalThis as unknown as PageFns).runHub('org/tiny', endpoint, 'hf_secret', image, question),
          [server.url, IMAGE_URL, QUESTION] as const,
        );
        expect(hub.backend).toMatch(/^web:(webgpu|wasm)$/);
        expect(hub.answer).toBe(nodeAnswer);
        const hubRequests = server.requests.slice(seen);
        const download = hubRequests.filter(
          (r) => r.path === '/org/tiny/resolve/main/model.safetensors' && r.range === undefined,
        );
        expect(download).toHaveLength(1);
        // the token reached every request, the backend's weight download included
        expect(hubRequests.every((r) => r.auth === 'Bearer hf_secret')).toBe(true);

        const denied = await page.evaluate(
          ([endpoint]) =>
            (globalThis as unknown as PageFns).loadError('org/tiny', { endpoint, device: 'wasm' }),
          [server.url] as const,
        );
        expect(denied).toMatchObject({ code: 'E_HTTP_UNAUTHORIZED' });
        expect(denied?.message).toContain(`${server.url}/org/tiny/resolve/main/config.json`);
      } finally {
        server.token = undefined;
      }

      const missing = await page.evaluate(
        ([url]) => (globalThis as unknown as PageFns).loadError(url, { device: 'wasm' }),
        [`${server.url}/nothing-here/`] as const,
      );
      expect(missing).toMatchObject({ code: 'E_MISSING_FILE' });
      expect(missing?.message).toContain(`${server.url}/nothing-here/config.json`);

      for (const [source, options, code, text] of [
        ['not a source', {}, 'E_SOURCE', "'not a source'"],
        ['/local/', { backend: 'node' }, 'E_OPTION', "backend 'node'"],
        ['/local/', { device: 'cuda' }, 'E_OPTION', "device 'cuda'"],
      ] as const) {
        const error = await page.evaluate(([s, o]) => (globalThis as unknown as PageFns).loadError(s, o), [
          source,
          options,
        ] as const);
        expect(error, `${source} ${JSON.stringify(options)}`).toMatchObject({ code });
        expect(error?.message).toContain(text);
      }

      // a URL relative to the page, served without Range support: the header read falls back to one download
      const vision = await page.evaluate(
        ([pixels]) => (globalThis as unknown as PageFns).runVision('./local/', pixels),
        [asPlain(batched(reference.get(`${CASE.key}/pixel_values`) as Tensor<'float32'>))] as const,
      );
      const expected = batched(reference.get(`${CASE.key}/vision_last_hidden_state`) as Tensor<'float32'>);
      expect(maxAbsDiff(fromPlain(vision.lastHiddenState), expected)).toBeLessThanOrEqual(1e-4);
    });
  });
});
