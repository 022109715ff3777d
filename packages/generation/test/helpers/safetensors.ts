/** Just enough safetensors reading for the test models (float32 tensors only). */
import { readFileSync } from 'node:fs';

export interface F32 {
  readonly shape: number[];
  readonly data: Float32Array;
}

export function readSafetensors(path: string): Map<string, F32> {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, F32>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'F32')
      throw new Error(`${path}: ${name} is ${info.dtype}, the test reader reads F32 only`);
    const [start, end] = info.data_offsets;
    const copy = bytes.subarray(8 + headerLength + start, 8 + headerLength + end);
    const data = new Float32Array(new Uint8Array(copy).buffer);
    out.set(name, { shape: info.shape, data });
  }
  return out;
}
