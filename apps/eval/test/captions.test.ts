/**
 * `vqa-eval captions` and the captioner's numbers: the embedded default (shapes-blip2-opt-captioner)
 * captions the 100 val images as its captioner_reference.json does, and gets the exact-caption
 * rate and VQA accuracy (official metric, greedy) that those references imply. The references come
 * from a PyTorch re-implementation of Blip2ForConditionalGeneration that matches transformers'
 * tensors on tiny-blip2-opt to 1.1e-6 (not from transformers itself).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VqaAnswerer } from '../src/answerer.js';
import { loadCaptions, runCaptions, scoreCaptions, tokenF1 } from '../src/captions.js';
import { main } from '../src/command.js';
import { loadAnnotations } from '../src/data.js';
import { VqaEvalError } from '../src/errors.js';
import { claimOutputs } from '../src/fs-util.js';
import { loadAnswerer } from '../src/load-answerer.js';
import { progressPathFor } from '../src/run.js';
import { scoreVqa } from '../src/vqa-eval.js';
import { runShapesVal, shapes, tempDir } from './helpers.js';

const captionsPath = join(fixtures.shapesVal, 'captions.json');
const reference = JSON.parse(
  readFileSync(join(fixtures.shapesCaptioner, 'captioner_reference.json'), 'utf8'),
) as {
  captions_greedy: { image_id: number; caption: string }[];
  answers_greedy: { question_id: number; answer: string }[];
};

describe('caption scores', () => {
  it('token F1 is the SQuAD bag-of-tokens F1 after lowercasing and dropping punctuation', () => {
    // shared: a, red (2 of 3 each way)
    expect(tokenF1('a red circle', 'a red square')).toBeCloseTo(2 / 3, 12);
    // shared: a x2, red, circle, and -> P 5/5, R 5/7
    expect(tokenF1('a red circle and a', 'A red circle, and a blue square.')).toBeCloseTo(
      (2 * 1 * (5 / 7)) / (1 + 5 / 7),
      12,
    );
    // counts matter: "a a" shares one "a" with "a"
    expect(tokenF1('a a', 'a')).toBeCloseTo((2 * 0.5 * 1) / 1.5, 12);
    expect(tokenF1('', '')).toBe(1);
    expect(tokenF1('', 'a red circle')).toBe(0);
    expect(tokenF1('blue', 'red')).toBe(0);
  });

  it('exact match is character for character (after trimming); several true captions take the best', () => {
    const truth = new Map([
      [1, ['a red circle']],
      [2, ['a blue square', 'a green square']],
    ]);
    const s = scoreCaptions(
      [
        { image_id: 1, caption: 'A red circle' },
        { image_id: 2, caption: ' a green square ' },
      ],
      truth,
    );
    expect(s.exact).toBe(1);
    expect(s.exactMatch).toBe(50);
    expect(s.f1).toBeCloseTo(100, 10);
  });

  it('a malformed captions file names the file and the entry', () => {
    const dir = tempDir();
    const bad = join(dir, 'captions.json');
    writeFileSync(
      bad,
      JSON.stringify([
        { image_id: 1, caption: 'a' },
        { image_id: '2', caption: 'b' },
      ]),
    );
    expect(() => loadCaptions(bad)).toThrow(VqaEvalError);
    expect(() => loadCaptions(bad)).toThrow(`${bad}: [1].image_id must be an integer (got "2")`);
    writeFileSync(bad, JSON.stringify({ images: [] }));
    expect(() => loadCaptions(bad)).toThrow(/must be an array of \{image_id, caption\}/);
  });

  it('reads COCO captions ({annotations}) with several captions per image', () => {
    const dir = tempDir();
    const coco = join(dir, 'coco.json');
    writeFileSync(
      coco,
      JSON.stringify({
        annotations: [
          { image_id: 7, id: 1, caption: 'x' },
          { image_id: 7, id: 2, caption: 'y' },
        ],
      }),
    );
    expect(loadCaptions(coco)).toEqual(new Map([[7, ['x', 'y']]]));
  });
});

describe('shapes-blip2-opt-captioner on the val set', () => {
  let answerer: VqaAnswerer;
  beforeAll(async () => {
    answerer = await loadAnswerer({ model: fixtures.shapesCaptioner });
  });
  afterAll(async () => {
    await answerer.close();
  });

  it('captions the 100 val images as the reference does: exact captions and token F1 of those captions', async () => {
    const outcome = await runCaptions({ answerer, captionsPath, imagesDir: shapes.images, batchSize: 50 });
    expect(outcome.results).toEqual(
      reference.captions_greedy.map((c) => ({ image_id: c.image_id, caption: c.caption })),
    );
    const expected = scoreCaptions(reference.captions_greedy, loadCaptions(captionsPath));
    expect(outcome.scores).toEqual(expected);
    expect(expected.exact).toBe(18);
    console.log(
      `shapes-blip2-opt-captioner: captions exactly right ${outcome.scores.exact}/100, token F1 ${outcome.scores.f1.toFixed(2)}`,
    );
  });

  it("greedy VQA accuracy on val is the reference answers' (official metric)", async () => {
    const { outcome } = await runShapesVal(answerer, 'greedy');
    const answers = new Map(reference.answers_greedy.map((a) => [a.question_id, a.answer]));
    expect(outcome.results.map((r) => r.answer)).toEqual(
      outcome.results.map((r) => answers.get(r.question_id)),
    );
    const expected = scoreVqa(loadAnnotations(shapes.annotations), reference.answers_greedy).overall;
    expect(expected).toBe(75.7);
    expect(outcome.accuracy?.overall).toBe(expected);
  });

  it('vqa-eval captions: prints the scores, writes results and report; an interrupted run resumes', async () => {
    const dir = tempDir();
    const out = join(dir, 'captions_results.json');
    const args = ['captions', '--model', fixtures.shapesCaptioner, '--captions', captionsPath];
    const lines: string[] = [];
    const io = { stdout: (t: string) => lines.push(t), stderr: (t: string) => lines.push(t) };
    // stop after the first batch of 16: the signal is aborted once the first captions are logged
    const controller = new AbortController();
    const aborting = {
      ...io,
      signal: controller.signal,
      progressStream: {
        isTTY: false,
        write: () => true,
      },
    };
    const interrupt = setInterval(() => {
      if (existsSync(progressPathFor(out)) && readFileSync(progressPathFor(out), 'utf8').includes('answers'))
        controller.abort();
    }, 1);
    let code: number;
    try {
      code = await main([...args, '--images', shapes.images, '--out', out, '--batch-size', '16'], aborting);
    } finally {
      clearInterval(interrupt);
    }
    expect(code).toBe(130);
    expect(lines.join('')).toMatch(/E_ABORTED: interrupted after \d+ of 100 images/);
    lines.length = 0;
    expect(
      await main([...args, '--images', shapes.images, '--out', out, '--batch-size', '16', '--resume'], io),
    ).toBe(0);
    expect(lines.join('')).toContain('captions exactly right 18/100 (18.00%), token F1');
    const written = JSON.parse(readFileSync(out, 'utf8'));
    expect(written).toEqual(
      reference.captions_greedy.map((c) => ({ image_id: c.image_id, caption: c.caption })),
    );
    const report = JSON.parse(readFileSync(`${out}.report.json`, 'utf8'));
    expect(report.scores.exact).toBe(18);
    expect(report.timings.resumed).toBeGreaterThan(0);
    expect(existsSync(progressPathFor(out))).toBe(false);
  });

  it('an --out held by a live run is refused before anything loads (E_OUT_LOCKED)', async () => {
    const out = join(tempDir(), 'held.json');
    const lock = claimOutputs(out, [progressPathFor(out)], 'vqa-eval captions');
    try {
      const lines: string[] = [];
      const io = { stdout: (t: string) => lines.push(t), stderr: (t: string) => lines.push(t) };
      const args = [
        'captions',
        '--model',
        'no-such-model',
        '--captions',
        captionsPath,
        '--images',
        shapes.images,
      ];
      expect(await main([...args, '--out', out], io)).toBe(1);
      expect(lines.join('')).toMatch(/E_OUT_LOCKED: --out .*held\.json is in use by a live run/);
    } finally {
      lock.release();
    }
  });

  it('a missing image is named before the model loads', async () => {
    const lines: string[] = [];
    const io = { stdout: (t: string) => lines.push(t), stderr: (t: string) => lines.push(t) };
    const code = await main(
      ['captions', '--model', 'no-such-model', '--captions', captionsPath, '--images', tempDir()],
      io,
    );
    expect(code).toBe(1);
    expect(lines.join('')).toMatch(/E_IMAGE_MISSING: 100 image\(s\) of .*captions\.json not found/);
  });
});
