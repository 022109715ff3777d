// Every model-level API of the SDK against the tensors and token ids transformers
// recorded for the tiny fixtures (tolerance 1e-4 for floats, exact ids).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { float32, logSoftmax, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Blip2Config,
  Blip2ForConditionalGeneration,
  Blip2Model,
  Blip2Processor,
  Blip2QFormerModel,
  Blip2VisionModel,
  parseBlip2Config,
} from '../src/index.js';
import {
  generationOptions,
  ids,
  layerNorm,
  loadReference,
  maxDiff,
  type Reference,
} from './models-reference.js';

const TOL = 1e-4;

describe.each([
  { family: 'opt', dir: fixtures.tinyOpt },
  { family: 't5', dir: fixtures.tinyT5 },
])('tiny-blip2-$family', ({ family, dir }) => {
  let ref: Reference;
  let model: Blip2ForConditionalGeneration;
  beforeAll(async () => {
    ref = await loadReference(dir);
    model = await Blip2ForConditionalGeneration.fromPretrained(dir, { onWarning: () => {} });
  });
  afterAll(async () => {
    await model?.dispose();
    await ref?.close();
  });

  it('Blip2VisionModel.forward: last hidden state and pooled output', async () => {
    const vision = await Blip2VisionModel.fromPretrained(dir);
    try {
      for (const c of ref.cases) {
        const out = await vision.forward(await ref.tensor(`${c.key}/pixel_values`));
        expect(
          maxDiff(out.lastHiddenState, await ref.tensor(`${c.key}/vision_last_hidden_state`)),
        ).toBeLessThan(TOL);
        expect(maxDiff(out.poolerOutput, await ref.tensor(`${c.key}/vision_pooler_output`))).toBeLessThan(
          TOL,
        );
        expect(out.hiddenStates).toBeUndefined();
      }
    } finally {
      await vision.dispose();
    }
  });

  it('Blip2VisionModel.forward with outputHiddenStates: embeddings, each layer, post_layernorm relation', async () => {
    const vision = await Blip2VisionModel.fromPretrained(dir);
    const weights = await openWeightsFromDir(dir);
    try {
      const vc = vision.config.visionConfig;
      const c = ref.cases[0];
      const pixels = await ref.tensor(`${c.key}/pixel_values`);
      const out = await vision.forward(pixels, { outputHiddenStates: true });
      const tokens = (vc.imageSize / vc.patchSize) ** 2 + 1;
      expect(out.hiddenStates).toHaveLength(vc.numHiddenLayers + 1);
      for (const h of out.hiddenStates ?? []) expect(h.dims).toEqual([1, tokens, vc.hiddenSize]);

      // hidden_states[0] = [CLS; patch conv] + position embedding, computed here by hand
      const w = (n: string) => weights.readFloat32(`vision_model.${n}`);
      const [cls, convW, convB, pos] = await Promise.all([
        w('embeddings.class_embedding'),
        w('embeddings.patch_embedding.weight'),
        w('embeddings.patch_embedding.bias'),
        w('embeddings.position_embedding'),
      ]);
      const D = vc.hiddenSize;
      const P = vc.patchSize;
      const S = vc.imageSize;
      const grid = S / P;
      const emb = new Float32Array(tokens * D);
      for (let d = 0; d < D; d++) emb[d] = cls[d] + pos[d];
      for (let py = 0; py < grid; py++) {
        for (let px = 0; px < grid; px++) {
          const t = 1 + py * grid + px;
          for (let d = 0; d < D; d++) {
            let acc = convB[d];
            for (let ch = 0; ch < 3; ch++)
              for (let ky = 0; ky < P; ky++)
                for (let kx = 0; kx < P; kx++)
                  acc +=
                    convW[((d * 3 + ch) * P + ky) * P + kx] *
                    pixels.data[(ch * S + py * P + ky) * S + px * P + kx];
            emb[t * D + d] = acc + pos[t * D + d];
          }
        }
      }
      const hidden = out.hiddenStates ?? [];
      expect(maxDiff(hidden[0], float32([1, tokens, D], emb))).toBeLessThan(TOL);

      // last_hidden_state = post_layernorm(last layer's output); pooled = post_layernorm(last_hidden_state[:, 0])
      const [lnW, lnB] = await Promise.all([w('post_layernorm.weight'), w('post_layernorm.bias')]);
      const last = hidden[vc.numHiddenLayers];
      const normed = layerNorm(last.data, D, lnW, lnB, vc.layerNormEps);
      expect(maxDiff(float32([1, tokens, D], normed), out.lastHiddenState)).toBeLessThan(TOL);
      expect(
        maxDiff(float32([1, tokens, D], normed), await ref.tensor(`${c.key}/vision_last_hidden_state`)),
      ).toBeLessThan(TOL);
      const pooled = layerNorm(normed.subarray(0, D), D, lnW, lnB, vc.layerNormEps);
      expect(maxDiff(float32([1, D], pooled), out.poolerOutput)).toBeLessThan(TOL);
      // the intermediate layers really differ from each other (no output wired twice)
      expect(maxDiff(hidden[0], hidden[1])).toBeGreaterThan(0.01);
    } finally {
      await weights.close();
      await vision.dispose();
    }
  });

  it('Blip2QFormerModel.forward on the reference vision state', async () => {
    const qformer = await Blip2QFormerModel.fromPretrained(dir);
    try {
      for (const c of ref.cases) {
        const out = await qformer.forward(await ref.tensor(`${c.key}/vision_last_hidden_state`));
        expect(
          maxDiff(out.lastHiddenState, await ref.tensor(`${c.key}/qformer_last_hidden_state`)),
        ).toBeLessThan(TOL);
      }
    } finally {
      await qformer.dispose();
    }
  });

  it('Blip2Model: getImageFeatures, getQformerFeatures, getLanguageModelInputs, forward', async () => {
    const m = await Blip2Model.fromPretrained(dir, { onWarning: () => {} });
    try {
      for (const c of ref.cases) {
        const pixels = await ref.tensor(`${c.key}/pixel_values`);
        const image = await m.getImageFeatures(pixels);
        expect(
          maxDiff(image.lastHiddenState, await ref.tensor(`${c.key}/vision_last_hidden_state`)),
        ).toBeLessThan(TOL);
        const q = await m.getQformerFeatures(pixels);
        expect(
          maxDiff(q.lastHiddenState, await ref.tensor(`${c.key}/qformer_last_hidden_state`)),
        ).toBeLessThan(TOL);
        const lm = await m.getLanguageModelInputs(pixels);
        expect(
          maxDiff(lm.languageModelInputs, await ref.tensor(`${c.key}/language_projection`)),
        ).toBeLessThan(TOL);
        const out = await m.forward({
          pixelValues: pixels,
          inputIds: ids([c.input_ids]),
          decoderInputIds: c.decoder_input_ids ? ids([c.decoder_input_ids]) : undefined,
        });
        expect(maxDiff(out.logits, await ref.tensor(`${c.key}/logits`))).toBeLessThan(TOL);
        expect(out.loss).toBeUndefined();
      }
    } finally {
      await m.dispose();
    }
  });

  it('Blip2Model.getTextFeatures: the language model on text alone', async () => {
    // No reference tensor exists for text-only logits; what must hold: shapes, causal
    // prefix invariance (OPT) and that the image really matters in `forward`.
    const c = ref.cases[0];
    const textIds = c.input_ids.filter((t) => t !== model.config.imageTokenIndex);
    const full = await model.getTextFeatures({
      inputIds: ids([textIds]),
      decoderInputIds: c.decoder_input_ids ? ids([c.decoder_input_ids]) : undefined,
    });
    const vocab = model.config.textConfig.vocabSize;
    const withImage = await ref.tensor(`${c.key}/logits`);
    if (family === 'opt') {
      expect(full.logits.dims).toEqual([1, textIds.length, vocab]);
      const half = Math.ceil(textIds.length / 2);
      const prefix = await model.getTextFeatures({ inputIds: ids([textIds.slice(0, half)]) });
      const firstHalf = float32([1, half, vocab], full.logits.data.subarray(0, half * vocab));
      expect(maxDiff(prefix.logits, firstHalf)).toBeLessThan(TOL);
      const textPart = float32(
        [1, textIds.length, vocab],
        withImage.data.subarray((c.input_ids.length - textIds.length) * vocab),
      );
      expect(maxDiff(full.logits, textPart)).toBeGreaterThan(1e-3);
    } else {
      expect(full.logits.dims).toEqual([1, c.decoder_input_ids?.length, vocab]);
      expect(maxDiff(full.logits, withImage)).toBeGreaterThan(1e-3);
    }
  });

  it('Blip2ForConditionalGeneration.forward: logits, and the loss with labels', async () => {
    for (const c of ref.cases) {
      const pixels = await ref.tensor(`${c.key}/pixel_values`);
      const logits = await ref.tensor(`${c.key}/logits`);
      const V = logits.dims[2];
      const row = (t: number) => logSoftmax(logits.data.subarray(t * V, (t + 1) * V));
      let expected = 0;
      let count = 0;
      let out: Awaited<ReturnType<typeof model.forward>>;
      if (family === 'opt') {
        // labels = the prompt with the image positions ignored; position t predicts token t + 1
        const labels = c.input_ids.map((t) => (t === model.config.imageTokenIndex ? -100 : t));
        for (let t = 0; t + 1 < labels.length; t++) {
          if (labels[t + 1] === -100) continue;
          expected -= row(t)[labels[t + 1]];
          count++;
        }
        out = await model.forward({
          pixelValues: pixels,
          inputIds: ids([c.input_ids]),
          labels: ids([labels]),
        });
      } else {
        // T5: decoder_input_ids = shift_right(labels), position t scores label t
        const dec = c.decoder_input_ids ?? [];
        const labels = [...dec.slice(1), 1];
        for (let t = 0; t < labels.length; t++) {
          expected -= row(t)[labels[t]];
          count++;
        }
        out = await model.forward({
          pixelValues: pixels,
          inputIds: ids([c.input_ids]),
          labels: ids([labels]),
        });
      }
      expect(maxDiff(out.logits, logits)).toBeLessThan(TOL);
      expect(count).toBeGreaterThan(0);
      expect(Math.abs((out.loss ?? Number.NaN) - expected / count)).toBeLessThan(TOL);
    }
  });

  it('Blip2ForConditionalGeneration.generate: every reference record', async () => {
    const records = ref.generate;
    expect(records.length).toBeGreaterThanOrEqual(17);
    for (const r of records) {
      let inputs: Parameters<typeof model.generate>[0];
      if (r.name.startsWith('batch/')) {
        expect(r.input_ids && r.attention_mask).toBeTruthy();
        inputs = {
          pixelValues: await ref.tensor('batch/pixel_values', false),
          inputIds: ids(r.input_ids ?? []),
          attentionMask: ids(r.attention_mask ?? []),
        };
      } else {
        const c = ref.cases.find((x) => x.key === r.name.split('/')[0]);
        if (!c) throw new Error(`no case for ${r.name}`);
        inputs = { pixelValues: await ref.tensor(`${c.key}/pixel_values`), inputIds: ids([c.input_ids]) };
      }
      const out = await model.generate(inputs, generationOptions(r.kwargs));
      expect(out.sequences, r.name).toEqual(r.new);
      if (r.sequences_scores) {
        expect(out.sequencesScores, r.name).toHaveLength(r.sequences_scores.length);
        r.sequences_scores.forEach((s, i) => {
          // scores are sums of log-probabilities (beam5_lavis: / length ** -1), so scale the tolerance
          expect(Math.abs((out.sequencesScores?.[i] ?? Number.NaN) - s), r.name).toBeLessThan(
            TOL * Math.max(1, Math.abs(s)),
          );
        });
      } else expect(out.sequencesScores, r.name).toBeUndefined();
    }
  });

  it("Blip2Processor via the SDK (fromPretrained, and the model's): pixels and ids as the reference", async () => {
    const alone = await Blip2Processor.fromPretrained(dir);
    expect(alone).toBeInstanceOf(Blip2Processor);
    expect(model.processor).toBeInstanceOf(Blip2Processor);
    expect(alone.paddingSide).toBe(family === 'opt' ? 'left' : 'right');
    for (const processor of [alone, model.processor]) {
      for (const c of ref.cases) {
        const enc = await processor.process({ images: join(fixtures.images, c.image), text: c.prompt });
        expect(maxDiff(enc.pixelValues as Tensor, await ref.tensor(`${c.key}/pixel_values`))).toBeLessThan(
          1e-5,
        );
        expect(Array.from(enc.inputIds?.data ?? [], Number)).toEqual(c.input_ids);
      }
    }
  });

  it('Blip2Config.fromVisionQformerTextConfigs round-trips the fixture config', () => {
    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const parsed = parseBlip2Config(json, 'config.json');
    const built = Blip2Config.fromVisionQformerTextConfigs(
      parsed.visionConfig,
      parsed.qformerConfig,
      parsed.textConfig,
      {
        numQueryTokens: json.num_query_tokens,
        imageTokenIndex: json.image_token_index,
        imageTextHiddenSize: json.image_text_hidden_size,
        initializerFactor: json.initializer_factor,
        initializerRange: json.initializer_range,
      },
    );
    expect(built).toEqual(parsed);
    expect(built).toEqual(model.config);
    expect(built.textConfig.modelType).toBe(family);
  });
});
