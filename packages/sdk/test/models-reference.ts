// Reads a fixture folder's reference (reference.json + reference.safetensors, as
// transformers computed them) for the model tests, and compares tensors the way the
// fixtures' README defines parity (max absolute difference).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerationOptions } from '@blip2/generation';
import { openWeights, SINGLE_FILE, type WeightIndex } from '@blip2/safetensors';
import { FileByteReader } from '@blip2/safetensors/node';
import { float32, int64, type Tensor } from '@blip2/tensor';

export interface ReferenceCase {
  readonly key: string;
  readonly image: string;
  readonly prompt: string;
  readonly input_ids: number[];
  readonly decoder_input_ids?: number[];
}

export interface GenerateRecord {
  readonly name: string;
  readonly kwargs: Record<string, unknown>;
  readonly new: number[][];
  readonly text: string[];
  readonly sequences_scores?: number[];
  readonly input_ids?: number[][];
  readonly attention_mask?: number[][];
}

export interface Reference {
  readonly cases: ReferenceCase[];
  readonly generate: GenerateRecord[];
  /** a float32 tensor of reference.safetensors, with a leading batch dimension of 1 added back when asked */
  tensor(name: string, batched?: boolean): Promise<Tensor<'float32'>>;
  close(): Promise<void>;
}

export async function loadReference(dir: string): Promise<Reference> {
  const json = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
  // openWeights looks for model.safetensors; the reference tensors live in reference.safetensors
  const index: WeightIndex = await openWeights((name) =>
    FileByteReader.open(join(dir, name === SINGLE_FILE ? 'reference.safetensors' : name)),
  );
  return {
    cases: json.cases,
    generate: json.generate,
    async tensor(name, batched = true) {
      const data = await index.readFloat32(name);
      const dims = index.get(name).shape;
      return float32(batched ? [1, ...dims] : dims, data);
    },
    close: () => index.close(),
  };
}

export function ids(rows: readonly (readonly number[])[]): Tensor<'int64'> {
  return int64([rows.length, rows[0].length], rows.flat());
}

/** transformers' generate kwargs (snake_case) as GenerationOptions (camelCase). */
export function generationOptions(kwargs: Record<string, unknown>): GenerationOptions {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kwargs))
    out[k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = v;
  return out as GenerationOptions;
}

/** Largest |a - b|; throws when the shapes differ so a shape bug cannot pass as a small number. */
export function maxDiff(a: Tensor, b: Tensor): number {
  if (a.dims.join() !== b.dims.join()) throw new Error(`shapes differ: [${a.dims}] vs [${b.dims}]`);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(Number(a.data[i]) - Number(b.data[i]));
    m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(m, d);
  }
  return m;
}

/** LayerNorm over the last axis, written out here so the test does not trust the graph's. */
export function layerNorm(
  x: Float32Array,
  width: number,
  weight: Float32Array,
  bias: Float32Array,
  eps: number,
): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / width; r++) {
    const row = x.subarray(r * width, (r + 1) * width);
    let mean = 0;
    for (const v of row) mean += v;
    mean /= width;
    let variance = 0;
    for (const v of row) variance += (v - mean) ** 2;
    variance /= width;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < width; i++) out[r * width + i] = (row[i] - mean) * inv * weight[i] + bias[i];
  }
  return out;
}
