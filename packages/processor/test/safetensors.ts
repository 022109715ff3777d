/**
 * A minimal safetensors reader for the tests (8-byte little-endian header length, JSON
 * header, raw little-endian data), kept local so this package tests independently.
 */
import { readFileSync } from 'node:fs';

export interface Entry {
  dtype: string;
  shape: number[];
  data: Float32Array | Uint8Array | BigInt64Array;
}

export function readSafetensors(path: string): Map<string, Entry> {
  const buf = readFileSync(path);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLength;
  const out = new Map<string, Entry>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.subarray(base + h.data_offsets[0], base + h.data_offsets[1]);
    const copy = new Uint8Array(bytes); // aligned copy
    const data =
      h.dtype === 'F32'
        ? new Float32Array(copy.buffer)
        : h.dtype === 'U8'
          ? copy
          : h.dtype === 'I64'
            ? new BigInt64Array(copy.buffer)
            : (() => {
                throw new Error(`test helper: dtype ${h.dtype} of ${name} not handled`);
              })();
    out.set(name, { dtype: h.dtype, shape: h.shape, data });
  }
  return out;
}
