import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { type Blip2VisionConfig, parseBlip2Config } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import type { WeightLookup } from '@blip2/onnx';
import { float32, maxAbsDiff, slice, type Tensor } from '@blip2/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { buildVisionModel, VISION_MODEL_IO, VisionEncoderError, visionModelIO } from '../src/index.js';
import { type Checkpoint, openCheckpoint, type StoreAs, writeCheckpoint } from './st.js';

const TOL = 1e-4;
const backend = createNodeBackend();
const tmp = mkdtempSync(join(tmpdir(), 'vision-encoder-'));

function loadFixture(dir: string) {
  const config = parseBlip2Config(
    JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    join(dir, 'config.json'),
  );
  const weights = openCheckpoint(join(dir, 'model.safetensors'));
  const reference = openCheckpoint(join(dir, 'reference.safetensors'));
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
function embeddingsReference(
  config: Blip2VisionConfig,
  w: Checkpoint,
  pixels: Tensor<'float32'>,
): Tensor<'float32'> {
  const { hiddenSize: D, patchSize: P, imageSize: S } = config;
  const grid = S / P;
  const kernel = w.float32('vision_model.embeddings.patch_embedding.weight').data;
  const bias = w.float32('vision_model.embeddings.patch_embedding.bias').data;
  const cls = w.float32('vision_model.embeddings.class_embedding').data;
  const pos = w.float32('vision_model.embeddings.position_embedding').data;
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

for (const [label, dir] of [
  ['tiny-blip2-opt', fixtures.tinyOpt],
  ['tiny-blip2-t5', fixtures.tinyT5],
] as const) {
  describe(`Blip2VisionModel parity: ${label}`, () => {
    const { config, weights, reference, cases } = loadFixture(dir);
    const vision = config.visionConfig;

    it('matches vision_last_hidden_state and vision_pooler_output of every case at batch 1', async () => {
      expect(cases.length).toBeGreaterThan(0);
      const session = await backend.load(buildVisionModel(vision, weights));
      for (const { key } of cases) {
        const out = await session.run({ pixel_values: withBatch(reference.float32(`${key}/pixel_values`)) });
        const last = reference.float32(`${key}/vision_last_hidden_state`);
        const pooled = reference.float32(`${key}/vision_pooler_output`);
        expect(out.last_hidden_state.dims).toEqual([1, ...last.dims]);
        expect(maxAbsDiff(out.last_hidden_state, withBatch(last)), `${key} last_hidden_state`).toBeLessThan(
          TOL,
        );
        expect(maxAbsDiff(out.pooler_output, withBatch(pooled)), `${key} pooler_output`).toBeLessThan(TOL);
      }
      await session.release();
    });

    it('runs the batch of 2: row 0 matches case0, row 1 matches the same image run alone', async () => {
      const batch = reference.float32('batch/pixel_values');
      const out = await runVision(vision, weights, batch);
      expect(out.last_hidden_state.dims[0]).toBe(2);
      const row = (t: Tensor, i: number) => slice(t, 0, i, i + 1);
      expect(
        maxAbsDiff(
          row(out.last_hidden_state, 0),
          withBatch(reference.float32('case0/vision_last_hidden_state')),
        ),
      ).toBeLessThan(TOL);
      expect(
        maxAbsDiff(row(out.pooler_output, 0), withBatch(reference.float32('case0/vision_pooler_output'))),
      ).toBeLessThan(TOL);
      const alone = await runVision(vision, weights, slice(batch, 0, 1, 2));
      expect(maxAbsDiff(row(out.last_hidden_state, 1), alone.last_hidden_state)).toBeLessThan(1e-5);
      expect(maxAbsDiff(row(out.pooler_output, 1), alone.pooler_output)).toBeLessThan(1e-5);
    });

    it('outputHiddenStates: embeddings, then each layer; the last one post-layernormed is last_hidden_state', async () => {
      const pixels = reference.float32('case1/pixel_values');
      const out = await runVision(vision, weights, withBatch(pixels), true);
      const n = vision.numHiddenLayers;
      expect(Object.keys(out).filter((k) => k.startsWith('hidden_states.')).length).toBe(n + 1);
      expect(
        maxAbsDiff(out[VISION_MODEL_IO.hiddenStates(0)], embeddingsReference(vision, weights, pixels)),
      ).toBeLessThan(1e-5);
      const post = layerNormRows(
        out[VISION_MODEL_IO.hiddenStates(n)] as Tensor<'float32'>,
        weights.float32('vision_model.post_layernorm.weight'),
        weights.float32('vision_model.post_layernorm.bias'),
        vision.layerNormEps,
      );
      expect(maxAbsDiff(post, withBatch(reference.float32('case1/vision_last_hidden_state')))).toBeLessThan(
        TOL,
      );
      // intermediate layers differ from each other (no output is wired to the wrong value)
      expect(maxAbsDiff(out['hidden_states.0'], out['hidden_states.1'])).toBeGreaterThan(1e-2);
    });
  });
}

describe('weight layouts and storage', () => {
  const { config, weights, reference } = loadFixture(fixtures.tinyOpt);
  const vision = config.visionConfig;
  const D = vision.hiddenSize;
  const all = () => Object.fromEntries(weights.names.map((n) => [n, weights.float32(n)]));
  const pixels = withBatch(reference.float32('case0/pixel_values'));

  it('reads the transformers 4 layout (q_bias, v_bias, no key bias) as the fused bias with a zero key part', async () => {
    const fusedZeroK = all();
    const split = all();
    for (let i = 0; i < vision.numHiddenLayers; i++) {
      const name = `vision_model.encoder.layers.${i}.self_attn.qkv.bias`;
      const bias = weights.float32(name);
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
    const splitCkpt = openCheckpoint(join(d2, 'model.safetensors'));
    expect(splitCkpt.has('vision_model.encoder.layers.0.self_attn.qkv.bias')).toBe(false);
    const a = await runVision(vision, openCheckpoint(join(d1, 'model.safetensors')), pixels);
    const b = await runVision(vision, splitCkpt, pixels);
    expect(maxAbsDiff(a.last_hidden_state, b.last_hidden_state)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.pooler_output, b.pooler_output)).toBeLessThan(1e-6);
    // a key bias only shifts each query's scores by a constant, which softmax removes: still the reference
    expect(
      maxAbsDiff(b.last_hidden_state, withBatch(reference.float32('case0/vision_last_hidden_state'))),
    ).toBeLessThan(TOL);
  });

  it('reads sharded checkpoints (weights split over two files in one folder)', async () => {
    const names = weights.names.filter((n) => n.startsWith('vision_model.'));
    const half = Math.floor(names.length / 2);
    const dir = mkdtempSync(join(tmp, 'sharded-'));
    const pick = (ns: string[]) => Object.fromEntries(ns.map((n) => [n, weights.float32(n)]));
    writeCheckpoint(join(dir, 'model-00001-of-00002.safetensors'), pick(names.slice(0, half)));
    writeCheckpoint(join(dir, 'model-00002-of-00002.safetensors'), pick(names.slice(half)));
    const sharded = openCheckpoint(
      join(dir, 'model-00001-of-00002.safetensors'),
      join(dir, 'model-00002-of-00002.safetensors'),
    );
    const graph = buildVisionModel(vision, sharded);
    expect(graph.externalData.map((f) => f.location).sort()).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
    const out = await runVision(vision, sharded, pixels);
    expect(
      maxAbsDiff(out.last_hidden_state, withBatch(reference.float32('case0/vision_last_hidden_state'))),
    ).toBeLessThan(TOL);
  });

  for (const [as, tol] of [
    ['F16', 5e-2],
    ['BF16', 5e-1],
  ] as [StoreAs, number][]) {
    it(`reads ${as} weights (the same function on rounded weights)`, async () => {
      const dir = mkdtempSync(join(tmp, `${as}-`));
      writeCheckpoint(join(dir, 'model.safetensors'), all(), as);
      const half = openCheckpoint(join(dir, 'model.safetensors'));
      expect(half.get('vision_model.post_layernorm.weight').dtype).toBe(as);
      const out = await runVision(vision, half, pixels);
      // rounded weights: close to the float32 reference, not equal to it; the bound is what the rounding allows
      const err = maxAbsDiff(
        out.last_hidden_state,
        withBatch(reference.float32('case0/vision_last_hidden_state')),
      );
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(tol);
      // and exactly what float32 weights holding the rounded values give
      const dir32 = mkdtempSync(join(tmp, `${as}-as-f32-`));
      writeCheckpoint(
        join(dir32, 'model.safetensors'),
        Object.fromEntries(half.names.map((n) => [n, half.float32(n)])),
      );
      const widened = await runVision(vision, openCheckpoint(join(dir32, 'model.safetensors')), pixels);
      expect(maxAbsDiff(out.last_hidden_state, widened.last_hidden_state)).toBeLessThan(1e-6);
    });
  }
});

describe('bad inputs', () => {
  const { config, weights } = loadFixture(fixtures.tinyOpt);
  const vision = config.visionConfig;
  const without = (missing: string): WeightLookup => ({
    ...weights,
    has: (n) => n !== missing && weights.has(n),
  });

  it('names a missing weight', () => {
    const name = 'vision_model.encoder.layers.1.mlp.fc2.weight';
    const e = catchError(() => buildVisionModel(vision, without(name)));
    expect(e).toBeInstanceOf(VisionEncoderError);
    expect(e).toMatchObject({ code: 'E_MISSING_WEIGHT', weight: name });
    expect(String(e)).toContain(name);
  });

  it('names a missing attention bias in either layout', () => {
    const e = catchError(() =>
      buildVisionModel(vision, without('vision_model.encoder.layers.0.self_attn.qkv.bias')),
    );
    expect(e).toMatchObject({ code: 'E_MISSING_WEIGHT' });
    expect(String(e)).toMatch(/qkv_bias.*layers\.0\.self_attn\.qkv\.bias.*q_bias/);
  });

  it('names a weight whose shape disagrees with the config', () => {
    const e = catchError(() => buildVisionModel({ ...vision, intermediateSize: 40 }, weights));
    expect(e).toMatchObject({
      code: 'E_WEIGHT_SHAPE',
      weight: 'vision_model.encoder.layers.0.mlp.fc1.weight',
    });
    expect(String(e)).toContain('[37, 32]');
    expect(String(e)).toContain('[40, 32]');
  });

  it('rejects position embeddings too short for the image size, and sizes not divisible by the patch', () => {
    expect(catchError(() => buildVisionModel({ ...vision, imageSize: 48 }, weights))).toMatchObject({
      code: 'E_WEIGHT_SHAPE',
      weight: 'vision_model.embeddings.position_embedding',
    });
    expect(catchError(() => buildVisionModel({ ...vision, imageSize: 34 }, weights))).toMatchObject({
      code: 'E_OPTION',
    });
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

  function fakeLookup(shapes: Record<string, number[]>): WeightLookup {
    let offset = 0;
    const infos = new Map(
      Object.entries(shapes).map(([name, shape]) => {
        const byteLength = 2 * shape.reduce((a, b) => a * b, 1);
        const info = { name, dtype: 'F16' as const, shape, file: 'model.safetensors', offset, byteLength };
        offset += byteLength;
        return [name, info];
      }),
    );
    return {
      has: (n) => infos.has(n),
      get: (n) => {
        const i = infos.get(n);
        if (!i) throw new Error(`no ${n}`);
        return i;
      },
      fileOf: () => ({ name: 'model.safetensors', uri: '/nonexistent/model.safetensors' }),
    };
  }

  for (const variant of Object.keys(manifests)) {
    it(`builds ${variant}'s ViT-g with every layer's hidden states, in both bias layouts`, () => {
      const m = manifests[variant];
      const vision = parseBlip2Config(m.config, `manifests.json#${variant}`).visionConfig;
      expect(vision.numHiddenLayers).toBe(39);
      const graph = buildVisionModel(vision, fakeLookup(m.weights), { outputHiddenStates: true });
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
      expect(buildVisionModel(vision, fakeLookup(v4)).outputs.length).toBe(2);
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
