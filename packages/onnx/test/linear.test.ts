import { mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { seeded } from '@blip2/fixtures';
import { serializeSafetensors, type WeightIndex } from '@blip2/safetensors';
import { openWeightsFromFile } from '@blip2/safetensors/node';
import { type BuiltGraph, float32, fromOrt, maxAbsDiff, type Tensor, toOrt } from '@blip2/tensor';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, linear, readGraph } from '../src/index.js';

// ---- the graphs

const IN = 32;
const OUT = 48;
const rand = seeded(11);
const W = Float32Array.from({ length: OUT * IN }, rand);
const B = Float32Array.from({ length: OUT }, rand);
const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

const opened: WeightIndex[] = [];
afterAll(() => Promise.all(opened.map((w) => w.close())));

const dir = mkdtempSync(join(tmpdir(), 'onnx-linear-'));
async function weights(): Promise<WeightIndex> {
  const path = join(dir, 'w.safetensors');
  writeFileSync(
    path,
    serializeSafetensors({
      'fc.weight': { dtype: 'F32', shape: [OUT, IN], data: f32Bytes(W) },
      'fc.bias': { dtype: 'F32', shape: [OUT], data: f32Bytes(B) },
    }),
  );
  const w = await openWeightsFromFile(path);
  opened.push(w);
  return w;
}

/** linear over [batch, seq, IN], with and without bias, in one layout. */
async function build(weightFirst: boolean): Promise<BuiltGraph> {
  const g = new GraphBuilder(weightFirst ? 'weight-first' : 'gemm', { weights: await weights() });
  const x = g.input('x', 'float32', ['batch', 'seq', IN]);
  const w = g.weight('fc.weight');
  g.output(linear(x, w, g.weight('fc.bias'), { weightFirst }), 'y', 'float32', ['batch', 'seq', OUT]);
  g.output(linear(x, w, null, { weightFirst }), 'y_no_bias', 'float32', ['batch', 'seq', OUT]);
  return g.build();
}

/** x W^T (+ b) in float64. */
function reference(x: Float32Array, rows: number, bias: boolean): Float32Array {
  const y = new Float32Array(rows * OUT);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < OUT; o++) {
      let s = bias ? B[o] : 0;
      for (let i = 0; i < IN; i++) s += x[r * IN + i] * W[o * IN + i];
      y[r * OUT + o] = s;
    }
  }
  return y;
}

/** onnxruntime-node as @blip2/backend-node opens graphs: weights mapped, pre-packing off. */
async function nodeSession(graph: BuiltGraph, optimizedModelFilePath?: string) {
  const folder = dirname(realpathSync(graph.externalData[0].uri));
  const s = await ortNode.InferenceSession.create(graph.bytes, {
    graphOptimizationLevel: 'all',
    ...(optimizedModelFilePath ? { optimizedModelFilePath } : {}),
    extra: { session: { disable_prepacking: '1', model_external_initializers_file_folder_path: folder } },
  });
  return {
    async run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
      const ortFeeds = Object.fromEntries(
        Object.entries(feeds).map(([k, v]) => [k, toOrt(v, ortNode.Tensor)]),
      );
      const out = await s.run(ortFeeds);
      return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, fromOrt(v as ortNode.Tensor)]));
    },
    release: () => s.release(),
  };
}

async function webSession(graph: BuiltGraph) {
  ortWeb.env.wasm.numThreads = 1;
  const s = await ortWeb.InferenceSession.create(graph.bytes, {
    executionProviders: ['wasm'],
    externalData: graph.externalData.map((f) => ({
      path: f.location,
      data: new Uint8Array(readFileSync(f.uri)),
    })),
  });
  return {
    async run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
      const ortFeeds = Object.fromEntries(
        Object.entries(feeds).map(([k, v]) => [k, toOrt(v, ortWeb.Tensor)]),
      );
      const out = await s.run(ortFeeds);
      return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, fromOrt(v as ortWeb.Tensor)]));
    },
    release: () => s.release(),
  };
}

const SHAPES: [number, number][] = [
  [1, 1], // a greedy step
  [2, 1],
  [5, 1], // a step of 5 beams
  [3, 7], // a prompt
];

describe('linear({ weightFirst }): y = (W x^T)^T + b', () => {
  for (const [runtime, open] of [
    ['onnxruntime-node', nodeSession],
    ['onnxruntime-web (wasm)', webSession],
  ] as const) {
    it(`gives the Gemm form's numbers on ${runtime} at 1..21 rows`, async () => {
      const gemm = await open(await build(false));
      const first = await open(await build(true));
      const rx = seeded(5);
      for (const [b, t] of SHAPES) {
        const x = float32(
          [b, t, IN],
          Float32Array.from({ length: b * t * IN }, () => 4 * rx()),
        );
        const a = await gemm.run({ x });
        const c = await first.run({ x });
        for (const name of ['y', 'y_no_bias']) {
          expect(c[name].dims).toEqual([b, t, OUT]);
          expect(maxAbsDiff(c[name], a[name])).toBeLessThanOrEqual(1e-5);
          const ref = float32([b, t, OUT], reference(x.data, b * t, name === 'y'));
          expect(maxAbsDiff(c[name], ref)).toBeLessThanOrEqual(1e-5);
        }
        // the bias matters: the two outputs differ by it
        expect(maxAbsDiff(c.y, c.y_no_bias)).toBeGreaterThan(0.1);
      }
      await gemm.release();
      await first.release();
    });
  }

  it('never transposes a weight: no Transpose reads an initializer, MatMul reads the weight as A', async () => {
    const { nodes, initializers } = readGraph((await build(true)).bytes);
    expect(initializers.has('fc.weight')).toBe(true);
    const transposes = nodes.filter((n) => n.op === 'Transpose');
    expect(transposes).toHaveLength(4); // x_flat^T and the result back, for each of the two linears
    for (const t of transposes) expect(initializers.has(t.inputs[0])).toBe(false);
    const matmuls = nodes.filter((n) => n.op === 'MatMul');
    expect(matmuls.map((m) => m.inputs[0])).toEqual(['fc.weight', 'fc.weight']);
    expect(nodes.some((n) => n.op === 'Gemm')).toBe(false);
  });

  it("onnxruntime's optimized graph still reads the weight itself (no folded transposed copy)", async () => {
    const optimized = join(dir, 'optimized.onnx');
    const s = await nodeSession(await build(true), optimized);
    await s.release();
    const { nodes, initializers } = readGraph(readFileSync(optimized));
    // a constant-folded Transpose(weight) would replace 'fc.weight' by a new [IN, OUT] initializer
    expect(initializers.has('fc.weight')).toBe(true);
    const readers = nodes.filter((n) => n.inputs.includes('fc.weight'));
    expect(readers.length).toBeGreaterThan(0);
    for (const n of readers) expect(n.op).not.toBe('Transpose');
    for (const n of nodes.filter((m) => m.op === 'Transpose'))
      expect(initializers.has(n.inputs[0])).toBe(false);
  });
});

describe('readGraph: what a built graph holds', () => {
  it('lists its nodes with their INT attributes and its initializers with dims, type, bytes and where they lie', async () => {
    const { nodes, initializers } = readGraph((await build(false)).bytes);
    // the checkpoint's weight and bias are mapped from the weights file, not written into the graph
    expect(initializers.get('fc.weight')).toEqual({
      name: 'fc.weight',
      dims: [OUT, IN],
      dataType: 1,
      byteLength: 4 * OUT * IN,
      external: true,
    });
    expect(initializers.get('fc.bias')).toMatchObject({ dims: [OUT], byteLength: 4 * OUT, external: true });
    // shape constants of the reshapes are written into the graph
    expect([...initializers.values()].some((i) => !i.external && i.dataType === 7)).toBe(true);
    const gemms = nodes.filter((n) => n.op === 'Gemm');
    expect(gemms.map((n) => n.inputs)).toEqual([
      [expect.any(String), 'fc.weight', 'fc.bias'],
      [expect.any(String), 'fc.weight'],
    ]);
    for (const g of gemms) expect(g).toMatchObject({ domain: '', ints: { transB: 1 } });
  });
});
