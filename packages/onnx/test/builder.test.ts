import { mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { seeded } from '@blip2/fixtures';
import { serializeSafetensors, type TensorBytes, type WeightIndex } from '@blip2/safetensors';
import { openWeightsFromFile } from '@blip2/safetensors/node';
import {
  type BuiltGraph,
  float32,
  float32ToBfloat16,
  float32ToFloat16,
  fromOrt,
  maxAbsDiff,
  type Tensor,
  tensor,
  toOrt,
} from '@blip2/tensor';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { afterAll, describe, expect, it } from 'vitest';
import {
  add,
  cos,
  GraphBuildError,
  GraphBuilder,
  gelu,
  geluTanh,
  layerNorm,
  linear,
  mul,
  reciprocal,
  reshape,
  sin,
  softmax,
  transpose,
} from '../src/index.js';

/**
 * onnxruntime-node straight, as @blip2/backend-node opens graphs (that package's
 * tests use this builder, so this one cannot use it): weights mapped from the real
 * folder of their file, pre-packing off.
 */
const onnxruntimeNode = {
  async load(graph: BuiltGraph) {
    const folder = graph.externalData.length ? dirname(realpathSync(graph.externalData[0].uri)) : undefined;
    const session = await ortNode.InferenceSession.create(graph.bytes, {
      extra: {
        session: {
          disable_prepacking: '1',
          ...(folder ? { model_external_initializers_file_folder_path: folder } : {}),
        },
      },
    });
    return {
      async run(feeds: Record<string, Tensor>) {
        const ortFeeds: Record<string, ortNode.Tensor> = {};
        for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v, ortNode.Tensor);
        const out = await session.run(ortFeeds);
        return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, fromOrt(v as ortNode.Tensor)]));
      },
      release: () => session.release(),
    };
  },
};

const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

const opened: WeightIndex[] = [];
afterAll(() => Promise.all(opened.map((w) => w.close())));

/** Writes `tensors` as one safetensors file and opens it as the builder's checkpoint. */
async function writeWeights(path: string, tensors: Record<string, TensorBytes>): Promise<WeightIndex> {
  writeFileSync(path, serializeSafetensors(tensors));
  const weights = await openWeightsFromFile(path);
  opened.push(weights);
  return weights;
}

const IN = 8;
const OUT = 6;
const rand = seeded(7);
const W = Float32Array.from({ length: OUT * IN }, rand);
const B = Float32Array.from({ length: OUT }, rand);
const G = Float32Array.from({ length: OUT }, () => 1 + rand());
const X = Float32Array.from({ length: 2 * 3 * IN }, () => 3 * rand());

function tsForward(x: Float32Array, rows: number): Float32Array {
  // y = x W^T + b ; z = LayerNorm(y) * g ; out = gelu(z)
  const out = new Float32Array(rows * OUT);
  for (let r = 0; r < rows; r++) {
    const y = new Float64Array(OUT);
    for (let o = 0; o < OUT; o++) {
      let s = B[o];
      for (let i = 0; i < IN; i++) s += x[r * IN + i] * W[o * IN + i];
      y[o] = s;
    }
    const mean = y.reduce((a, b) => a + b, 0) / OUT;
    const v = y.reduce((a, b) => a + (b - mean) ** 2, 0) / OUT;
    for (let o = 0; o < OUT; o++) {
      const z = ((y[o] - mean) / Math.sqrt(v + 1e-5)) * G[o];
      out[r * OUT + o] = 0.5 * z * (1 + erf(z / Math.SQRT2));
    }
  }
  return out;
}

// Abramowitz-Stegun would be too coarse for 1e-5; use a series/continued fraction via high-precision integration
function erf(x: number): number {
  // Simpson integration of 2/sqrt(pi) e^{-t^2} on [0, x], fine enough for 1e-9
  const n = 2000;
  const h = x / n;
  let s = 0;
  for (let i = 0; i <= n; i++) {
    const t = i * h;
    const w = i === 0 || i === n ? 1 : i % 2 ? 4 : 2;
    s += w * Math.exp(-t * t);
  }
  return ((s * h) / 3) * (2 / Math.sqrt(Math.PI));
}

async function buildMlp(dir: string, dtype: 'F32' | 'F16' | 'BF16') {
  const conv = dtype === 'F16' ? float32ToFloat16 : float32ToBfloat16;
  const enc = (a: Float32Array) =>
    dtype === 'F32' ? f32Bytes(a) : new Uint8Array(Uint16Array.from(a, (v) => conv(v)).buffer);
  const weights = await writeWeights(join(dir, 'w.safetensors'), {
    // data not at offset 0: initializers must honour their byte offsets
    pad: { dtype: 'U8', shape: [24], data: new Uint8Array(24) },
    'fc.weight': { dtype, shape: [OUT, IN], data: enc(W) },
    'fc.bias': { dtype: 'F32', shape: [OUT], data: f32Bytes(B) },
    'ln.weight': { dtype: 'F32', shape: [OUT], data: f32Bytes(G) },
  });
  const g = new GraphBuilder('mlp', { weights });
  const x = g.input('x', 'float32', ['batch', 'seq', IN]);
  const y = linear(x, g.weight('fc.weight'), g.weight('fc.bias'));
  const z = layerNorm(y, g.weight('ln.weight'), null, 1e-5);
  g.output(gelu(z), 'out', 'float32', ['batch', 'seq', OUT]);
  return g.build();
}

describe('rotary-position ops', () => {
  it('Sin, Cos and Reciprocal build and run as Math.sin, Math.cos and 1/x do', async () => {
    const g = new GraphBuilder('rotary-ops');
    const x = g.input('x', 'float32', [7]);
    g.output(sin(x), 'sin', 'float32', [7]);
    g.output(cos(x), 'cos', 'float32', [7]);
    g.output(reciprocal(x), 'reciprocal', 'float32', [7]);
    const xs = [-3.1, -1, -0.25, 0.5, 1.5, 2.75, 100];
    const session = await onnxruntimeNode.load(g.build());
    const out = await session.run({ x: float32([7], xs) });
    await session.release();
    const expectClose = (t: Tensor, f: (v: number) => number) => {
      Array.from(t.data as Float32Array).forEach((v, i) => {
        expect(Math.abs(v - f(Math.fround(xs[i])))).toBeLessThan(1e-5);
      });
    };
    expectClose(out.sin, Math.sin);
    expectClose(out.cos, Math.cos);
    expectClose(out.reciprocal, (v) => 1 / v);
  });
});

describe('GraphBuilder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-builder-'));

  it('runs a graph over in-place safetensors weights on onnxruntime-node and matches TypeScript', async () => {
    const graph = await buildMlp(dir, 'F32');
    expect(graph.externalData).toEqual([
      { location: 'w.safetensors', uri: join(dir, 'w.safetensors'), size: expect.any(Number) },
    ]);
    const session = await onnxruntimeNode.load(graph);
    const { out } = await session.run({ x: float32([2, 3, IN], X) });
    expect(out.dims).toEqual([2, 3, OUT]);
    expect(maxAbsDiff(out, float32([2, 3, OUT], tsForward(X, 6)))).toBeLessThan(1e-5);
    await session.release();
  });

  it('reads f16 and bf16 weights through a Cast', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const sub = mkdtempSync(join(dir, dtype));
      const session = await onnxruntimeNode.load(await buildMlp(sub, dtype));
      const { out } = await session.run({ x: float32([2, 3, IN], X) });
      // the weights were rounded to half precision: same function, coarser numbers
      const err = maxAbsDiff(out, float32([2, 3, OUT], tsForward(X, 6)));
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(dtype === 'F16' ? 2e-2 : 1e-1);
      await session.release();
    }
  });

  it('runs the same graph on onnxruntime-web (wasm) in Node with externalData buffers', async () => {
    const graph = await buildMlp(mkdtempSync(join(dir, 'web')), 'F32');
    ortWeb.env.wasm.numThreads = 1;
    const session = await ortWeb.InferenceSession.create(graph.bytes, {
      executionProviders: ['wasm'],
      externalData: graph.externalData.map((f) => ({
        path: f.location,
        data: new Uint8Array(readFileSync(f.uri)),
      })),
    });
    const res = await session.run({ x: new ortWeb.Tensor('float32', X, [2, 3, IN]) });
    const out = tensor('float32', [2, 3, OUT], res[session.outputNames[0]].data as Float32Array);
    expect(maxAbsDiff(out, float32([2, 3, OUT], tsForward(X, 6)))).toBeLessThan(1e-5);
    await session.release();
  });

  it('embeds constants and computes softmax, transpose, reshape, gelu-tanh', async () => {
    const g = new GraphBuilder('misc');
    const x = g.input('x', 'float32', [2, 3]);
    const t = reshape(transpose(x, [1, 0]), [2, 3]);
    const s = softmax(mul(t, 2), -1);
    g.output(add(s, geluTanh(x)), 'y', 'float32', [2, 3]);
    const session = await onnxruntimeNode.load(g.build());
    const xs = [0.1, -1, 2, 0.5, 3, -2];
    const { y } = await session.run({ x: float32([2, 3], xs) });
    const tt = [xs[0], xs[3], xs[1], xs[4], xs[2], xs[5]];
    const expected: number[] = [];
    for (let r = 0; r < 2; r++) {
      const row = tt.slice(r * 3, r * 3 + 3).map((v) => 2 * v);
      const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m));
      const sum = e.reduce((a, b) => a + b);
      e.forEach((v, i) => {
        const xv = xs[r * 3 + i];
        const gt = 0.5 * xv * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (xv + 0.044715 * xv ** 3)));
        expected.push(v / sum + gt);
      });
    }
    expect(maxAbsDiff(y as Tensor, float32([2, 3], expected))).toBeLessThan(1e-6);
  });

  it('names the problem when a graph is malformed', () => {
    const g = new GraphBuilder('bad');
    const x = g.input('x', 'float32', [1]);
    expect(() => g.op('Add', [x])).toThrow(GraphBuildError);
    expect(() => g.op('NoSuchOp', [x])).toThrow(/not in the builder's table/);
    expect(() => g.input('x', 'float32', [1])).toThrow(/already used/);
    expect(() => g.weight('w')).toThrow(/without weights/);
    const other = new GraphBuilder('other').input('y', 'float32', [1]);
    expect(() => add(x, other)).toThrow(/not from this graph/);
    expect(() => g.build()).toThrow(/no outputs/);
  });

  it('uses the real file name as the location (hub caches symlink model.safetensors to a blob)', async () => {
    const { symlinkSync, mkdirSync } = await import('node:fs');
    const root = mkdtempSync(join(dir, 'hub'));
    mkdirSync(join(root, 'blobs'));
    mkdirSync(join(root, 'snap'));
    writeFileSync(
      join(root, 'blobs', 'abc123'),
      serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: f32Bytes(Float32Array.from([3, 4])) } }),
    );
    symlinkSync(join(root, 'blobs', 'abc123'), join(root, 'snap', 'model.safetensors'));
    const weights = await openWeightsFromFile(join(root, 'snap', 'model.safetensors'));
    opened.push(weights);
    const g = new GraphBuilder('hub', { weights });
    const x = g.input('x', 'float32', [2]);
    g.output(mul(x, g.weight('w')), 'y', 'float32', [2]);
    const graph = g.build();
    expect(graph.externalData[0].location).toBe('abc123');
    const s = await onnxruntimeNode.load(graph);
    expect(Array.from((await s.run({ x: float32([2], [1, 2]) })).y.data as Float32Array)).toEqual([3, 8]);
  });
});

describe('GraphBuilder.weight: the one check of a weight against the shape the config implies', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-weights-'));
  const open = () =>
    writeWeights(join(dir, 'w.safetensors'), {
      'layers.0.fc1.weight': { dtype: 'F32', shape: [3, 2], data: f32Bytes(new Float32Array(6)) },
      'layers.0.fc1.bias': { dtype: 'F16', shape: [3], data: new Uint8Array(6) },
    });
  const caught = (fn: () => unknown): GraphBuildError => {
    try {
      fn();
    } catch (e) {
      if (e instanceof GraphBuildError) return e;
      throw e;
    }
    throw new Error('expected a GraphBuildError');
  };

  it('returns the weight when the stored shape is the expected one (open dims match any size)', async () => {
    const g = new GraphBuilder('enc', { weights: await open() });
    expect(g.weightShape('layers.0.fc1.weight', [3, 2])).toEqual([3, 2]);
    expect(g.weightShape('layers.0.fc1.weight', ['out', 2])).toEqual([3, 2]);
    const w = g.weight('layers.0.fc1.weight', [3, 2]);
    // asked again (checked again), the same initializer
    expect(g.weight('layers.0.fc1.weight', [3, 'in'])).toBe(w);
    expect(g.weight('layers.0.fc1.weight')).toBe(w);
  });

  it('E_MISSING_WEIGHT names the graph, the full weight name and the expected shape', async () => {
    const g = new GraphBuilder('enc', { weights: await open() });
    const e = caught(() => g.weight('layers.1.fc1.weight', [3, 2]));
    expect(e.code).toBe('E_MISSING_WEIGHT');
    expect(e.weight).toBe('layers.1.fc1.weight');
    expect(e.message).toBe("enc: checkpoint has no weight 'layers.1.fc1.weight' (expected shape [3,2])");
    const open_ = caught(() => g.weightShape('proj.weight', ['text_hidden_size', 2]));
    expect(open_.message).toBe(
      "enc: checkpoint has no weight 'proj.weight' (expected shape [text_hidden_size,2])",
    );
    expect(caught(() => g.weight('nope')).message).toBe("enc: checkpoint has no weight 'nope'");
    expect(g.hasWeight('layers.1.fc1.weight')).toBe(false);
  });

  it('E_WEIGHT_SHAPE names the weight, the stored shape and the implied one', async () => {
    const g = new GraphBuilder('enc', { weights: await open() });
    const transposed = caught(() => g.weight('layers.0.fc1.weight', [2, 3]));
    expect(transposed.code).toBe('E_WEIGHT_SHAPE');
    expect(transposed.weight).toBe('layers.0.fc1.weight');
    expect(transposed.message).toBe(
      "enc: weight 'layers.0.fc1.weight' has shape [3,2], the config implies [2,3]",
    );
    // another rank is another shape, even where the sizes would agree
    expect(caught(() => g.weight('layers.0.fc1.bias', [3, 1])).code).toBe('E_WEIGHT_SHAPE');
    expect(caught(() => g.weightShape('layers.0.fc1.weight', ['out'])).code).toBe('E_WEIGHT_SHAPE');
    // the check comes before the value: a rejected weight adds nothing to the graph
    g.output(g.weight('layers.0.fc1.bias', [3]), 'b', 'float32', [3]);
    expect(g.build().externalData).toHaveLength(1);
  });

  it('asks for weights only of a graph built with a checkpoint', () => {
    const e = caught(() => new GraphBuilder('bare').weight('w', [1]));
    expect(e.code).toBe('E_NO_WEIGHTS');
  });
});
