/**
 * The playground as a user meets it: `vite build` of the app, `vite preview` on
 * 127.0.0.1, headless Debian Chromium clicking through the page. The shipped shapes
 * OPT model loads on wasm, the sample image is uploaded through the file input, and
 * the answer must be transformers' own (val/hf_predictions_opt.json); the streamed
 * caption must be what the Node SDK gives. A wrong model URL must show its code and
 * the URL at fault.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { Blip2ForConditionalGeneration, exportModel } from '@blip2/sdk';
import { CHROMIUM, launchChromium } from '@blip2/test-browser';
import type { BrowserContext, Page } from 'playwright-core';
import { build, type PreviewServer, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './free-port.js';

const APP = join(import.meta.dirname, '..');
const IMAGE = 'COCO_val2014_000000000003.jpg';
const IMAGE_PATH = join(fixtures.shapesVal, 'images', IMAGE);
const QUESTION = 'What color is the triangle?';
/** Files the SDK looks for and does without (a sharded index, the newer processor config). */
const OPTIONAL_FILES = ['model.safetensors.index.json', 'processor_config.json', 'quantization.json'];

interface VqaQuestion {
  image_id: number;
  question: string;
  question_id: number;
}

/** transformers' answer to QUESTION about IMAGE with the paper's VQA decoding (what `ask` uses by default). */
function referenceAnswer(): string {
  const imageId = Number(/(\d+)\.jpg$/.exec(IMAGE)?.[1]);
  const { questions } = JSON.parse(readFileSync(join(fixtures.shapesVal, 'questions.json'), 'utf8')) as {
    questions: VqaQuestion[];
  };
  const q = questions.find((x) => x.image_id === imageId && x.question === QUESTION);
  if (!q) throw new Error(`questions.json has no '${QUESTION}' for image ${imageId}`);
  const predictions = JSON.parse(readFileSync(join(fixtures.shapesVal, 'hf_predictions_opt.json'), 'utf8'));
  const answer = (predictions.beam5_lavis.results as { question_id: number; answer: string }[]).find(
    (r) => r.question_id === q.question_id,
  )?.answer;
  if (answer === undefined) throw new Error(`hf_predictions_opt.json has no answer for ${q.question_id}`);
  return answer;
}

/** Sets the modification time of every file under `dir` to `when`, as if built then. */
function backdate(dir: string, when: number): void {
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    utimesSync(path, when / 1000, when / 1000);
  }
}

let outDir: string;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let server: PreviewServer;
let baseUrl: string;
let context: BrowserContext;
let expectedAnswer: string;
let nodeCaption: string;
/** the embedded default's caption and answer of IMAGE on onnxruntime-node */
let captioner: { caption: string; answer: string };
/** a q8 export of the embedded default, served at /models/local/, and its caption and answer on onnxruntime-node */
let exportDir: string;
let exported: { caption: string; answer: string };

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (set BLIP2_CHROMIUM)`);
  expectedAnswer = referenceAnswer();
  // the caption onnxruntime-node gives with the same defaults: the browser must agree token for token
  const model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesOpt);
  try {
    nodeCaption = await model.caption(IMAGE_PATH);
  } finally {
    await model.dispose();
  }
  const embedded = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesCaptioner);
  try {
    captioner = {
      caption: await embedded.caption(IMAGE_PATH),
      answer: await embedded.ask(IMAGE_PATH, QUESTION),
    };
  } finally {
    await embedded.dispose();
  }

  // `blip2 export` of the embedded default, mounted by vite.config.ts as the user's own folder
  exportDir = join(mkdtempSync(join(tmpdir(), 'blip2-playground-export-')), 'captioner-q8');
  await exportModel(fixtures.shapesCaptioner, exportDir, { dtype: 'q8' });
  process.env.BLIP2_PLAYGROUND_MODEL = exportDir;
  const q8 = await Blip2ForConditionalGeneration.fromPretrained(exportDir);
  try {
    exported = { caption: await q8.caption(IMAGE_PATH), answer: await q8.ask(IMAGE_PATH, QUESTION) };
  } finally {
    await q8.dispose();
  }

  outDir = mkdtempSync(join(tmpdir(), 'blip2-playground-dist-'));
  const configFile = join(APP, 'vite.config.ts');
  await build({ root: APP, configFile, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  // as users meet it: a build some minutes old (browsers cache files by their age)
  backdate(outDir, Date.now() - 60 * 60 * 1000);
  server = await preview({
    root: APP,
    configFile,
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port: await freePort(), strictPort: true, open: false },
  });
  const url = server.resolvedUrls?.local[0];
  if (!url) throw new Error('vite preview did not report a URL');
  baseUrl = url.replace(/\/$/, '');

  browser = await launchChromium();
  context = browser.context;
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
  if (exportDir) rmSync(join(exportDir, '..'), { recursive: true, force: true });
  delete process.env.BLIP2_PLAYGROUND_MODEL;
});

/** A fresh tab on the playground, with its console errors and uncaught exceptions collected. */
async function openPlayground(): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${m.text()} @ ${m.location().url}`);
  });
  page.on('pageerror', (e) => errors.push(`[pageerror] ${e.message}`));
  await page.goto(`${baseUrl}/`);
  // the environment line is filled in once the page script has run
  await page.waitForFunction(
    () => !document.querySelector('#environment')?.textContent?.startsWith('Checking'),
  );
  return { page, errors };
}

async function loadModel(page: Page, source: string): Promise<void> {
  await page.fill('#model-source', source);
  await page.selectOption('#device', 'wasm');
  // the status line of the load before this one would satisfy the wait below
  await page.evaluate(() => {
    (document.querySelector('#load-status') as HTMLElement).textContent = '';
  });
  await page.click('#load');
  await page.waitForFunction(
    () =>
      !(document.querySelector('#load') as HTMLButtonElement).disabled &&
      (document.querySelector('#load-status')?.textContent?.startsWith('Loaded') ||
        !(document.querySelector('#error') as HTMLElement).hidden),
  );
}

async function waitForResult(page: Page): Promise<string> {
  await page.waitForFunction(() =>
    ['done', 'error'].includes((document.querySelector('#result') as HTMLElement).dataset.state ?? ''),
  );
  const error = await page.locator('#error').isVisible();
  if (error) throw new Error(`the page shows an error: ${await page.locator('#error').textContent()}`);
  return (await page.locator('#result').textContent()) ?? '';
}

describe('the playground in headless Chromium (vite build + vite preview)', () => {
  it('answers Range requests on the built model files exactly, never compressed', async () => {
    const size = statSync(join(fixtures.shapesCaptioner, 'model.safetensors')).size;
    for (const model of ['shapes-blip2-opt-captioner', 'shapes-blip2-opt']) {
      const res = await fetch(`${baseUrl}/models/${model}/model.safetensors`, {
        headers: { Range: 'bytes=0-0', 'Accept-Encoding': 'gzip, deflate, br' },
      });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 0-0/${size}`);
      expect(res.headers.get('content-encoding')).toBeNull();
      expect((await res.arrayBuffer()).byteLength).toBe(1);
    }
  });

  it('loads the embedded captioner by default: the wasm download in one forward-only bar, a caption and an answer as in Node', async () => {
    const { page, errors } = await openPlayground();
    try {
      expect(await page.locator('#model-source').inputValue()).toBe('/models/shapes-blip2-opt-captioner/');
      // headless Chromium's WebGPU is SwiftShader: the page picks wasm and says why
      expect(await page.locator('#device').inputValue()).toBe('wasm');
      expect(await page.locator('#environment').textContent()).toMatch(
        /WebGPU: software adapter only \(.+\), so wasm is chosen/,
      );
      await page.evaluate(() => {
        const bar = document.querySelector('#load-progress') as HTMLProgressElement;
        const status = document.querySelector('#load-status') as HTMLElement;
        const seen: { value: number; text: string }[] = [];
        (globalThis as { __bar?: typeof seen }).__bar = seen;
        new MutationObserver(() => seen.push({ value: bar.value, text: status.textContent ?? '' })).observe(
          status,
          { childList: true, characterData: true, subtree: true },
        );
      });
      await page.click('#load');
      await page.waitForFunction(() =>
        document.querySelector('#load-status')?.textContent?.startsWith('Loaded'),
      );
      const seen = await page.evaluate(
        () => (globalThis as unknown as { __bar: { value: number; text: string }[] }).__bar,
      );
      const values = seen.map((s) => s.value);
      expect(values.every((v, i) => i === 0 || v >= values[i - 1]!)).toBe(true);
      expect(values.at(-1)).toBe(1);
      // the runtime's ~28 MB move the bar before the model's files do
      const runtime = seen.filter((s) => s.text.startsWith('Downloading the onnxruntime-web runtime'));
      expect(runtime.length).toBeGreaterThan(1);
      expect(runtime.at(-1)!.text).toMatch(/: (2\d\.\d) MB of \1 MB$/);
      expect(runtime.at(-1)!.value).toBeGreaterThan(0.5);
      expect(seen.some((s) => s.text.startsWith('Downloading model.safetensors'))).toBe(true);

      await page.click(`button.sample[title="${IMAGE}"]`);
      await expect.poll(() => page.locator('#image-status').textContent()).toBe(`Image: ${IMAGE}`);
      // the chosen sample, and only it, is highlighted
      expect(await page.locator('button.sample[aria-pressed="true"]').count()).toBe(1);
      expect(await page.locator(`button.sample[title="${IMAGE}"]`).getAttribute('aria-pressed')).toBe('true');
      expect(
        await page
          .locator(`button.sample[title="${IMAGE}"]`)
          .evaluate((b) => getComputedStyle(b).outlineStyle),
      ).toBe('solid');

      await page.click('#caption');
      expect(await waitForResult(page)).toBe(captioner.caption);
      expect(captioner.caption).toBe('a yellow triangle');
      expect(await page.locator('#result-note').isHidden()).toBe(true);
      await page.fill('#question', QUESTION);
      await page.click('#ask');
      expect(await waitForResult(page)).toBe(captioner.answer);

      // a failed load keeps the model that works
      await loadModel(page, '/models/no-such-model/');
      expect(await page.locator('#error-code').textContent()).toBe('E_MISSING_FILE');
      expect(await page.locator('#load-status').textContent()).toBe(
        'Could not load /models/no-such-model/; still using /models/shapes-blip2-opt-captioner/ on web:wasm.',
      );
      expect(await page.locator('#load-progress').evaluate((p) => (p as HTMLProgressElement).value)).toBe(1);
      expect(await page.locator('#caption').isDisabled()).toBe(false);
      await page.click('#caption');
      expect(await waitForResult(page)).toBe(captioner.caption);

      // a file of the user's: no sample is highlighted
      await page.setInputFiles('#image-file', IMAGE_PATH);
      await expect.poll(() => page.locator('button.sample[aria-pressed="true"]').count()).toBe(0);
      const probes = OPTIONAL_FILES.map(
        (f) =>
          `Failed to load resource: the server responded with a status of 404 (Not Found) @ ${baseUrl}/models/shapes-blip2-opt-captioner/${f}`,
      );
      // the failed load's 404 and the error the page logs for whoever debugs it
      const failed = (e: string) => e.includes('/models/no-such-model/');
      expect(errors.filter((e) => !probes.includes(e) && !failed(e))).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('at 390 px wide nothing overflows: the load status keeps its width, a long error wraps', async () => {
    const page = await context.newPage();
    try {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${baseUrl}/`);
      await page.waitForFunction(
        () => !document.querySelector('#environment')?.textContent?.startsWith('Checking'),
      );
      await loadModel(page, `/models/${'a-very-long-folder-name-'.repeat(6)}/`);
      expect(await page.locator('#error').isVisible()).toBe(true);
      const layout = await page.evaluate(() => {
        const box = (sel: string) => document.querySelector(sel)!.getBoundingClientRect();
        const card = box('section');
        return {
          scrollWidth: document.documentElement.scrollWidth,
          card: { left: card.left, right: card.right },
          status: box('#load-status'),
          error: box('#error'),
          message: box('#error-message'),
        };
      });
      expect(layout.scrollWidth).toBeLessThanOrEqual(390);
      for (const b of [layout.status, layout.error, layout.message]) expect(b.right).toBeLessThanOrEqual(390);
      // the status is a line of its own within the card, not a narrow column past its border
      expect(layout.status.right).toBeLessThanOrEqual(layout.card.right);
      expect(layout.status.width).toBeGreaterThan(250);
      const shot = join(outDir, 'playground-390.png');
      const png = await page.screenshot({ path: shot, fullPage: true });
      // PNG header: the width of the full-page screenshot is the page's, 390 when nothing overflows
      expect(png.readUInt32BE(16)).toBe(390);
    } finally {
      await page.close();
    }
  });

  it('loads the VQA-only shapes OPT model on wasm, answers like transformers and streams the caption', async () => {
    const { page, errors } = await openPlayground();
    try {
      // COOP/COEP from preview.headers: wasm may use threads
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
      expect(await page.locator('#environment').textContent()).toMatch(/wasm threads: on/);

      await loadModel(page, '/models/shapes-blip2-opt/');
      expect((await page.locator('#error').textContent())?.trim()).toBe('');
      expect(await page.locator('#error').isHidden()).toBe(true);
      expect(await page.locator('#load-status').textContent()).toMatch(
        /^Loaded \/models\/shapes-blip2-opt\/ on web:wasm in .*“Question: \{\} Answer:”/,
      );
      expect(await page.locator('#load-progress').evaluate((p) => (p as HTMLProgressElement).value)).toBe(1);

      // a real file through the file input
      await page.setInputFiles('#image-file', IMAGE_PATH);
      await expect.poll(() => page.locator('#image-status').textContent()).toBe(`Image: ${IMAGE}`);
      // the preview shows the file once the browser has decoded it
      await page.locator('#preview').waitFor({ state: 'visible' });
      expect(await page.locator('#preview').evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBe(
        96,
      );

      await page.fill('#question', QUESTION);
      await page.click('#ask');
      const answer = await waitForResult(page);
      console.log(
        `playground answer: ${JSON.stringify(answer)} (transformers: ${JSON.stringify(expectedAnswer)})`,
      );
      expect(answer).toBe(expectedAnswer);
      expect(await page.locator('#timings').textContent()).toMatch(
        /^image side \(vision encoder \+ Q-Former\): \d.* · generation \(language model, \d+ runs?, \d+ tokens?\): \d.* · total .* on web:wasm$/,
      );

      // record every text the result box shows while the caption streams
      await page.evaluate(() => {
        const result = document.querySelector('#result') as HTMLElement;
        const seen: { state: string; text: string }[] = [];
        (globalThis as { __seen?: typeof seen }).__seen = seen;
        new MutationObserver(() =>
          seen.push({ state: result.dataset.state ?? '', text: result.textContent ?? '' }),
        ).observe(result, { childList: true, characterData: true, subtree: true, attributes: true });
      });
      await page.click('#caption');
      const caption = await waitForResult(page);
      const seen = await page.evaluate(
        () => (globalThis as unknown as { __seen: { state: string; text: string }[] }).__seen,
      );
      const streamed = seen.filter((s) => s.state === 'streaming' && s.text !== '');
      console.log(`playground caption: ${JSON.stringify(caption)}, ${streamed.length} streamed update(s)`);
      expect(streamed.length).toBeGreaterThan(0);
      expect(streamed.at(-1)?.text.trim()).toBe(caption);
      expect(caption).toBe(nodeCaption);
      expect(caption.length).toBeGreaterThan(0);
      // its captions are shown with what they are worth
      expect(await page.locator('#result-note').textContent()).toContain(
        'This is a VQA-only model: its captions are meaningless',
      );

      // a sample thumbnail is the same image: the same answer
      await page.click(`button.sample[title="${IMAGE}"]`);
      await expect.poll(() => page.locator('#image-status').textContent()).toBe(`Image: ${IMAGE}`);
      await page.click('#ask');
      expect(await waitForResult(page)).toBe(expectedAnswer);

      // Chromium logs every 404 as a console error, and the SDK asks for the optional files a
      // checkpoint may have; the shapes checkpoint has none of them. Any other error fails.
      const probes = OPTIONAL_FILES.map(
        (f) =>
          `Failed to load resource: the server responded with a status of 404 (Not Found) @ ${baseUrl}/models/shapes-blip2-opt/${f}`,
      );
      expect(errors.filter((e) => !probes.includes(e))).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('loads a q8 export of the captioner from the served folder (BLIP2_PLAYGROUND_MODEL): its formats shown, caption and answer as onnxruntime-node gives for it', async () => {
    const { page, errors } = await openPlayground();
    try {
      await loadModel(page, '/models/local/');
      expect(await page.locator('#error').isHidden()).toBe(true);
      expect(await page.locator('#load-status').textContent()).toMatch(
        /^Loaded \/models\/local\/ on web:wasm in [^;]* \(weights q8\); /,
      );
      await page.click(`button.sample[title="${IMAGE}"]`);
      await expect.poll(() => page.locator('#image-status').textContent()).toBe(`Image: ${IMAGE}`);
      await page.click('#caption');
      const caption = await waitForResult(page);
      console.log(
        `playground q8 export: caption ${JSON.stringify(caption)} (node ${JSON.stringify(exported.caption)})`,
      );
      expect(caption).toBe(exported.caption);
      await page.fill('#question', QUESTION);
      await page.click('#ask');
      expect(await waitForResult(page)).toBe(exported.answer);
      // an export is one model.safetensors and its quantization.json: the other optional files are 404s
      const probes = ['model.safetensors.index.json', 'processor_config.json'].map(
        (f) =>
          `Failed to load resource: the server responded with a status of 404 (Not Found) @ ${baseUrl}/models/local/${f}`,
      );
      expect(errors.filter((e) => !probes.includes(e))).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('quantizes the embedded captioner at load (Weights: q8): the numbers of its q8 export', async () => {
    const { page } = await openPlayground();
    try {
      await page.selectOption('#dtype', 'q8');
      await loadModel(page, '/models/shapes-blip2-opt-captioner/');
      expect(await page.locator('#error').isHidden()).toBe(true);
      expect(await page.locator('#load-status').textContent()).toMatch(/ \(weights q8\); /);
      await page.click(`button.sample[title="${IMAGE}"]`);
      await expect.poll(() => page.locator('#image-status').textContent()).toBe(`Image: ${IMAGE}`);
      await page.click('#caption');
      expect(await waitForResult(page)).toBe(exported.caption);
      await page.fill('#question', QUESTION);
      await page.click('#ask');
      expect(await waitForResult(page)).toBe(exported.answer);
      // an export loads only in its own formats: asking it for others is the SDK's E_DTYPE
      await page.selectOption('#dtype', 'q4');
      await loadModel(page, '/models/local/');
      expect(await page.locator('#error-code').textContent()).toBe('E_DTYPE');
      expect(await page.locator('#error-message').textContent()).toContain('was exported as');
    } finally {
      await page.close();
    }
  });

  it('shows the code and the URL at fault for a bad model source, never a stack', async () => {
    const { page } = await openPlayground();
    try {
      await loadModel(page, '/models/no-such-model/');
      expect(await page.locator('#error').isVisible()).toBe(true);
      expect(await page.locator('#error-code').textContent()).toBe('E_MISSING_FILE');
      const message = (await page.locator('#error-message').textContent()) ?? '';
      expect(message).toContain(`${baseUrl}/models/no-such-model/config.json`);
      expect(message).not.toMatch(/\n\s+at /);
      expect(await page.locator('#load-status').textContent()).toBe('Could not load /models/no-such-model/.');
      expect(await page.locator('#caption').isDisabled()).toBe(true);

      await loadModel(page, 'not a model source');
      expect(await page.locator('#error-code').textContent()).toBe('E_SOURCE');
      expect(await page.locator('#error-message').textContent()).toContain("'not a model source'");
    } finally {
      await page.close();
    }
  });
});
