/**
 * The playground as a user meets it: `vite build` of the app, `vite preview` on
 * 127.0.0.1, headless Debian Chromium clicking through the page. The shipped shapes
 * OPT model loads on wasm, the sample image is uploaded through the file input, and
 * the answer must be transformers' own (val/hf_predictions_opt.json); the streamed
 * caption must be what the Node SDK gives. A wrong model URL must show its code and
 * the URL at fault.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { Blip2ForConditionalGeneration } from '@blip2/sdk';
import { CHROMIUM, launchChromium } from '@blip2/test-browser';
import type { BrowserContext, Page } from 'playwright-core';
import { build, type PreviewServer, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const APP = join(import.meta.dirname, '..');
const IMAGE = 'COCO_val2014_000000000003.jpg';
const IMAGE_PATH = join(fixtures.shapesVal, 'images', IMAGE);
const QUESTION = 'What color is the triangle?';
/** Files the SDK looks for and does without (a sharded index, the newer processor config). */
const OPTIONAL_FILES = ['model.safetensors.index.json', 'processor_config.json'];

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

let outDir: string;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let server: PreviewServer;
let baseUrl: string;
let context: BrowserContext;
let expectedAnswer: string;
let nodeCaption: string;

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

  outDir = mkdtempSync(join(tmpdir(), 'blip2-playground-dist-'));
  const configFile = join(APP, 'vite.config.ts');
  await build({ root: APP, configFile, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  server = await preview({
    root: APP,
    configFile,
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: true, open: false },
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
  it('loads the shapes OPT model on wasm, answers like transformers and streams the caption', async () => {
    const { page, errors } = await openPlayground();
    try {
      // COOP/COEP from preview.headers: wasm may use threads
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
      expect(await page.locator('#environment').textContent()).toMatch(/wasm threads: on/);
      expect(await page.locator('#model-source').inputValue()).toBe('/models/shapes-blip2-opt/');

      await loadModel(page, '/models/shapes-blip2-opt/');
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

      // a sample thumbnail is the same image: the same answer
      await page.click(`button.sample[title="${IMAGE}"]`);
      await expect.poll(() => page.locator('#image-status').textContent()).toBe(`Image: ${IMAGE}`);
      await page.click('#ask');
      expect(await waitForResult(page)).toBe(expectedAnswer);

      // Chromium logs every 404 as a console error, and the SDK asks for the optional files a
      // checkpoint may have; the shapes checkpoint has neither. Any other error fails.
      const probes = OPTIONAL_FILES.map(
        (f) =>
          `Failed to load resource: the server responded with a status of 404 (Not Found) @ ${baseUrl}/models/shapes-blip2-opt/${f}`,
      );
      expect(errors.filter((e) => !probes.includes(e))).toEqual([]);
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
