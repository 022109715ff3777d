import { mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { float32, float32ToBfloat16, float32ToFloat16, maxAbsDiff, type Tensor, tensor } from '@blip2/tensor';
import * as ortWeb from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import {
  add,
  GraphBuildError,
  GraphBuilder,
  gelu,
  geluTanh,
  layerNorm,
  linear,
  mul,
  reshape,
  softmax,
  transpose,
} from '../src/index.js';
import { f32Bytes, seeded, writeSafetensors } from './st.js';

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

function buildMlp(dir: string, dtype: 'F32' | 'F16' | 'BF16') {
  const conv = dtype === 'F16' ? float32ToFloat16 : float32ToBfloat16;
  const enc = (a: Float32Array) =>
    dtype === 'F32' ? f32Bytes(a) : new Uint8Array(Uint16Array.from(a, (v) => conv(v)).buffer);
  const weights = writeSafetensors(
    join(dir, 'w.safetensors'),
    {
      'fc.weight': { dtype, shape: [OUT, IN], bytes: enc(W) },
      'fc.bias': { dtype: 'F32', shape: [OUT], bytes: f32Bytes(B) },
      'ln.weight': { dtype: 'F32', shape: [OUT], bytes: f32Bytes(G) },
    },
    24, // data not at offset 0: initializers must honour their byte offsets
  );
  const g = new GraphBuilder('mlp', { weights });
  const x = g.input('x', 'float32', ['batch', 'seq', IN]);
  const y = linear(x, g.weight('fc.weight'), g.weight('fc.bias'));
  const z = layerNorm(y, g.weight('ln.weight'), null, 1e-5);
  g.output(gelu(z), 'out', 'float32', ['batch', 'seq', OUT]);
  return g.build();
}

describe('GraphBuilder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-builder-'));

  it('runs a graph over in-place safetensors weights on onnxruntime-node and matches TypeScript', async () => {
    const graph = buildMlp(dir, 'F32');
    expect(graph.externalData).toEqual([
      { location: 'w.safetensors', uri: join(dir, 'w.safetensors'), size: expect.any(Number) },
    ]);
    const session = await createNodeBackend().load(graph);
    const { out } = await session.run({ x: float32([2, 3, IN], X) });
    expect(out.dims).toEqual([2, 3, OUT]);
    expect(maxAbsDiff(out, float32([2, 3, OUT], tsForward(X, 6)))).toBeLessThan(1e-5);
    await session.release();
  });

  it('reads f16 and bf16 weights through a Cast', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const sub = mkdtempSync(join(dir, dtype));
      const session = await createNodeBackend().load(buildMlp(sub, dtype));
      const { out } = await session.run({ x: float32([2, 3, IN], X) });
      // the weights were rounded to half precision: same function, coarser numbers
      const err = maxAbsDiff(out, float32([2, 3, OUT], tsForward(X, 6)));
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(dtype === 'F16' ? 2e-2 : 1e-1);
      await session.release();
    }
  });

  it('runs the same graph on onnxruntime-web (wasm) in Node with externalData buffers', async () => {
    const graph = buildMlp(mkdtempSync(join(dir, 'web')), 'F32');
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
    const session = await createNodeBackend().load(g.build());
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
    const weights = writeSafetensors(join(root, 'blobs', 'abc123'), {
      w: { dtype: 'F32', shape: [2], bytes: f32Bytes(Float32Array.from([3, 4])) },
    });
    symlinkSync(join(root, 'blobs', 'abc123'), join(root, 'snap', 'model.safetensors'));
    const g = new GraphBuilder('hub', {
      weights: {
        ...weights,
        fileOf: () => ({
          name: 'model.safetensors',
          uri: realpathSync(join(root, 'snap', 'model.safetensors')),
        }),
      },
    });
    const x = g.input('x', 'float32', [2]);
    g.output(mul(x, g.weight('w')), 'y', 'float32', [2]);
    const graph = g.build();
    expect(graph.externalData[0].location).toBe('abc123');
    const s = await createNodeBackend().load(graph);
    expect(Array.from((await s.run({ x: float32([2], [1, 2]) })).y.data as Float32Array)).toEqual([3, 8]);
  });
});
