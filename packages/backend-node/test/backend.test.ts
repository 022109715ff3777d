import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { add, GraphBuilder, linear, mul, type Value } from '@blip2/onnx';
import { type BuiltGraph, float32, int64, isDeviceTensor, maxAbsDiff, type Tensor } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import {
  createNodeBackend,
  doctor,
  NodeBackendError,
  prepacks,
  providerProblem,
  weightFolder,
} from '../src/index.js';

function tinyGraph(): BuiltGraph {
  const g = new GraphBuilder('tiny');
  const x = g.input('x', 'float32', ['batch', 2]);
  g.output(add(mul(x, 2), 1), 'y', 'float32', ['batch', 2]);
  return g.build();
}

/** A Linear over a weight in a real file: external data mapped from its folder. */
function fileGraph(dir: string): BuiltGraph {
  const w = Float32Array.from([1, 2, 3, 4, 5, 6]); // [3, 2]
  const header = JSON.stringify({ w: { dtype: 'F32', shape: [3, 2], data_offsets: [0, 24] } }).padEnd(
    56,
    ' ',
  );
  const bytes = new Uint8Array(8 + header.length + 24);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(new TextEncoder().encode(header), 8);
  bytes.set(new Uint8Array(w.buffer), 8 + header.length);
  const path = join(dir, 'model.safetensors');
  writeFileSync(path, bytes);
  const info = {
    name: 'w',
    dtype: 'F32' as const,
    shape: [3, 2],
    file: 'model.safetensors',
    offset: 8 + header.length,
    byteLength: 24,
  };
  const g = new GraphBuilder('file', {
    weights: {
      has: (n) => n === 'w',
      get: () => info,
      fileOf: () => ({ name: 'model.safetensors', uri: path }),
    },
  });
  const x = g.input('x', 'float32', [1, 2]);
  g.output(linear(x, g.weight('w')), 'y', 'float32', [1, 3]);
  return g.build();
}

/** One linear over 8-bit weights [k, n] (DynamicQuantizeMatMul, q8's op) or 4-bit blocks (MatMulNBits, q4's). */
function packedGraph(op: 'DynamicQuantizeMatMul' | 'MatMulNBits', k = 64, n = 48): BuiltGraph {
  const g = new GraphBuilder(`packed_${op}`);
  const x = g.input('x', 'float32', ['rows', k]);
  const bytes = (len: number) => Uint8Array.from({ length: len }, (_, i) => (i * 37 + 11) % 127);
  let y: Value;
  if (op === 'DynamicQuantizeMatMul') {
    // uint8 weights (the op takes int8 or uint8): which one does not change whether it pre-packs
    const w = g.constant({ dtype: 'uint8', dims: [k, n], data: bytes(k * n) }, 'w');
    const s = g.constant(float32([n], new Array(n).fill(0.01)), 's');
    y = g.op1(op, [x, w, s], {}, 'com.microsoft');
  } else {
    const nb = k / 32;
    const w = g.constant({ dtype: 'uint8', dims: [n, nb, 16], data: bytes(n * nb * 16) }, 'w');
    const s = g.constant(float32([n, nb], new Array(n * nb).fill(0.01)), 's');
    y = g.op1(op, [x, w, s], { K: k, N: n, bits: 4, block_size: 32, accuracy_level: 4 }, 'com.microsoft');
  }
  g.output(y, 'y', 'float32', ['rows', n]);
  return g.build();
}

describe('backend-node', () => {
  it('runs a graph on the CPU and checks feeds before onnxruntime does', async () => {
    const backend = createNodeBackend();
    expect(backend.name).toBe('node:cpu');
    const s = await backend.load(tinyGraph());
    const { y } = await s.run({ x: float32([2, 2], [0, 1, 2, 3]) });
    expect(Array.from(y.data as Float32Array)).toEqual([1, 3, 5, 7]);
    await expect(s.run({ x: int64([1, 2], [1, 2]) })).rejects.toThrow(/'x' must be float32, got int64/);
    await expect(s.run({ x: float32([1, 3]) })).rejects.toThrow(
      /'x' has dims \[1, 3\], expected \[batch, 2\]/,
    );
    await expect(s.run({})).rejects.toThrow(/missing x/);
    await s.release();
    await expect(s.run({ x: float32([1, 2]) })).rejects.toMatchObject({ code: 'E_RELEASED' });
  });

  it('keepOnDevice on the CPU keeps CPU tensors, and names outputs the graph does not have', async () => {
    const backend = createNodeBackend();
    const s = await backend.load(tinyGraph(), { keepOnDevice: ['y'] });
    const { y } = await s.runOnDevice({ x: float32([1, 2], [1, 2]) });
    expect(isDeviceTensor(y)).toBe(false);
    expect(Array.from((y as Tensor).data as Float32Array)).toEqual([3, 5]);
    await s.release();
    await expect(backend.load(tinyGraph(), { keepOnDevice: ['y', 'present.0.key'] })).rejects.toMatchObject({
      code: 'E_KEEP_ON_DEVICE',
      message:
        "tiny: keepOnDevice names 'present.0.key', which is not an output of the graph (outputs are y)",
    });
  });

  it('maps weights from the folder of the real file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'backend-node-'));
    const graph = fileGraph(dir);
    expect(weightFolder(graph)).toBe(dir);
    const s = await createNodeBackend({ intraOpNumThreads: 1 }).load(graph);
    const { y } = await s.run({ x: float32([1, 2], [1, 1]) });
    expect(maxAbsDiff(y, float32([1, 3], [3, 7, 11]))).toBe(0);
    await s.release();
  });

  it('pre-packs packed integer weights only (int8 unless asked not to), and packed int8 gives the same numbers', async () => {
    const q8 = packedGraph('DynamicQuantizeMatMul');
    const q4 = packedGraph('MatMulNBits');
    expect([prepacks(tinyGraph()), prepacks(q8), prepacks(q4)]).toEqual([false, true, true]);
    expect([prepacks(q8, { prepackInt8: false }), prepacks(q4, { prepackInt8: false })]).toEqual([
      false,
      true,
    ]);
    const x = float32(
      [5, 64],
      Array.from({ length: 5 * 64 }, (_, i) => Math.sin(i)),
    );
    const outputs = [];
    for (const prepackInt8 of [true, false]) {
      const s = await createNodeBackend({ prepackInt8 }).load(q8);
      outputs.push((await s.run({ x })).y);
      await s.release();
    }
    expect(maxAbsDiff(outputs[0], outputs[1])).toBe(0);
    expect(Math.max(...(outputs[0].data as Float32Array).map(Math.abs))).toBeGreaterThan(0.1);
  });

  it('names a missing weight file, a URL, and files in two folders', () => {
    const dir = mkdtempSync(join(tmpdir(), 'backend-node-'));
    const graph = fileGraph(dir);
    const gone = {
      ...graph,
      externalData: [{ location: 'model.safetensors', uri: join(dir, 'nope', 'model.safetensors') }],
    };
    expect(() => weightFolder(gone)).toThrow(/weight file .*nope.* does not exist/);
    const url = {
      ...graph,
      externalData: [{ location: 'model.safetensors', uri: 'https://example.org/model.safetensors' }],
    };
    expect(() => weightFolder(url)).toThrow(
      expect.objectContaining({
        code: 'E_WEIGHT_FILES',
        message: expect.stringMatching(/reads weights from files, got URL/),
      }),
    );
    mkdirSync(join(dir, 'other'));
    writeFileSync(join(dir, 'other', 'b.safetensors'), '');
    const two = {
      ...graph,
      externalData: [
        ...graph.externalData,
        { location: 'b.safetensors', uri: join(dir, 'other', 'b.safetensors') },
      ],
    };
    expect(() => weightFolder(two)).toThrow(/weight files are in two folders/);
  });

  it('explains how to get CUDA when it is missing, or falls back to the CPU saying so once', async () => {
    const problem = providerProblem('cuda');
    // this machine has no CUDA provider binaries; on one that has them the checks below do not apply
    if (problem === null) return;
    let err: unknown;
    try {
      createNodeBackend({ device: 'cuda', fallback: 'error' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NodeBackendError);
    expect((err as NodeBackendError).code).toBe('E_PROVIDER_UNAVAILABLE');
    expect((err as Error).message).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
    expect((err as Error).message).toMatch(/CUDA 12 and cuDNN 9/);
    // the default policy is to say so, not to run somewhere else silently
    expect(() => createNodeBackend({ device: 'cuda' })).toThrow(NodeBackendError);

    const warnings: string[] = [];
    const backend = createNodeBackend({
      device: 'cuda',
      fallback: 'cpu',
      onWarning: (w) => warnings.push(w),
    });
    expect(backend.name).toBe('node:cpu');
    const s = await backend.load(tinyGraph());
    await s.run({ x: float32([1, 2], [1, 2]) });
    await backend.load(tinyGraph());
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/device 'cuda' is unavailable, running on CPU instead/);
  });

  it('wraps an onnxruntime failure with the graph and the feeds', async () => {
    const g = new GraphBuilder('bad');
    const x = g.input('x', 'float32', ['n']);
    const y = g.input('y', 'float32', ['m']);
    g.output(add(x, y), 'z', 'float32', ['n']);
    const s = await createNodeBackend().load(g.build());
    const err = await s.run({ x: float32([2]), y: float32([3]) }).catch((e) => e);
    expect(err).toBeInstanceOf(NodeBackendError);
    expect(err.code).toBe('E_RUN');
    expect(err.message).toMatch(/^bad: onnxruntime failed on x\[2\] y\[3\]/);
  });

  it('declares its capabilities: weight-first batched linears and fast int8 on the CPU only, weights shared, no device outputs, q4 blocks of 128 first', () => {
    expect(createNodeBackend().capabilities).toEqual({
      batchedLinears: 'weight-first',
      sharedWeights: true,
      deviceOutputs: false,
      computeDtypes: ['float32'],
      fastInt8Linears: true,
      q4BlockSizes: [128, 32],
    });
  });

  it('doctor lists the providers and how to get what is missing', () => {
    const report = doctor();
    expect(report.node).toBe(process.version);
    expect(report.onnxruntime).toBe('1.30.0');
    expect(report.providers.find((p) => p.name === 'cpu')).toEqual({ name: 'cpu', available: true });
    const cuda = report.providers.find((p) => p.name === 'cuda');
    if (cuda && !cuda.available) expect(cuda.problem).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });

  it("webgpu is 'available' exactly when a session opens on it; otherwise a typed error, or the CPU with fallback", async () => {
    const g = new GraphBuilder('twice');
    const x = g.input('x', 'float32', [2]);
    g.output(add(x, x), 'y', 'float32', [2]);
    const problem = providerProblem('webgpu');
    const reported = doctor().providers.find((p) => p.name === 'webgpu');
    expect(reported?.available).toBe(problem === null);
    if (problem === null) {
      // a machine with an adapter: the session opens and computes
      const s = await createNodeBackend({ device: 'webgpu' }).load(g.build());
      expect(Array.from((await s.run({ x: float32([2], [1, 2]) })).y.data as Float32Array)).toEqual([2, 4]);
      return;
    }
    // no adapter (this CI machine: no Vulkan): said before any session, never Dawn's raw message
    expect(problem).toMatch(/^onnxruntime-node's WebGPU provider found no GPU adapter/);
    expect(reported?.problem).toBe(problem);
    const err = (() => {
      try {
        createNodeBackend({ device: 'webgpu' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(NodeBackendError);
    expect(err).toMatchObject({
      code: 'E_PROVIDER_UNAVAILABLE',
      message: `device 'webgpu' is unavailable: ${problem}`,
    });
    const warnings: string[] = [];
    const cpu = createNodeBackend({ device: 'webgpu', fallback: 'cpu', onWarning: (m) => warnings.push(m) });
    expect(cpu.name).toBe('node:cpu');
    expect(warnings).toHaveLength(1);
    const s = await cpu.load(g.build());
    expect(Array.from((await s.run({ x: float32([2], [1, 2]) })).y.data as Float32Array)).toEqual([2, 4]);
  });
});
