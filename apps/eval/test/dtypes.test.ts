/**
 * VQA accuracy of both shapes-vqa models on val per weight format (the SDK quantizing
 * each checkpoint at load, as `blip2 export` would), greedy decoding, against the
 * float32 reference: fp16 must keep 77.50 / 73.00, q8 within 1 point, q4 within 5.
 * The figures are deterministic (fixed weights, one onnxruntime build): the ones
 * docs/benchmarks.md reports.
 */
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { loadAnswerer } from '../src/load-answerer.js';
import { runShapesVal, tempDir } from './helpers.js';

const MODELS = [
  { family: 'opt', dir: fixtures.shapesOpt, accuracy: 77.5 },
  { family: 't5', dir: fixtures.shapesT5, accuracy: 73 },
] as const;

/** how far each dtype may fall below float32 (the bounds) */
const BOUND = { fp16: 0, q8: 1, q4: 5, q4f16: 5 } as const;

const cacheDir = tempDir();

describe.each(MODELS.map((m) => [m.family, m] as const))('shapes-blip2-%s', (family, { dir, accuracy }) => {
  it.each(Object.keys(BOUND) as (keyof typeof BOUND)[])(
    '%s: greedy accuracy within its bound',
    async (dtype) => {
      const answerer = await loadAnswerer({ model: dir, dtype, cacheDir });
      try {
        const { outcome, sameAnswers } = await runShapesVal(answerer, 'greedy');
        console.log(
          `shapes-${family} ${dtype}: accuracy ${outcome.accuracy?.overall}, same answers ${sameAnswers}/200`,
        );
        expect(outcome.questions).toBe(200);
        if (dtype === 'fp16') expect(outcome.accuracy?.overall).toBe(accuracy);
        else expect(outcome.accuracy?.overall).toBeGreaterThanOrEqual(accuracy - BOUND[dtype]);
      } finally {
        await answerer.close();
      }
    },
  );
});
