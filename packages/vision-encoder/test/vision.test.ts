import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { type Blip2VisionConfig, parseBlip2Config } from '@blip2/configs';
import { fixtures, type StoreAs, safetensorsEntries, shapeOnlyWeights } from '@blip2/fixtures';
import { GraphBuildError, type WeightLookup } from '@blip2/onnx';
import { serializeSafetensors, type WeightIndex } from '@blip2/safetensors';
import { openWeightsFromDir, openWeightsFromFile } from '@blip2/safetensors/node';
import { asFloat32, float32, maxAbsDiff, slice, type Tensor } from '@blip2/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { buildVisionModel, VISION_MODEL_IO, VisionEncoderError, visionModelIO } from '../src/index.js';

const TOL = 1e-4;
const backend = createNodeBackend();
const tmp = mkdtempSync(join(tmpdir(), 'vision-encoder-'));

const opened: WeightIndex[] = [];
afterAll(() => Promise.all(opened.map((w) => w.close())));

/** A checkpoint folder, or one .safetensors file, as @blip2/safetensors opens it. */
async function open(path: string): Promise<WeightIndex> {
  const weights = await (path.endsWith('.safetensors')
    ? openWeightsFromFile(path)
    : openWeightsFromDir(path));
  opened.push(weights);
  return weights;
}

/** A stored tensor widened to float32. */
const f32 = async (w: WeightIndex, name: string) => asFloat32(await w.read(name));

/** Writes float32 tensors as a safetensors file, rounded to F16 / BF16 when asked. */
function writeCheckpoint(path: string, tensors: Record<string, Tensor<'float32'>>, as: StoreAs = 'F32') {
  writeFileSync(path, serializeSafetensors(safetensorsEntries(tensors, as)));
}

/** Every tensor of `w`, widened to float32, by name. */
async function readAll(w: WeightIndex, names = [...w.tensors.keys()]) {
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await f32(w, n)] as const)));
}

async function loadFixture(dir: string) {
  const config = parseBlip2Config(
    JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    join(dir, 'config.json'),
  );
  const weights = await open(dir);
  const reference = await open(join(dir, 'reference.safetensors'));
  const cases = (
    JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { cases: { key: string }[] }
  ).cases;
  return { config, weights, reference, cases };
}

async function runVision(
  config: Blip2VisionConfig,
  weights: WeightLookup,
  pixelValues: Tensor,
  outputHiddenStates = false,
) {
  const session = await backend.load(buildVisionModel(config, weights, { outputHiddenStates }));
  try {
    return await session.run({ pixel_values: pixelValues });
  } finally {
    await session.release();
  }
}

const withBatch = (t: Tensor<'float32'>) => float32([1, ...t.dims], t.data);

/** A float32 layer norm over the last axis, in float64, for checks outside the graph. */
function layerNormRows(
  x: Tensor<'float32'>,
  w: Tensor<'float32'>,
  b: Tensor<'float32'>,
  eps: number,
): Tensor<'float32'> {
  const D = x.dims[x.dims.length - 1];
  const out = new Float32Array(x.data.length);
  for (let r = 0; r < x.data.length / D; r++) {
    let mean = 0;
    for (let i = 0; i < D; i++) mean += x.data[r * D + i];
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x.data[r * D + i] - mean) ** 2;
    v /= D;
    for (let i = 0; i < D; i++)
      out[r * D + i] = ((x.data[r * D + i] - mean) / Math.sqrt(v + eps)) * w.data[i] + b.data[i];
  }
  return float32(x.dims, out);
}

/** Blip2VisionEmbeddings in plain TypeScript (Conv as patch dot products), to check `hidden_states.0`. */
async function embeddingsReference(
  config: Blip2VisionConfig,
  w: WeightIndex,
  pixels: Tensor<'float32'>,
): Promise<Tensor<'float32'>> {
  const { hiddenSize: D, patchSize: P, imageSize: S } = config;
  const grid = S / P;
  const kernel = (await f32(w, 'vision_model.embeddings.patch_embedding.weight')).data;
  const bias = (await f32(w, 'vision_model.embeddings.patch_embedding.bias')).data;
  const cls = (await f32(w, 'vision_model.embeddings.class_embedding')).data;
  const pos = (await f32(w, 'vision_model.embeddings.position_embedding')).data;
  const out = new Float32Array((1 + grid * grid) * D);
  for (let d = 0; d < D; d++) out[d] = cls[d] + pos[d];
  for (let py = 0; py < grid; py++) {
    for (let px = 0; px < grid; px++) {
      const t = 1 + py * grid + px;
      for (let d = 0; d < D; d++) {
        let s = bias[d];
        for (let c = 0; c < 3; c++)
          for (let ky = 0; ky < P; ky++)
            for (let kx = 0; kx < P; kx++)
              s +=
                kernel[((d * 3 + c) * P + ky) * P + kx] *
                pixels.data[(c * S + py * P + ky) * S + px * P + kx];
        out[t * D + d] = s + pos[t * D + d];
      }
    }
  }
  return float32([1, 1 + grid * grid, D], out);
}

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tinyOpt = await loadFixture(fixtures.tinyOpt);
const tinyT5 = await loadFixture(fixtures.tinyT5);

for (const [label, fixture] of [
  ['tiny-blip2-opt', tinyOpt],
  ['tiny-blip2-t5', tinyT5],
] as const) {
  describe(`Blip2VisionModel parity: ${label}`, () => {
    const { config, weights, reference, cases } = fixture;
    const vision = config.visionConfig;

    it('matches vision_last_hidden_state and vision_pooler_output of every case at batch 1', async () => {
      expect(cases.length).toBeGreaterThan(0);
      const session = await backend.load(buildVisionModel(vision, weights));
      for (const { key } of cases) {
        const out = await session.run({
          pixel_values: withBatch(await f32(reference, `${key}/pixel_values`)),
        });
        const last = await f32(reference, `${key}/vision_last_hidden_state`);
        const pooled = await f32(reference, `${key}/vision_pooler_output`);
        expect(out.last_hidden_state.dims).toEqual([1, ...last.dims]);
        expect(maxAbsDiff(out.last_hidden_state, withBatch(last)), `${key} last_hidden_state`).toBeLessThan(
          TOL,
        );
        expect(maxAbsDiff(out.pooler_output, withBatch(pooled)), `${key} pooler_output`).toBeLessThan(TOL);
      }
      await session.release();
    });

    it('runs the batch of 2: row 0 matches case0, row 1 matches the same image run alone', async () => {
      const batch = await f32(reference, 'batch/pixel_values');
      const out = await runVision(vision, weights, batch);
      expect(out.last_hidden_state.dims[0]).toBe(2);
      const row = (t: Tensor, i: number) => slice(t, 0, i, i + 1);
      expect(
        maxAbsDiff(
          row(out.last_hidden_state, 0),
          withBatch(await f32(reference, 'case0/vision_last_hidden_state')),
        ),
      ).toBeLessThan(TOL);
      expect(
        maxAbsDiff(row(out.pooler_output, 0), withBatch(await f32(reference, 'case0/vision_pooler_output'))),
      ).toBeLessThan(TOL);
      const alone = await runVision(vision, weights, slice(batch, 0, 1, 2));
      expect(maxAbsDiff(row(out.last_hidden_state, 1), alone.last_hidden_state)).toBeLessThan(1e-5);
      expect(maxAbsDiff(row(out.pooler_output, 1), alone.pooler_output)).toBeLessThan(1e-5);
    });

    it('outputHiddenStates: embeddings, then each layer; the last one post-layernormed is last_hidden_state', async () => {
      const pixels = await f32(reference, 'case1/pixel_values');
      const out = await runVision(vision, weights, withBatch(pixels), true);
      const n = vision.numHiddenLayers;
      expect(Object.keys(out).filter((k) => k.startsWith('hidden_states.')).length).toBe(n + 1);
      expect(
        maxAbsDiff(out[VISION_MODEL_IO.hiddenStates(0)], await embeddingsReference(vision, weights, pixels)),
      ).toBeLessThan(1e-5);
      const post = layerNormRows(
        out[VISION_MODEL_IO.hiddenStates(n)] as Tensor<'float32'>,
        await f32(weights, 'vision_model.post_layernorm.weight'),
        await f32(weights, 'vision_model.post_layernorm.bias'),
        vision.layerNormEps,
      );
      expect(
        maxAbsDiff(post, withBatch(await f32(reference, 'case1/vision_last_hidden_state'))),
      ).toBeLessThan(TOL);
      // intermediate layers differ from each other (no output is wired to the wrong value)
      expect(maxAbsDiff(out['hidden_states.0'], out['hidden_states.1'])).toBeGreaterThan(1e-2);
    });
  });
}

const case0Pixels = withBatch(await f32(tinyOpt.reference, 'case0/pixel_values'));

describe('weight layouts and storage', () => {
  const { config, weights, reference } = tinyOpt;
  const vision = config.visionConfig;
  const D = vision.hiddenSize;
  const all = () => readAll(weights);
  const pixels = case0Pixels;

  it('reads the transformers 4 layout (q_bias, v_bias, no key bias) as the fused bias with a zero key part', async () => {
    const fusedZeroK = await all();
    const split = await all();
    for (let i = 0; i < vision.numHiddenLayers; i++) {
      const name = `vision_model.encoder.layers.${i}.self_attn.qkv.bias`;
      const bias = await f32(weights, name);
      const zeroed = Float32Array.from(bias.data);
      zeroed.fill(0, D, 2 * D);
      fusedZeroK[name] = float32([3 * D], zeroed);
      delete split[name];
      split[`vision_model.encoder.layers.${i}.self_attn.q_bias`] = float32([D], bias.data.slice(0, D));
      split[`vision_model.encoder.layers.${i}.self_attn.v_bias`] = float32([D], bias.data.slice(2 * D));
    }
    const d1 = mkdtempSync(join(tmp, 'fused-'));
    const d2 = mkdtempSync(join(tmp, 'split-'));
    writeCheckpoint(join(d1, 'model.safetensors'), fusedZeroK);
    writeCheckpoint(join(d2, 'model.safetensors'), split);
    const splitCkpt = await open(d2);
    expect(splitCkpt.has('vision_model.encoder.layers.0.self_attn.qkv.bias')).toBe(false);
    const a = await runVision(vision, await open(d1), pixels);
    const b = await runVision(vision, splitCkpt, pixels);
    expect(maxAbsDiff(a.last_hidden_state, b.last_hidden_state)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.pooler_output, b.pooler_output)).toBeLessThan(1e-6);
    // a key bias only shifts each query's scores by a constant, which softmax removes: still the reference
    expect(
      maxAbsDiff(b.last_hidden_state, withBatch(await f32(reference, 'case0/vision_last_hidden_state'))),
    ).toBeLessThan(TOL);
  });

  it('reads sharded checkpoints through @blip2/safetensors (index + two shards in one folder)', async () => {
    const names = [...weights.tensors.keys()].filter((n) => n.startsWith('vision_model.'));
    const half = Math.floor(names.length / 2);
    const dir = mkdtempSync(join(tmp, 'sharded-'));
    const shards = {
      'model-00001-of-00002.safetensors': names.slice(0, half),
      'model-00002-of-00002.safetensors': names.slice(half),
    };
    const weightMap: Record<string, string> = {};
    for (const [file, ns] of Object.entries(shards)) {
      writeCheckpoint(join(dir, file), await readAll(weights, ns));
      for (const n of ns) weightMap[n] = file;
    }
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const sharded = await open(dir);
    const graph = buildVisionModel(vision, sharded);
    expect(graph.externalData.map((f) => f.location).sort()).toEqual(Object.keys(shards));
    const out = await runVision(vision, sharded, pixels);
    expect(
      maxAbsDiff(out.last_hidden_state, withBatch(await f32(reference, 'case0/vision_last_hidden_state'))),
    ).toBeLessThan(TOL);
  });

  it('builds over the fixture folder opened by @blip2/safetensors', async () => {
    const t5 = tinyT5;
    const out = await runVision(
      t5.config.visionConfig,
      t5.weights,
      withBatch(await f32(t5.reference, 'case2/pixel_values')),
    );
    expect(
      maxAbsDiff(out.pooler_output, withBatch(await f32(t5.reference, 'case2/vision_pooler_output'))),
    ).toBeLessThan(TOL);
  });

  for (const [as, tol] of [
    ['F16', 5e-2],
    ['BF16', 5e-1],
  ] as [StoreAs, number][]) {
    it(`reads ${as} weights (the same function on rounded weights)`, async () => {
      const dir = mkdtempSync(join(tmp, `${as}-`));
      writeCheckpoint(join(dir, 'model.safetensors'), await all(), as);
      const half = await open(dir);
      expect(half.get('vision_model.post_layernorm.weight').dtype).toBe(as);
      const out = await runVision(vision, half, pixels);
      // rounded weights: close to the float32 reference, not equal to it; the bound is what the rounding allows
      const err = maxAbsDiff(
        out.last_hidden_state,
        withBatch(await f32(reference, 'case0/vision_last_hidden_state')),
      );
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(tol);
      // and exactly what float32 weights holding the rounded values give
      const dir32 = mkdtempSync(join(tmp, `${as}-as-f32-`));
      writeCheckpoint(join(dir32, 'model.safetensors'), await readAll(half));
      const widened = await runVision(vision, await open(dir32), pixels);
      expect(maxAbsDiff(out.last_hidden_state, widened.last_hidden_state)).toBeLessThan(1e-6);
    });
  }
});

describe('bad inputs', () => {
  const { config, weights } = tinyOpt;
  const vision = config.visionConfig;
  const without = (missing: string): WeightLookup => ({
    ...weights,
    has: (n) => n !== missing && weights.has(n),
  });

  it('names a missing weight', () => {
    const name = 'vision_model.encoder.layers.1.mlp.fc2.weight';
    const e = catchError(() => buildVisionModel(vision, without(name)));
    expect(e).toBeInstanceOf(GraphBuildError);
    expect(e).toMatchObject({ code: 'E_MISSING_WEIGHT', weight: name });
    expect(String(e)).toContain(`vision_model: checkpoint has no weight '${name}' (expected shape [32,37])`);
  });

  it('names a missing attention bias in either layout', () => {
    const e = catchError(() =>
      buildVisionModel(vision, without('vision_model.encoder.layers.0.self_attn.qkv.bias')),
    );
    expect(e).toBeInstanceOf(GraphBuildError);
    expect(e).toMatchObject({
      code: 'E_MISSING_WEIGHT',
      weight: 'vision_model.encoder.layers.0.self_attn.qkv.bias',
    });
    expect(String(e)).toMatch(/qkv_bias.*layers\.0\.self_attn\.qkv\.bias.*q_bias/);
  });

  it('names a weight whose shape disagrees with the config', () => {
    const e = catchError(() => buildVisionModel({ ...vision, intermediateSize: 40 }, weights));
    expect(e).toBeInstanceOf(GraphBuildError);
    expect(e).toMatchObject({
      code: 'E_WEIGHT_SHAPE',
      weight: 'vision_model.encoder.layers.0.mlp.fc1.weight',
    });
    expect(String(e)).toContain('has shape [37,32], the config implies [40,32]');
  });

  it('rejects position embeddings too short for the image size, and sizes not divisible by the patch', () => {
    const short = catchError(() => buildVisionModel({ ...vision, imageSize: 48 }, weights));
    expect(short).toBeInstanceOf(GraphBuildError);
    expect(short).toMatchObject({
      code: 'E_WEIGHT_SHAPE',
      weight: 'vision_model.embeddings.position_embedding',
    });
    expect(String(short)).toContain('has shape [1,65,32], needs [1,>=145,32] for image_size 48');
    const odd = catchError(() => buildVisionModel({ ...vision, imageSize: 34 }, weights));
    expect(odd).toBeInstanceOf(VisionEncoderError);
    expect(odd).toMatchObject({ code: 'E_OPTION' });
  });

  it('rejects an activation it does not implement', () => {
    const e = catchError(() => buildVisionModel({ ...vision, hiddenAct: 'quick_gelu' }, weights));
    expect(e).toMatchObject({ code: 'E_OPTION' });
    expect(String(e)).toContain("'quick_gelu'");
  });

  it('checks the batch it is fed', async () => {
    const session = await backend.load(buildVisionModel(vision, weights));
    await expect(session.run({ pixel_values: float32([1, 3, 16, 16]) })).rejects.toThrow(/pixel_values/);
    await session.release();
  });
});

describe('real size from manifests.json (graph construction only)', () => {
  const manifests = JSON.parse(readFileSync(fixtures.manifests, 'utf8')) as Record<
    string,
    { config: unknown; weights: Record<string, number[]> }
  >;

  for (const variant of Object.keys(manifests)) {
    it(`builds ${variant}'s ViT-g with every layer's hidden states, in both bias layouts`, () => {
      const m = manifests[variant];
      const vision = parseBlip2Config(m.config, `manifests.json#${variant}`).visionConfig;
      expect(vision.numHiddenLayers).toBe(39);
      const graph = buildVisionModel(vision, shapeOnlyWeights(m.weights), { outputHiddenStates: true });
      expect(graph.inputs).toEqual(visionModelIO(vision).inputs);
      expect(graph.outputs).toEqual(visionModelIO(vision, { outputHiddenStates: true }).outputs);
      expect(graph.outputs[0].dims).toEqual(['batch', 257, 1408]);
      expect(graph.outputs.length).toBe(2 + 40);
      // transformers 4 layout, as the published files store it
      const v4: Record<string, number[]> = {};
      for (const [n, s] of Object.entries(m.weights)) {
        if (n.endsWith('self_attn.qkv.bias')) {
          v4[n.replace('qkv.bias', 'q_bias')] = [s[0] / 3];
          v4[n.replace('qkv.bias', 'v_bias')] = [s[0] / 3];
        } else v4[n] = s;
      }
      expect(buildVisionModel(vision, shapeOnlyWeights(v4)).outputs.length).toBe(2);
    });
  }
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}
