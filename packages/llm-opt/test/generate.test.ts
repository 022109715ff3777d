import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { parseBlip2Config } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import { generate, generationOptionsFromConfig, mergeQueryEmbeds } from '@blip2/generation';
import { buildQFormer, QFORMER_IO } from '@blip2/qformer';
import { gather, int64, maxAbsDiff, type Tensor } from '@blip2/tensor';
import { buildVisionModel, VISION_MODEL_IO } from '@blip2/vision-encoder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type GenerateRecord, ids, ones, openTiny, type Tiny } from './tiny.js';

let tiny: Tiny;
beforeAll(async () => {
  tiny = await openTiny();
});
afterAll(async () => {
  await tiny.close();
});

const records = (
  JSON.parse(readFileSync(join(fixtures.tinyOpt, 'reference.json'), 'utf8')) as { generate: GenerateRecord[] }
).generate;
const generationConfig = JSON.parse(readFileSync(join(fixtures.tinyOpt, 'generation_config.json'), 'utf8'));

/** What transformers' generate ran with: the checkpoint's generation_config.json overridden by the call's kwargs. */
function optionsOf(rec: GenerateRecord) {
  return generationOptionsFromConfig({ ...generationConfig, ...rec.kwargs }, `${rec.name} kwargs`);
}

async function expectRecord(rec: GenerateRecord, out: { sequences: number[][]; sequencesScores?: number[] }) {
  expect(out.sequences, rec.name).toEqual(rec.new);
  if (rec.sequences_scores) {
    expect(out.sequencesScores).toBeDefined();
    const diffs = rec.sequences_scores.map((s, i) => Math.abs(s - (out.sequencesScores?.[i] ?? Number.NaN)));
    console.log(
      `${rec.name}: sequences_scores [${out.sequencesScores}] vs [${rec.sequences_scores}], max |diff| ${Math.max(...diffs).toExponential(2)}`,
    );
    for (const d of diffs) expect(d, rec.name).toBeLessThanOrEqual(1e-4);
  }
}

describe('generate over the OPT adapter reproduces every record of tiny-blip2-opt', () => {
  const single = records.filter((r) => r.name.startsWith('case'));
  it('covers greedy, min_new_tokens, repetition penalty, 4 beams and the LAVIS recipe', () => {
    expect(single.length).toBe(15);
    expect(new Set(single.map((r) => r.name.split('/')[1]))).toEqual(
      new Set(['greedy', 'greedy_min', 'greedy_rep', 'beam4', 'beam5_lavis']),
    );
  });

  for (const rec of single) {
    it(rec.name, async () => {
      const index = Number(rec.name.match(/^case(\d+)\//)?.[1]);
      const prompt = tiny.json.cases[index].input_ids;
      const inputIds = ids([prompt]);
      const query = await tiny.ref(`case${index}/language_projection`, [
        1,
        tiny.json.num_query_tokens,
        tiny.config.hiddenSize,
      ]);
      const inputsEmbeds = mergeQueryEmbeds(
        await tiny.adapter.embed(inputIds),
        inputIds,
        query,
        tiny.imageTokenId,
      );
      const out = await generate(
        tiny.adapter,
        { inputsEmbeds, attentionMask: ones(1, prompt.length), inputIds },
        optionsOf(rec),
      );
      await expectRecord(rec, out);
    });
  }
});

/**
 * The fixture stores the batch's pixels, not its projected query embeddings (its
 * second image is none of the cases'): run them through the vision model and the
 * Q-Former + language_projection graphs of the sibling packages.
 */
async function batchQueryEmbeds(): Promise<Tensor<'float32'>> {
  const blip2 = parseBlip2Config(JSON.parse(readFileSync(join(fixtures.tinyOpt, 'config.json'), 'utf8')));
  const backend = createNodeBackend();
  const vision = await backend.load(buildVisionModel(blip2.visionConfig, tiny.weights));
  const qformer = await backend.load(
    buildQFormer(blip2.qformerConfig, tiny.weights, { numQueryTokens: blip2.numQueryTokens }),
  );
  const pixels = await tiny.ref('batch/pixel_values');
  const image = await vision.run({ [VISION_MODEL_IO.pixelValues]: pixels });
  const out = await qformer.run({ [QFORMER_IO.imageEmbeds]: image[VISION_MODEL_IO.lastHiddenState] });
  await Promise.all([vision.release(), qformer.release()]);
  return out[QFORMER_IO.queryEmbeds] as Tensor<'float32'>;
}

describe('generate over the OPT adapter on the left-padded batch', () => {
  const batch = records.filter((r) => r.name.startsWith('batch/'));
  let query: Tensor<'float32'>;
  beforeAll(async () => {
    query = await batchQueryEmbeds();
  });

  it("has greedy and 3-beam records, and image 0 of the batch is case0's", async () => {
    expect(batch.map((r) => r.name).sort()).toEqual(['batch/beam3', 'batch/greedy_min']);
    // checks the vision + Q-Former path this test relies on against the stored projection
    const q = tiny.json.num_query_tokens;
    const diff = maxAbsDiff(
      gather(query, 0, [0]),
      await tiny.ref('case0/language_projection', [1, q, tiny.config.hiddenSize]),
    );
    console.log(`batch row 0 projection vs case0: max |diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-4);
  });

  it('prefills the padded batch: row 0, case0 image and prompt, has the logits of case0', async () => {
    const rec = batch[0];
    if (!rec.input_ids || !rec.attention_mask) throw new Error(`${rec.name} has no input_ids/attention_mask`);
    expect(rec.input_ids[0]).toEqual(tiny.json.cases[0].input_ids);
    const [b, t] = [rec.input_ids.length, rec.input_ids[0].length];
    const inputIds = ids(rec.input_ids);
    const inputsEmbeds = mergeQueryEmbeds(
      await tiny.adapter.embed(inputIds),
      inputIds,
      query,
      tiny.imageTokenId,
    );
    const mask = int64([b, t], rec.attention_mask.flat());
    const logits = await tiny.adapter.forward(inputsEmbeds, mask);
    // generation's prefill: the same numbers at the last position, and only there
    const prefilled = await tiny.adapter.prefill(inputsEmbeds, mask);
    expect(prefilled.logits.dims).toEqual([b, 1, tiny.config.vocabSize]);
    expect(maxAbsDiff(prefilled.logits, gather(logits, 1, [t - 1]))).toBeLessThanOrEqual(1e-5);
    const diff = maxAbsDiff(
      gather(logits, 0, [0]),
      await tiny.ref('case0/logits', [1, t, tiny.config.vocabSize]),
    );
    console.log(`batch row 0 logits vs case0: max |diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-4);
  });

  for (const rec of batch) {
    it(rec.name, async () => {
      if (!rec.input_ids || !rec.attention_mask)
        throw new Error(`${rec.name} has no input_ids/attention_mask`);
      const [b, t] = [rec.input_ids.length, rec.input_ids[0].length];
      const inputIds = ids(rec.input_ids);
      const attentionMask = int64([b, t], rec.attention_mask.flat());
      expect(rec.attention_mask[1]).toContain(0); // really left padded
      const inputsEmbeds = mergeQueryEmbeds(
        await tiny.adapter.embed(inputIds),
        inputIds,
        query,
        tiny.imageTokenId,
      );
      const out = await generate(tiny.adapter, { inputsEmbeds, attentionMask, inputIds }, optionsOf(rec));
      await expectRecord(rec, out);
    });
  }
});
