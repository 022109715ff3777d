import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { type Blip2Config, parseBlip2Config, type TextConfig } from '@blip2/configs';
import { loadBlip2Config } from '@blip2/configs/node';
import { fixtures, safetensorsEntries, shapeOnlyWeights } from '@blip2/fixtures';
import { GraphBuildError, type WeightLookup } from '@blip2/onnx';
import { serializeSafetensors, type WeightIndex } from '@blip2/safetensors';
import { openWeightsFromDir, openWeightsFromFile } from '@blip2/safetensors/node';
import { asFloat32, float32, int64, maxAbsDiff, slice, type Tensor } from '@blip2/tensor';
import { buildVisionModel } from '@blip2/vision-encoder';
import { afterAll, describe, expect, it } from 'vitest';
import { buildQFormer, QFORMER_IO, QFormerError, qformerIO } from '../src/index.js';

const TOL = 1e-4;
const backend = createNodeBackend();
const tmp = mkdtempSync(join(tmpdir(), 'qformer-'));
const opened: WeightIndex[] = [];
afterAll(async () => {
  await Promise.all(opened.map((w) => w.close()));
  rmSync(tmp, { recursive: true, force: true });
});

/** The fixture folder as the SDK opens it: config, checkpoint, and the recorded reference tensors. */
async function loadFixture(dir: string) {
  const weights = await openWeightsFromDir(dir);
  const reference = await openWeightsFromFile(join(dir, 'reference.safetensors'));
  opened.push(weights, reference);
  const { cases } = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as {
    cases: { key: string }[];
  };
  return { config: await loadBlip2Config(dir), weights, reference, cases };
}

const f32 = async (w: WeightIndex, name: string) => asFloat32(await w.read(name));

const tinyOpt = await loadFixture(fixtures.tinyOpt);
const tinyT5 = await loadFixture(fixtures.tinyT5);

const withBatch = (t: Tensor<'float32'>) => float32([1, ...t.dims], t.data);
const row = (t: Tensor, i: number) => slice(t, 0, i, i + 1);
const qformerFor = (config: Blip2Config, weights: WeightLookup, imageAttentionMask = false) =>
  buildQFormer(config.qformerConfig, weights, { numQueryTokens: config.numQueryTokens, imageAttentionMask });

for (const [label, fixture] of [
  ['tiny-blip2-opt', tinyOpt],
  ['tiny-blip2-t5', tinyT5],
] as const) {
  describe(`Blip2QFormerModel + language_projection parity: ${label}`, () => {
    const { config, weights, reference, cases } = fixture;

    it('matches qformer_last_hidden_state and language_projection of every case from the reference image embeddings', async () => {
      expect(cases.length).toBeGreaterThan(0);
      const session = await backend.load(qformerFor(config, weights));
      for (const { key } of cases) {
        const out = await session.run({
          image_embeds: withBatch(await f32(reference, `${key}/vision_last_hidden_state`)),
        });
        const hidden = await f32(reference, `${key}/qformer_last_hidden_state`);
        const projected = await f32(reference, `${key}/language_projection`);
        expect(out.last_hidden_state.dims).toEqual([1, ...hidden.dims]);
        expect(out.query_embeds.dims).toEqual([1, ...projected.dims]);
        expect(maxAbsDiff(out.last_hidden_state, withBatch(hidden)), `${key} last_hidden_state`).toBeLessThan(
          TOL,
        );
        expect(maxAbsDiff(out.query_embeds, withBatch(projected)), `${key} query_embeds`).toBeLessThan(TOL);
      }
      await session.release();
    });

    it('chained after the vision graph, from pixel_values: every case and the batch of 2', async () => {
      const vision = await backend.load(buildVisionModel(config.visionConfig, weights));
      const qformer = await backend.load(qformerFor(config, weights));
      const imageSide = async (pixels: Tensor) => {
        const { last_hidden_state } = await vision.run({ pixel_values: pixels });
        return qformer.run({ image_embeds: last_hidden_state });
      };
      for (const { key } of cases) {
        const out = await imageSide(withBatch(await f32(reference, `${key}/pixel_values`)));
        expect(
          maxAbsDiff(
            out.last_hidden_state,
            withBatch(await f32(reference, `${key}/qformer_last_hidden_state`)),
          ),
          key,
        ).toBeLessThan(TOL);
        expect(
          maxAbsDiff(out.query_embeds, withBatch(await f32(reference, `${key}/language_projection`))),
          key,
        ).toBeLessThan(TOL);
      }
      const batchPixels = await f32(reference, 'batch/pixel_values');
      const batch = await imageSide(batchPixels);
      expect(batch.query_embeds.dims[0]).toBe(2);
      // batch/pixel_values[0] is case0's image
      expect(
        maxAbsDiff(
          row(batch.last_hidden_state, 0),
          withBatch(await f32(reference, 'case0/qformer_last_hidden_state')),
        ),
      ).toBeLessThan(TOL);
      expect(
        maxAbsDiff(row(batch.query_embeds, 0), withBatch(await f32(reference, 'case0/language_projection'))),
      ).toBeLessThan(TOL);
      const alone = await imageSide(slice(batchPixels, 0, 1, 2));
      expect(maxAbsDiff(row(batch.query_embeds, 1), alone.query_embeds)).toBeLessThan(1e-5);
      // the two images give different queries: the batch rows are not copies of one another
      expect(maxAbsDiff(row(batch.query_embeds, 0), row(batch.query_embeds, 1))).toBeGreaterThan(1e-2);
      await vision.release();
      await qformer.release();
    });
  });
}

const case1Embeds = withBatch(await f32(tinyOpt.reference, 'case1/vision_last_hidden_state'));

describe('image attention mask', () => {
  const { config, weights, reference } = tinyOpt;
  const embeds = case1Embeds;
  const T = embeds.dims[1];

  it('all ones gives the unmasked result; masked tokens are as if absent', async () => {
    const masked = await backend.load(qformerFor(config, weights, true));
    expect(masked.inputNames).toEqual([QFORMER_IO.imageEmbeds, QFORMER_IO.imageAttentionMask]);
    const ones = await masked.run({
      image_embeds: embeds,
      image_attention_mask: int64([1, T], new Array(T).fill(1)),
    });
    expect(
      maxAbsDiff(ones.query_embeds, withBatch(await f32(reference, 'case1/language_projection'))),
    ).toBeLessThan(TOL);

    const keep = 40;
    const mask = int64(
      [1, T],
      Array.from({ length: T }, (_, i) => (i < keep ? 1 : 0)),
    );
    const partial = await masked.run({ image_embeds: embeds, image_attention_mask: mask });
    const plain = await backend.load(qformerFor(config, weights));
    const truncated = await plain.run({ image_embeds: slice(embeds, 1, 0, keep) });
    expect(maxAbsDiff(partial.query_embeds, truncated.query_embeds)).toBeLessThan(1e-5);
    expect(maxAbsDiff(partial.query_embeds, ones.query_embeds)).toBeGreaterThan(1e-3);
    await masked.release();
    await plain.release();
  });
});

describe('weights stored as float16', () => {
  it('builds over F16 weights and lands near the float32 reference', async () => {
    const { config, weights, reference } = tinyT5;
    const dir = mkdtempSync(join(tmp, 'f16-'));
    const names = [...weights.tensors.keys()].filter((n) => !n.startsWith('language_model.'));
    const tensors = Object.fromEntries(
      await Promise.all(names.map(async (n) => [n, await f32(weights, n)] as const)),
    );
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(safetensorsEntries(tensors, 'F16')));
    const half = await openWeightsFromDir(dir);
    opened.push(half);
    expect(half.get('query_tokens').dtype).toBe('F16');
    const session = await backend.load(qformerFor(config, half));
    const out = await session.run({
      image_embeds: withBatch(await f32(reference, 'case0/vision_last_hidden_state')),
    });
    const err = maxAbsDiff(out.query_embeds, withBatch(await f32(reference, 'case0/language_projection')));
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(2e-2);
    await session.release();
  });
});

describe('bad inputs', () => {
  const { config, weights } = tinyOpt;
  const catchError = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (e) {
      return e;
    }
    throw new Error('expected an error');
  };

  it('names a missing cross-attention weight (layer 2 cross-attends, layer 1 does not)', () => {
    const name = 'qformer.encoder.layer.2.crossattention.attention.key.weight';
    const e = catchError(() => qformerFor(config, { ...weights, has: (n) => n !== name && weights.has(n) }));
    expect(e).toBeInstanceOf(GraphBuildError);
    expect(e).toMatchObject({ code: 'E_MISSING_WEIGHT', weight: name });
    expect(String(e)).toContain(`qformer: checkpoint has no weight '${name}' (expected shape [32,32])`);
    // a config saying every layer cross-attends needs layer 1's cross-attention too
    const every = { ...config, qformerConfig: { ...config.qformerConfig, crossAttentionFrequency: 1 } };
    expect(catchError(() => qformerFor(every, weights))).toMatchObject({
      code: 'E_MISSING_WEIGHT',
      weight: 'qformer.encoder.layer.1.crossattention.attention.query.weight',
    });
  });

  it('names query_tokens when num_query_tokens disagrees with the checkpoint', () => {
    const e = catchError(() => buildQFormer(config.qformerConfig, weights, { numQueryTokens: 32 }));
    expect(e).toBeInstanceOf(GraphBuildError);
    expect(e).toMatchObject({ code: 'E_WEIGHT_SHAPE', weight: 'query_tokens' });
    expect(String(e)).toContain("weight 'query_tokens' has shape [1,5,32], the config implies [1,32,32]");
    const zero = catchError(() => buildQFormer(config.qformerConfig, weights, { numQueryTokens: 0 }));
    expect(zero).toBeInstanceOf(QFormerError);
    expect(zero).toMatchObject({ code: 'E_OPTION' });
  });

  it('names a cross-attention width that disagrees with the image encoder', () => {
    const e = catchError(() =>
      qformerFor({ ...config, qformerConfig: { ...config.qformerConfig, encoderHiddenSize: 48 } }, weights),
    );
    expect(e).toBeInstanceOf(GraphBuildError);
    expect(e).toMatchObject({
      code: 'E_WEIGHT_SHAPE',
      weight: 'qformer.encoder.layer.0.crossattention.attention.key.weight',
    });
  });

  it('rejects an activation it does not implement', () => {
    const e = catchError(() =>
      qformerFor({ ...config, qformerConfig: { ...config.qformerConfig, hiddenAct: 'relu' } }, weights),
    );
    expect(e).toMatchObject({ code: 'E_OPTION' });
    expect(String(e)).toContain("'relu'");
  });

  it('can leave out language_projection', () => {
    const graph = buildQFormer(
      config.qformerConfig,
      { ...weights, has: (n) => !n.startsWith('language_projection') && weights.has(n) },
      {
        numQueryTokens: 5,
        languageProjection: false,
      },
    );
    expect(graph.outputs.map((o) => o.name)).toEqual([QFORMER_IO.lastHiddenState]);
  });
});

describe('real size from manifests.json (graph construction only)', () => {
  const manifests = JSON.parse(readFileSync(fixtures.manifests, 'utf8')) as Record<
    string,
    { config: unknown; weights: Record<string, number[]> }
  >;
  for (const variant of Object.keys(manifests)) {
    it(`builds ${variant}'s Q-Former and projection`, () => {
      const m = manifests[variant];
      const config = parseBlip2Config(m.config, `manifests.json#${variant}`);
      const graph = qformerFor(config, shapeOnlyWeights(m.weights, 'F32'));
      // the manifests are the published variants, whose text configs are OPT's or T5's
      const text = config.textConfig as TextConfig;
      const textWidth = text.modelType === 'opt' ? text.hiddenSize : text.dModel;
      expect(graph.outputs).toEqual(
        qformerIO(config.qformerConfig, { numQueryTokens: config.numQueryTokens }, textWidth).outputs,
      );
      expect(graph.outputs[1].dims).toEqual(['batch', 32, textWidth]);
      expect(graph.inputs[0].dims).toEqual(['batch', 'image_tokens', 1408]);
    });
  }
});
