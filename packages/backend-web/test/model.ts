/**
 * A small checkpoint and two graphs over it for the tests: the graphs share one
 * model.safetensors, as BLIP-2's vision, Q-Former and language-model graphs do.
 *   head: probs = softmax(logits), logits = fc2(gelu(LayerNorm(fc1(x))))   x [batch, seq, IN]
 *   proj: y = proj(x) with an f16 weight (read through a Cast)  x [batch, IN]
 * `headReference` / `projReference` compute the same in float64.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seeded } from '@blip2/fixtures';
import { GraphBuilder, gelu, layerNorm, linear, softmax } from '@blip2/onnx';
import { serializeSafetensors } from '@blip2/safetensors';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { type BuiltGraph, float16ToFloat32, float32ToFloat16 } from '@blip2/tensor';

export const IN = 16;
export const HID = 32;
export const OUT = 10;
const EPS = 1e-5;

const rand = seeded(2023);
const values = (n: number, scale = 1, shift = 0) =>
  Float32Array.from({ length: n }, () => shift + scale * rand());
export const W = {
  fc1: values(HID * IN, 0.5),
  fc1Bias: values(HID, 0.2),
  lnWeight: values(HID, 0.4, 1),
  lnBias: values(HID, 0.2),
  fc2: values(OUT * HID, 0.8),
  fc2Bias: values(OUT, 0.2),
  // stored as f16: the reference uses the rounded values
  proj: Uint16Array.from(values(HID * IN, 0.5), (v) => float32ToFloat16(v)),
  projBias: values(HID, 0.2),
};

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Writes model.safetensors into `dir`; returns its bytes' length. */
export function writeCheckpoint(dir: string): number {
  const bytes = serializeSafetensors({
    'fc1.weight': { dtype: 'F32', shape: [HID, IN], data: f32(W.fc1) },
    'fc1.bias': { dtype: 'F32', shape: [HID], data: f32(W.fc1Bias) },
    'ln.weight': { dtype: 'F32', shape: [HID], data: f32(W.lnWeight) },
    'ln.bias': { dtype: 'F32', shape: [HID], data: f32(W.lnBias) },
    'fc2.weight': { dtype: 'F32', shape: [OUT, HID], data: f32(W.fc2) },
    'fc2.bias': { dtype: 'F32', shape: [OUT], data: f32(W.fc2Bias) },
    'proj.weight': { dtype: 'F16', shape: [HID, IN], data: new Uint8Array(W.proj.buffer) },
    'proj.bias': { dtype: 'F32', shape: [HID], data: f32(W.projBias) },
  });
  writeFileSync(join(dir, 'model.safetensors'), bytes);
  return bytes.byteLength;
}

export async function buildGraphs(dir: string): Promise<{ head: BuiltGraph; proj: BuiltGraph }> {
  const weights = await openWeightsFromDir(dir);
  try {
    const h = new GraphBuilder('head', { weights });
    const x = h.input('x', 'float32', ['batch', 'seq', IN]);
    const hidden = gelu(
      layerNorm(
        linear(x, h.weight('fc1.weight'), h.weight('fc1.bias')),
        h.weight('ln.weight'),
        h.weight('ln.bias'),
        EPS,
      ),
    );
    const logits = linear(hidden, h.weight('fc2.weight'), h.weight('fc2.bias'));
    h.output(logits, 'logits', 'float32', ['batch', 'seq', OUT]);
    h.output(softmax(logits, -1), 'probs', 'float32', ['batch', 'seq', OUT]);

    const p = new GraphBuilder('proj', { weights });
    const px = p.input('x', 'float32', ['batch', IN]);
    p.output(linear(px, p.weight('proj.weight'), p.weight('proj.bias')), 'y', 'float32', ['batch', HID]);
    return { head: h.build(), proj: p.build() };
  } finally {
    await weights.close();
  }
}

/** The same graph, pointing at its weights somewhere else (a URL). */
export function withWeightsAt(graph: BuiltGraph, uri: (location: string) => string): BuiltGraph {
  return { ...graph, externalData: graph.externalData.map((f) => ({ ...f, uri: uri(f.location) })) };
}

// erf by its Maclaurin series: exact to ~1e-12 on the |x| < 6 a LayerNorm output spans
function erf(x: number): number {
  if (Math.abs(x) > 6) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let n = 1; n < 200 && Math.abs(term) > 1e-17; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

function affine(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  inF: number,
  outF: number,
): Float64Array {
  const y = new Float64Array(outF);
  for (let o = 0; o < outF; o++) {
    let s = b[o];
    for (let i = 0; i < inF; i++) s += x[i] * w[o * inF + i];
    y[o] = s;
  }
  return y;
}

export function headReference(x: Float32Array, rows: number): { logits: Float32Array; probs: Float32Array } {
  const out = new Float32Array(rows * OUT);
  const allLogits = new Float32Array(rows * OUT);
  for (let r = 0; r < rows; r++) {
    const y = affine(x.subarray(r * IN, (r + 1) * IN), W.fc1, W.fc1Bias, IN, HID);
    const mean = y.reduce((a, b) => a + b, 0) / HID;
    const variance = y.reduce((a, b) => a + (b - mean) ** 2, 0) / HID;
    const g = y.map((v, i) => {
      const z = ((v - mean) / Math.sqrt(variance + EPS)) * W.lnWeight[i] + W.lnBias[i];
      return 0.5 * z * (1 + erf(z / Math.SQRT2));
    });
    const logits = affine(g, W.fc2, W.fc2Bias, HID, OUT);
    allLogits.set(logits, r * OUT);
    const max = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    e.forEach((v, i) => {
      out[r * OUT + i] = v / sum;
    });
  }
  return { logits: allLogits, probs: out };
}

export function projReference(x: Float32Array, rows: number): Float32Array {
  const w = Float64Array.from(W.proj, (h) => float16ToFloat32(h));
  const out = new Float32Array(rows * HID);
  for (let r = 0; r < rows; r++)
    out.set(affine(x.subarray(r * IN, (r + 1) * IN), w, W.projBias, IN, HID), r * HID);
  return out;
}

export function inputs(n: number, seed: number, scale = 3): Float32Array {
  const r = seeded(seed);
  return Float32Array.from({ length: n }, () => scale * r());
}
