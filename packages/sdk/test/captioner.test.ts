/**
 * The embedded default, shapes-blip2-opt-captioner, against its captioner_reference.json: greedy
 * captions of the 100 val images (no text, up to 20 new tokens) and greedy answers to the 200 val
 * questions (`Question: {} Answer:`, up to 10 new tokens), token for token, on onnxruntime-node
 * (CPU) and onnxruntime-web (wasm, in Node). The reference comes from a PyTorch re-implementation
 * of Blip2ForConditionalGeneration that matches transformers' tensors on tiny-blip2-opt to 1.1e-6,
 * not from transformers itself (tooling/fixtures/README.md).
 *
 * Both checks are one batch each, so the image side runs once per image: 100 images for the
 * captions, and the 100 images again for the 200 questions (two per image, rows shared).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2ForConditionalGeneration } from '../src/index.js';

interface Reference {
  captions_greedy: { image_id: number; input_ids: number[]; token_ids: number[]; caption: string }[];
  answers_greedy: { question_id: number; token_ids: number[]; answer: string }[];
}
const reference = JSON.parse(
  readFileSync(join(fixtures.shapesCaptioner, 'captioner_reference.json'), 'utf8'),
) as Reference;
const questions = (
  JSON.parse(readFileSync(join(fixtures.shapesVal, 'questions.json'), 'utf8')) as {
    questions: { image_id: number; question: string; question_id: number }[];
  }
).questions;
const imagePath = (id: number) =>
  join(fixtures.shapesVal, 'images', `COCO_val2014_${String(id).padStart(12, '0')}.jpg`);

/**
 * A generated row up to its end of sequence: rows that end before the longest one in a batch are
 * padded after it (with pad_token_id, as transformers pads them), which a lone run has not.
 */
function untilEos(row: readonly number[], eos: number): number[] {
  const end = row.indexOf(eos);
  return end < 0 ? [...row] : row.slice(0, end + 1);
}

describe.each(['node', 'web'] as const)('shapes-blip2-opt-captioner on backend %s', (backend) => {
  let model: Blip2ForConditionalGeneration;
  let eos: number;
  beforeAll(async () => {
    model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesCaptioner, { backend });
    eos = model.config.textConfig.eosTokenId as number;
    expect(model.backendName).toBe(backend === 'node' ? 'node:cpu' : 'web:wasm');
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('greedy captions of the 100 val images equal the reference token for token', async () => {
    expect(reference.captions_greedy).toHaveLength(100);
    const { pixelValues } = await model.processor.process({
      images: reference.captions_greedy.map((c) => imagePath(c.image_id)),
    });
    // no text: the prompt is the query tokens' <image> placeholders and BOS, as the reference's
    const imageToken = model.config.imageTokenIndex as number;
    const bos = (model.config.textConfig as { bosTokenId?: number }).bosTokenId;
    for (const c of reference.captions_greedy)
      expect(c.input_ids).toEqual([...new Array(model.config.numQueryTokens).fill(imageToken), bos]);
    const out = await model.generate({ pixelValues: pixelValues! }, { maxNewTokens: 20 });
    const got = out.sequences.map((s) => untilEos(s, eos));
    expect(got).toEqual(reference.captions_greedy.map((c) => c.token_ids));
    const texts = got.map((s) => model.processor.decode(s, { skipSpecialTokens: true }).trim());
    expect(texts).toEqual(reference.captions_greedy.map((c) => c.caption));
  });

  it('greedy answers to the 200 val questions equal the reference token for token', async () => {
    expect(reference.answers_greedy.map((a) => a.question_id)).toEqual(questions.map((q) => q.question_id));
    const imageIds = [...new Set(questions.map((q) => q.image_id))];
    const { pixelValues } = await model.processor.process({ images: imageIds.map(imagePath) });
    const { inputIds, attentionMask } = model.processor.encodeText(
      // the reference's prompt (captioner_reference.json), explicit rather than a protocol's
      questions.map((q) => `Question: ${q.question} Answer:`),
    );
    const out = await model.generate(
      {
        pixelValues: pixelValues!,
        inputIds,
        attentionMask,
        imageRows: questions.map((q) => imageIds.indexOf(q.image_id)),
      },
      { numBeams: 1, maxNewTokens: 10 },
    );
    const got = out.sequences.map((s) => untilEos(s, eos));
    expect(got).toEqual(reference.answers_greedy.map((a) => a.token_ids));
    expect(got.map((s) => model.processor.decode(s, { skipSpecialTokens: true }).trim())).toEqual(
      reference.answers_greedy.map((a) => a.answer),
    );
  });
});
