/**
 * The generation semantics against transformers' own outputs: every single-image
 * `generate` record of tiny-blip2-opt (greedy, min_new_tokens, repetition penalty,
 * 4 beams, the LAVIS recipe), driven through a plain-TypeScript OPT over the
 * fixture weights and the recorded query embeddings (`case{i}/language_projection`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { readSafetensorsFile } from '@blip2/safetensors/node';
import { asFloat32, float32, int64, maxAbsDiff } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { type GenerateRecord, replayGenerateRecord } from './helpers/reference.js';
import { TinyOpt } from './helpers/tiny-opt.js';

const dir = fixtures.tinyOpt;
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const generationConfig = JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'));
const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as {
  cases: { input_ids: number[] }[];
  generate: GenerateRecord[];
  image_token_id: number;
};
const tensors = await readSafetensorsFile(join(dir, 'reference.safetensors'));
const model = await TinyOpt.load(join(dir, 'model.safetensors'), config.text_config);

/** BLIP-2's merge: token embeddings with the image-token positions replaced by the query embeddings. */
async function inputsFor(caseIndex: number) {
  const ids = reference.cases[caseIndex].input_ids;
  const inputIds = int64([1, ids.length], ids);
  const embeds = await model.embed(inputIds);
  const query = asFloat32(tensors.get(`case${caseIndex}/language_projection`)!);
  const d = config.text_config.hidden_size;
  let q = 0;
  ids.forEach((id, i) => {
    if (id === reference.image_token_id) embeds.data.set(query.data.subarray(q * d, ++q * d), i * d);
  });
  return {
    inputsEmbeds: embeds,
    attentionMask: int64(
      [1, ids.length],
      ids.map(() => 1),
    ),
    inputIds,
  };
}

describe('the test OPT itself', () => {
  it('reproduces the reference logits of every case (max |diff| <= 1e-4)', async () => {
    for (let c = 0; c < reference.cases.length; c++) {
      const inputs = await inputsFor(c);
      const { logits } = await model.prefill(inputs.inputsEmbeds, inputs.attentionMask);
      const expected = tensors.get(`case${c}/logits`)!;
      const diff = maxAbsDiff(float32([...logits.dims.slice(1)], logits.data), expected);
      expect(diff).toBeLessThan(1e-4);
    }
  });
});

describe('generate against transformers (tiny-blip2-opt reference.json)', () => {
  const records = reference.generate.filter((r) => r.name.startsWith('case'));
  it('has the 15 single-image records', () => {
    expect(records.length).toBe(15);
  });
  for (const record of records) {
    it(`${record.name} ${JSON.stringify(record.kwargs)}`, async () => {
      const caseIndex = Number(/^case(\d+)\//.exec(record.name)![1]);
      const result = await replayGenerateRecord(model, record, await inputsFor(caseIndex), generationConfig);
      expect(result.output.sequences).toEqual(record.new);
      if (record.sequences_scores) {
        expect(result.output.sequencesScores).toHaveLength(record.sequences_scores.length);
        expect(result.scoreDiff).toBeLessThan(1e-4);
      } else {
        expect(result.output.sequencesScores).toBeUndefined();
      }
    });
  }
});
