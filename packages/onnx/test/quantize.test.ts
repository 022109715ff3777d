import { mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { seeded } from '@blip2/fixtures';
import { serializeSafetensors, type TensorBytes, type WeightIndex } from '@blip2/safetensors';
import { openWeightsFromFile } from '@blip2/safetensors/node';
import { type BuiltGraph, float32, fromOrt, maxAbsDiff, type Tensor, toOrt } from '@blip2/tensor';
import * as ortNode from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import {
  dequantizeQ4,
  dequantizeQ8,
  fromFloat16,
  GraphBuildError,
  GraphBuilder,
  linear,
  type PackedEntry,
  QUANTIZATION_FORMAT,
  type QuantizationManifest,
  q4BlockSize,
  q4HasZeroPoints,
  q4PaddedK,
  quantizeQ4,
  quantizeQ8,
  toFloat16,
  withPackedWeights,
} from '../src/index.js';

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const dir = mkdtempSync(join(tmpdir(), 'onnx-quantize-'));
const opened: WeightIndex[] = [];
afterAll(() => Promise.all(opened.map((w) => w.close())));

type Format = 'q4' | 'q4f16' | 'q8' | 'fp16';

/** A [N, K] weight and bias stored in `format`, as an export writes them, behind the packed lookup. */
async function checkpoint(
  format: Format,
  w: Float32Array,
  b: Float32Array,
  n: number,
  k: number,
  file: string,
) {
  const tensors: Record<string, TensorBytes> = { 'fc.bias': { dtype: 'F32', shape: [n], data: bytes(b) } };
  const packed: Record<string, PackedEntry> = {};
  let deq: Float32Array;
  if (format === 'fp16') {
    const half = toFloat16(w);
    tensors['fc.weight'] = { dtype: 'F16', shape: [n, k], data: bytes(half) };
    deq = fromFloat16(half);
  } else if (format === 'q8') {
    const p = quantizeQ8(w, n, k);
    tensors['fc.weight.q8'] = { dtype: 'U8', shape: [k, n], data: bytes(p.data) };
    tensors['fc.weight.q8_scales'] = { dtype: 'F32', shape: [n], data: bytes(p.scales) };
    packed['fc.weight'] = { format, shape: [n, k], data: 'fc.weight.q8', scales: 'fc.weight.q8_scales' };
    deq = dequantizeQ8(p, n, k);
  } else {
    const block = q4BlockSize(k, 128);
    const p = quantizeQ4(w, n, k, block);
    const nb = Math.ceil(k / block);
    const scales =
      format === 'q4f16'
        ? ({ dtype: 'F16', shape: [n, nb], data: bytes(toFloat16(p.scales)) } as const)
        : ({ dtype: 'F32', shape: [n, nb], data: bytes(p.scales) } as const);
    tensors['fc.weight.q4'] = { dtype: 'U8', shape: [n, nb, block / 2], data: p.data };
    tensors['fc.weight.q4_scales'] = scales;
    if (p.zeroPoints)
      tensors['fc.weight.q4_zero_points'] = {
        dtype: 'U8',
        shape: [n, Math.ceil(nb / 2)],
        data: p.zeroPoints,
      };
    packed['fc.weight'] = {
      format,
      shape: [n, k],
      block_size: block,
      data: 'fc.weight.q4',
      scales: 'fc.weight.q4_scales',
      ...(p.zeroPoints ? { zero_points: 'fc.weight.q4_zero_points' } : {}),
    };
    deq = dequantizeQ4(
      format === 'q4f16' ? { ...p, scales: fromFloat16(toFloat16(p.scales)) } : p,
      n,
      k,
      block,
    );
  }
  const path = join(dir, file);
  writeFileSync(path, serializeSafetensors(tensors));
  const index = await openWeightsFromFile(path);
  opened.push(index);
  const manifest: QuantizationManifest = {
    format: QUANTIZATION_FORMAT,
    version: 1,
    dtype: { vision: 'fp32', qformer: 'fp32', language_model: 'fp32' },
    weights: packed,
  };
  return { lookup: withPackedWeights(index, manifest), deq };
}

async function run(graph: BuiltGraph, feeds: Record<string, Tensor>) {
  const folder = dirname(realpathSync(graph.externalData[0].uri));
  const s = await ortNode.InferenceSession.create(graph.bytes, {
    extra: { session: { disable_prepacking: '1', model_external_initializers_file_folder_path: folder } },
  });
  const out = await s.run(
    Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v, ortNode.Tensor)])),
  );
  await s.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, fromOrt(v as ortNode.Tensor)]));
}

/** x W^T + b in float64 over the dequantized weight. */
function reference(x: Float32Array, rows: number, w: Float32Array, b: Float32Array, n: number, k: number) {
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < n; o++) {
      let s = b[o];
      for (let i = 0; i < k; i++) s += x[r * k + i] * w[o * k + i];
      y[r * n + o] = s;
    }
  return y;
}

describe('packers', () => {
  it('q4 keeps every weight within half a step of its block, and zero exact', () => {
    const rand = seeded(3);
    const [n, k] = [7, 80]; // 2.5 blocks per row: the last one padded
    const w = Float32Array.from({ length: n * k }, rand);
    w[5] = 0;
    const p = quantizeQ4(w, n, k, 32, false);
    expect(p.data.length).toBe(n * 3 * 16);
    expect(p.scales.length).toBe(n * 3);
    expect(p.zeroPoints?.length).toBe(n * 2);
    const d = dequantizeQ4(p, n, k);
    expect(d[5]).toBe(0);
    for (let i = 0; i < n * k; i++) {
      const scale = p.scales[Math.floor(i / k) * 3 + Math.floor((i % k) / 32)];
      expect(Math.abs(d[i] - w[i])).toBeLessThanOrEqual(scale / 2 + 1e-7);
    }
  });

  it('q4 without zero points (N * ceil(n_blocks / 2) bytes not whole 32-bit words) is symmetric around 8', () => {
    const rand = seeded(4);
    const [n, k] = [7, 80];
    expect(q4HasZeroPoints(n, k)).toBe(false);
    expect(q4HasZeroPoints(8, k)).toBe(true);
    const w = Float32Array.from({ length: n * k }, rand);
    w[5] = 0;
    const p = quantizeQ4(w, n, k);
    expect(p.zeroPoints).toBeUndefined();
    const d = dequantizeQ4(p, n, k);
    expect(d[5]).toBe(0);
    for (let i = 0; i < n * k; i++) {
      const scale = p.scales[Math.floor(i / k) * 3 + Math.floor((i % k) / 32)];
      expect(Math.abs(d[i] - w[i])).toBeLessThanOrEqual(scale / 2 + 1e-7);
    }
  });

  it('q8 is symmetric per output row, within half a step, and transposed to [K, N]', () => {
    const rand = seeded(4);
    const [n, k] = [5, 9];
    const w = Float32Array.from({ length: n * k }, rand);
    const p = quantizeQ8(w, n, k);
    expect(p.data[1 * n + 2]).toBe(Math.round(w[2 * k + 1] / p.scales[2]));
    const d = dequantizeQ8(p, n, k);
    for (let i = 0; i < n * k; i++)
      expect(Math.abs(d[i] - w[i])).toBeLessThanOrEqual(p.scales[Math.floor(i / k)] / 2 + 1e-7);
  });

  it('q4 blocks are the preferred 128 where K is a whole number of them, else 32 (the default)', () => {
    expect([1408, 2560, 6144, 768, 2048, 96, 80, 24].map((k) => q4BlockSize(k, 128))).toEqual([
      128, 128, 128, 128, 128, 32, 32, 32,
    ]);
    expect(q4BlockSize(2560)).toBe(32);
    const rand = seeded(5);
    const [n, k] = [4, 384];
    const w = Float32Array.from({ length: n * k }, rand);
    const p = quantizeQ4(w, n, k, 128);
    expect([p.data.length, p.scales.length, p.zeroPoints?.length]).toEqual([n * 3 * 64, n * 3, n * 2]);
    const d = dequantizeQ4(p, n, k, 128);
    for (let i = 0; i < n * k; i++) {
      const scale = p.scales[Math.floor(i / k) * 3 + Math.floor((i % k) / 128)];
      expect(Math.abs(d[i] - w[i])).toBeLessThanOrEqual(scale / 2 + 1e-7);
    }
  });

  it('fp16 rounds to nearest even', () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: even mantissa wins
    expect([...toFloat16(Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, -0))]).toEqual([
      0x3c00, 0x3c02, 0x7c00, 0x8000,
    ]);
  });
});

describe('linear over packed weights, on onnxruntime-node', () => {
  // the bound each op's own activation rounding allows (per-block int8 for MatMulNBits at
  // accuracy_level 4, per-tensor uint8 for DynamicQuantizeMatMul, float16 inputs for fp16);
  // a wrong layout is off by the size of the weights themselves (~1)
  const TOLERANCE: Record<Format, number> = { q4: 0.02, q4f16: 0.03, q8: 0.03, fp16: 0.01 };
  for (const format of ['q4', 'q4f16', 'q8', 'fp16'] as const) {
    // N = 23 at K = 64: 23 zero-point bytes, so q4 packs it symmetric without them; K = 80 and
    // 24 are not whole blocks of 32: q4 multiplies over q4PaddedK, its rows padded with zeros;
    // K = 384 (q4 only: the others' tolerances are set for K <= 80) is three blocks of 128,
    // the block of every real checkpoint's widths
    const shapes: (readonly [number, number])[] = [
      ...(format.startsWith('q4') ? [[24, 384] as const] : []),
      [24, 64],
      [24, 80],
      [23, 64],
      [24, 24],
    ];
    for (const [n, k] of shapes) {
      it(`${format}, N=${n}, K=${k}: x deq(W)^T + b at 1 and 6 rows`, async () => {
        const rand = seeded(k + n);
        const w = Float32Array.from({ length: n * k }, rand);
        const b = Float32Array.from({ length: n }, rand);
        const { lookup, deq } = await checkpoint(format, w, b, n, k, `${format}-${n}-${k}.safetensors`);
        const g = new GraphBuilder(`${format}-linear`, {
          weights: lookup,
          float16Compute: format === 'fp16',
        });
        const x = g.input('x', 'float32', ['batch', 'seq', k]);
        g.output(linear(x, g.weight('fc.weight', [n, k]), g.weight('fc.bias', [n])), 'y', 'float32', [
          'batch',
          'seq',
          n,
        ]);
        const graph = g.build();
        const op = { q4: 'MatMulNBits', q4f16: 'MatMulNBits', q8: 'DynamicQuantizeMatMul', fp16: 'Gemm' }[
          format
        ];
        expect(new TextDecoder().decode(graph.bytes)).toContain(op);
        const padded = format.startsWith('q4') && q4PaddedK(k) !== k;
        expect(new TextDecoder().decode(graph.bytes).includes('Pad'), 'Pad before MatMulNBits').toBe(padded);
        for (const [batch, seq] of [
          [1, 1],
          [2, 3],
        ]) {
          const xs = float32(
            [batch, seq, k],
            Float32Array.from({ length: batch * seq * k }, () => 2 * rand()),
          );
          const { y } = await run(graph, { x: xs });
          expect(y.dims).toEqual([batch, seq, n]);
          const ref = float32([batch, seq, n], reference(xs.data, batch * seq, deq, b, n, k));
          const exact = float32([batch, seq, n], reference(xs.data, batch * seq, w, b, n, k));
          const diff = maxAbsDiff(y, ref);
          expect(diff).toBeLessThanOrEqual(TOLERANCE[format]);
          // the check can fail: quantization itself moves the product by more than the op's rounding
          if (format !== 'fp16') expect(maxAbsDiff(ref, exact)).toBeGreaterThan(diff / 4);
        }
      });
    }
  }

  it('the float weight of a packed linear is not in the graph, nor its file bytes', async () => {
    const rand = seeded(9);
    const w = Float32Array.from({ length: 16 * 32 }, rand);
    const { lookup } = await checkpoint('q4', w, new Float32Array(16), 16, 32, 'names.safetensors');
    const g = new GraphBuilder('names', { weights: lookup });
    const x = g.input('x', 'float32', [1, 32]);
    g.output(linear(x, g.weight('fc.weight')), 'y', 'float32', [1, 16]);
    const text = new TextDecoder().decode(g.build().bytes);
    expect(text).toContain('fc.weight.q4_scales');
    expect(text).not.toMatch(/fc\.weight[^.]/);
  });

  it('refuses a packed weight anywhere but a linear, and a corrupted scale tensor', async () => {
    const rand = seeded(10);
    const w = Float32Array.from({ length: 16 * 32 }, rand);
    const { lookup } = await checkpoint('q4', w, new Float32Array(16), 16, 32, 'misuse.safetensors');
    const g = new GraphBuilder('misuse', { weights: lookup });
    const ids = g.input('ids', 'int64', [1]);
    const table = g.weight('fc.weight');
    expect(() => g.op1('Gather', [table, ids])).toThrow(/stored packed \(q4\) and only a linear/);

    const bad = withPackedWeights(lookup, {
      format: QUANTIZATION_FORMAT,
      version: 1,
      dtype: { vision: 'q4', qformer: 'q4', language_model: 'q4' },
      weights: {
        'fc.weight': {
          format: 'q4',
          shape: [16, 64], // twice the K the tensors hold
          block_size: 32,
          data: 'fc.weight.q4',
          scales: 'fc.weight.q4_scales',
          zero_points: 'fc.weight.q4_zero_points',
        },
      },
    });
    const g2 = new GraphBuilder('corrupt', { weights: bad });
    let error: unknown;
    try {
      g2.weight('fc.weight');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(GraphBuildError);
    expect((error as GraphBuildError).code).toBe('E_PACKED_WEIGHT');
    expect((error as GraphBuildError).message).toMatch(/data tensor 'fc.weight.q4' .* needs U8 \[16,2,16\]/);
  });
});
