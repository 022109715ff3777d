// pipeline(), the transformers.js-style entry: the shapes of its results, its load
// options and its progress events (field names as transformers.js's ProgressInfo),
// over real HTTP on 127.0.0.1 for the download events.
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  Blip2ForConditionalGeneration,
  type ImageToTextSingle,
  type ProgressInfo,
  pipeline,
  type VisualQuestionAnsweringSingle,
} from '../src/index.js';
import { serveModel, type TestServer } from './http-server.js';

const images = join(fixtures.shapesVal, 'images');
const image = join(images, 'COCO_val2014_000000000003.jpg');
const second = join(images, 'COCO_val2014_000000000004.jpg');

describe("pipeline('image-to-text')", () => {
  it('gives [{ generated_text }] per image, the captions model.caption gives, with snake_case kwargs', async () => {
    const captioner = await pipeline('image-to-text', fixtures.shapesCaptioner, { device: 'cpu' });
    const model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesCaptioner);
    try {
      const one = await captioner(image);
      expectTypeOf(one).toEqualTypeOf<ImageToTextSingle[]>();
      expect(one).toEqual([{ generated_text: await model.caption(image) }]);
      // the captioner's true caption of val image 3 (val/captions.json)
      const truth: { image_id: number; caption: string }[] = JSON.parse(
        readFileSync(join(fixtures.shapesVal, 'captions.json'), 'utf8'),
      );
      expect(one[0].generated_text).toBe(truth.find((c) => c.image_id === 3)?.caption);
      const two = await captioner([image, second]);
      expectTypeOf(two).toEqualTypeOf<ImageToTextSingle[][]>();
      expect(two).toEqual((await model.caption([image, second])).map((t) => [{ generated_text: t }]));
      const short = await captioner(image, { max_new_tokens: 2 });
      expect(short).toEqual([{ generated_text: await model.caption(image, { maxNewTokens: 2 }) }]);
      expect(captioner.task).toBe('image-to-text');
    } finally {
      await captioner.dispose();
      await model.dispose();
    }
  });

  it("device 'wasm' runs on onnxruntime-web, as in transformers.js", async () => {
    const captioner = await pipeline('image-to-text', fixtures.shapesCaptioner, { device: 'wasm' });
    try {
      expect(captioner.model.backendName).toBe('web:wasm');
      const cpu = await pipeline('image-to-text', fixtures.shapesCaptioner);
      expect(await captioner(image)).toEqual(await cpu(image));
      await cpu.dispose();
    } finally {
      await captioner.dispose();
    }
  });
});

describe("pipeline('visual-question-answering')", () => {
  it('gives [{ answer }], the answer transformers gave (beam5_lavis)', async () => {
    const vqa = await pipeline('visual-question-answering', fixtures.shapesOpt, { dtype: 'fp32' });
    try {
      const questions = JSON.parse(
        readFileSync(join(fixtures.shapesVal, 'questions.json'), 'utf8'),
      ).questions;
      const predictions = JSON.parse(
        readFileSync(join(fixtures.shapesVal, 'hf_predictions_opt.json'), 'utf8'),
      );
      const beam = new Map(
        predictions.beam5_lavis.results.map((r: { question_id: number; answer: string }) => [
          r.question_id,
          r.answer,
        ]),
      );
      for (const q of questions.slice(0, 4)) {
        const file = join(images, `COCO_val2014_${String(q.image_id).padStart(12, '0')}.jpg`);
        const out = await vqa(file, q.question);
        expectTypeOf(out).toEqualTypeOf<VisualQuestionAnsweringSingle[]>();
        expect(out, q.question).toEqual([{ answer: beam.get(q.question_id) }]);
      }
    } finally {
      await vqa.dispose();
    }
  });
});

describe('pipeline load options and errors', () => {
  it('refuses an unknown task, a dtype it cannot run and a non-string question, with typed errors', async () => {
    await expect(pipeline('image-captioning' as never, fixtures.shapesOpt)).rejects.toMatchObject({
      code: 'E_OPTION',
      message: expect.stringContaining("'image-to-text' or 'visual-question-answering'"),
    });
    await expect(
      pipeline('image-to-text', fixtures.shapesOpt, { dtype: 'int3' as never }),
    ).rejects.toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringContaining("dtype 'int3' is not a dtype (fp32, fp16, q8, q4, q4f16)"),
    });
    const vqa = await pipeline('visual-question-answering', fixtures.shapesOpt);
    try {
      await expect(vqa(image, 42 as never)).rejects.toMatchObject({ code: 'E_INPUT' });
    } finally {
      await vqa.dispose();
    }
  });
});

describe('progress_callback', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await serveModel(fixtures.shapesCaptioner);
  });
  afterAll(() => server?.close());

  it('initiate, download, progress..., done per downloaded file, then ready, with transformers.js field names', async () => {
    const events: ProgressInfo[] = [];
    const source = `${server.url}/plain/`;
    const captioner = await pipeline('image-to-text', source, {
      cache_dir: mkdtempSync(join(tmpdir(), 'blip2-pipeline-')),
      progress_callback: (e) => events.push(e),
    });
    try {
      expect(await captioner(image)).toHaveLength(1);
    } finally {
      await captioner.dispose();
    }
    expect(events.at(-1)).toEqual({ status: 'ready', task: 'image-to-text', model: source });
    const files = [...new Set(events.flatMap((e) => ('file' in e ? [e.file] : [])))];
    expect(files).toContain('model.safetensors');
    expect(files).toContain('config.json');
    for (const file of files) {
      const mine = events.filter((e) => 'file' in e && e.file === file);
      const statuses = mine.map((e) => e.status);
      expect(statuses.slice(0, 2), file).toEqual(['initiate', 'download']);
      expect(statuses.at(-1), file).toBe('done');
      expect(
        statuses.slice(2, -1).every((s) => s === 'progress'),
        file,
      ).toBe(true);
      const last = mine.filter((e) => e.status === 'progress').at(-1);
      const bytes = statSync(join(fixtures.shapesCaptioner, file)).size;
      expect(last, file).toEqual({
        status: 'progress',
        name: source,
        file,
        progress: 100,
        loaded: bytes,
        total: bytes,
      });
      for (const e of mine)
        expect(Object.keys(e).sort(), file).toEqual(
          e.status === 'progress'
            ? ['file', 'loaded', 'name', 'progress', 'status', 'total']
            : ['file', 'name', 'status'],
        );
    }
  });
});
