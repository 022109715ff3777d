import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import {
  type GenerationOptions,
  generate,
  generationOptionsFromConfig,
  mergeQueryEmbeds,
} from '@blip2/generation';
import { buildQFormer, QFORMER_IO } from '@blip2/qformer';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { int64, maxAbsDiff, reshape, slice, type Tensor } from '@blip2/tensor';
import { buildVisionModel, VISION_MODEL_IO } from '@blip2/vision-encoder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildT5, T5Adapter } from '../src/index.js';
import { type GenerateRecord, readReference, tinyT5 } from './helpers.js';

const { dir, blip2, config, reference } = tinyT5();
const ref = await readReference(dir);
const imageTokenId = blip2.imageTokenIndex as number;
// transformers merges the checkpoint's generation_config.json under the call's kwargs
const defaults = generationOptionsFromConfig(
  JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')),
);
let adapter: T5Adapter;
let batchQueryEmbeds: Tensor<'float32'>;
let weights: Awaited<ReturnType<typeof openWeightsFromDir>>;

beforeAll(async () => {
  weights = await openWeightsFromDir(dir);
  const backend = createNodeBackend();
  adapter = await T5Adapter.load(config, buildT5(config, weights), backend);
  // the fixture stores no query embeddings for the batch images: run the image side
  const vision = await backend.load(buildVisionModel(blip2.visionConfig, weights));
  const qformer = await backend.load(
    buildQFormer(blip2.qformerConfig, weights, { numQueryTokens: blip2.numQueryTokens }),
  );
  const image = await vision.run({ [VISION_MODEL_IO.pixelValues]: ref('batch/pixel_values') });
  const q = await qformer.run({ [QFORMER_IO.imageEmbeds]: image[VISION_MODEL_IO.lastHiddenState] });
  batchQueryEmbeds = q[QFORMER_IO.queryEmbeds] as Tensor<'float32'>;
  await Promise.all([vision.release(), qformer.release()]);
});
// the weight files' handles are closed here, not left to the garbage collector (DEP0137)
afterAll(async () => {
  await adapter?.release();
  await weights?.close();
});

function optionsOf(record: GenerateRecord): GenerationOptions {
  return { ...defaults, ...generationOptionsFromConfig(record.kwargs, record.name) };
}

async function promptOf(ids: number[][], mask: number[][], queryEmbeds: Tensor<'float32'>) {
  const B = ids.length;
  const T = ids[0].length;
  const inputIds = int64([B, T], ids.flat());
  const inputsEmbeds = mergeQueryEmbeds(await adapter.embed(inputIds), inputIds, queryEmbeds, imageTokenId);
  return { inputsEmbeds, attentionMask: int64([B, T], mask.flat()) };
}

function expectScores(actual: number[] | undefined, expected: number[] | undefined): void {
  if (expected === undefined) return;
  expect(actual).toHaveLength(expected.length);
  expected.forEach((s, i) => {
    expect(Math.abs((actual as number[])[i] - s)).toBeLessThan(1e-4);
  });
}

describe('generate() over T5Adapter reproduces every tiny-blip2-t5 record', () => {
  const single = reference.generate.filter((r) => r.name.startsWith('case'));
  it('has the records the issue lists', () => {
    expect(single.map((r) => r.name.split('/')[1])).toEqual(
      expect.arrayContaining(['greedy', 'greedy_min', 'greedy_rep', 'beam4', 'beam5_lavis']),
    );
    expect(reference.generate.filter((r) => r.name.startsWith('batch/')).length).toBeGreaterThan(0);
  });

  for (const record of single) {
    it(record.name, async () => {
      const i = Number(record.name.match(/^case(\d+)\//)?.[1]);
      const ids = reference.cases[i].input_ids;
      const query = ref(`case${i}/language_projection`);
      const prompt = await promptOf([ids], [ids.map(() => 1)], reshape(query, [1, ...query.dims]));
      const out = await generate(adapter, prompt, optionsOf(record));
      expect(out.sequences).toEqual(record.new);
      expectScores(out.sequencesScores, record.sequences_scores);
    });
  }

  it('computes the batch query embeddings as the reference does (row 0 is case0 image)', () => {
    const row0 = reshape(slice(batchQueryEmbeds, 0, 0, 1), ref('case0/language_projection').dims);
    expect(maxAbsDiff(row0, ref('case0/language_projection'))).toBeLessThan(1e-4);
  });

  for (const record of reference.generate.filter((r) => r.name.startsWith('batch/'))) {
    it(`${record.name} (right-padded batch)`, async () => {
      const prompt = await promptOf(
        record.input_ids as number[][],
        record.attention_mask as number[][],
        batchQueryEmbeds,
      );
      const out = await generate(adapter, prompt, optionsOf(record));
      expect(out.sequences).toEqual(record.new);
      expectScores(out.sequencesScores, record.sequences_scores);
    });
  }
});
