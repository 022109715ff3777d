/**
 * The real answerer (@blip2/sdk on onnxruntime-node) on the shapes-vqa val set against what
 * transformers answered (hf_predictions_*.json): same accuracy, and at least 199 of the 200
 * answers identical, for greedy decoding and for the LAVIS beam recipe, OPT and T5.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fixtures } from '@blip2/fixtures';
import { Blip2Processor } from '@blip2/sdk';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { VqaAnswerer } from '../src/answerer.js';
import { loadQuestions } from '../src/data.js';
import { VqaEvalError } from '../src/errors.js';
import { loadAnswerer } from '../src/load-answerer.js';
import { AS_RECORDED, buildCliFromSources, DECODINGS, runShapesVal, shapes, tempDir } from './helpers.js';

const MODELS = [
  { family: 'opt', dir: fixtures.shapesOpt, accuracy: 77.5 },
  { family: 't5', dir: fixtures.shapesT5, accuracy: 73 },
] as const;

describe.each(MODELS.map((m) => [m.family, m] as const))('shapes-blip2-%s', (family, { dir, accuracy }) => {
  let answerer: VqaAnswerer;
  beforeAll(async () => {
    answerer = await loadAnswerer({ model: dir });
  });
  afterAll(async () => {
    await answerer.close();
  });

  it('reports its family and backend from the checkpoint', () => {
    expect(answerer.family).toBe(family);
    expect(answerer.backend).toBe('node:cpu');
    expect(answerer.model).toBe(dir);
  });

  it.each(['greedy', 'beam5_lavis'] as const)(
    '%s: the reference accuracy and at least 199/200 of its answers',
    async (decoding) => {
      const { outcome, reference, sameAnswers } = await runShapesVal(answerer, decoding);
      expect(reference.accuracy).toBe(accuracy);
      expect(outcome.accuracy?.overall).toBe(reference.accuracy);
      expect(outcome.questions).toBe(200);
      expect(sameAnswers).toBeGreaterThanOrEqual(199);
    },
  );

  it('answers do not depend on how questions are batched (padding, image rows shared)', async () => {
    const in50 = await runShapesVal(answerer, 'greedy');
    // 7 splits image pairs across batches and changes every batch's padded length
    const in7 = await runShapesVal(answerer, 'greedy', { batchSize: 7 });
    expect(in7.outcome.results).toEqual(in50.outcome.results);
  });
});

describe('images are decoded once per batch', () => {
  it('a batch of 50 questions about 25 images preprocesses 25 images', async () => {
    const answerer = await loadAnswerer({ model: fixtures.shapesOpt });
    const process = vi.spyOn(Blip2Processor.prototype, 'process');
    try {
      const questions = loadQuestions(shapes.questions).slice(0, 50);
      const images = new Set(questions.map((q) => q.image_id));
      expect(images.size).toBe(25);
      const { outcome } = await runShapesVal(answerer, 'greedy', { limit: 50 });
      expect(outcome.results).toHaveLength(50);
      expect(process).toHaveBeenCalledTimes(1);
      const call = process.mock.calls[0]![0];
      expect(call.images).toHaveLength(25);
      expect(new Set(call.images as string[]).size).toBe(25);
    } finally {
      process.mockRestore();
      await answerer.close();
    }
  });
});

describe('loading errors', () => {
  it('a model folder that does not exist is E_MODEL naming it', async () => {
    const missing = join(tempDir(), 'no-such-model');
    const err = await loadAnswerer({ model: missing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VqaEvalError);
    expect((err as VqaEvalError).code).toBe('E_MODEL');
    expect((err as VqaEvalError).message).toContain(missing);
  });

  it('an unknown backend is E_ARGS', async () => {
    const err = await loadAnswerer({ model: fixtures.shapesOpt, backend: 'tpu' }).catch((e: unknown) => e);
    expect((err as VqaEvalError).code).toBe('E_ARGS');
    expect((err as VqaEvalError).message).toMatch(/--backend "tpu": expected node or web/);
  });
});

describe('vqa-eval run, end to end in a child process', () => {
  it('shapes-blip2-opt greedy prints the reference accuracy', async () => {
    const cli = await buildCliFromSources();
    const out = join(tempDir(), 'opt-greedy.json');
    const greedy = DECODINGS.greedy;
    const { stdout } = await promisify(execFile)(process.execPath, [
      cli,
      'run',
      '--model',
      fixtures.shapesOpt,
      '--questions',
      shapes.questions,
      '--annotations',
      shapes.annotations,
      '--images',
      shapes.images,
      '--question-preprocess',
      'none',
      '--prompt',
      AS_RECORDED.opt.prompt,
      '--eos-token-ids',
      AS_RECORDED.opt.eosTokenIds.join(','),
      '--padding-side',
      AS_RECORDED.opt.paddingSide,
      '--num-beams',
      String(greedy.numBeams),
      '--min-new-tokens',
      String(greedy.minNewTokens),
      '--max-new-tokens',
      String(greedy.maxNewTokens),
      '--batch-size',
      '50',
      '--out',
      out,
      '--json',
    ]);
    const printed = JSON.parse(stdout);
    expect(printed.accuracy.overall).toBe(77.5);
    expect(printed.questions).toBe(200);
    const reference = new Map(
      (
        JSON.parse(readFileSync(shapes.hfPredictions('opt'), 'utf8')).greedy.results as {
          question_id: number;
          answer: string;
        }[]
      ).map((r) => [r.question_id, r.answer]),
    );
    const written = JSON.parse(readFileSync(out, 'utf8')) as { question_id: number; answer: string }[];
    expect(written).toHaveLength(200);
    expect(written.filter((r) => reference.get(r.question_id) === r.answer).length).toBeGreaterThanOrEqual(
      199,
    );
  });
});
