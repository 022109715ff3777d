// Minimal safetensors access for these tests: header parsing, float32 reads, and a
// writer for rewritten checkpoints. (@blip2/safetensors is written concurrently;
// the graph code only needs the WeightLookup interface, which this satisfies.)
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { StoredDType, WeightLookup } from '@blip2/onnx';
import {
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  type Tensor,
  tensor,
} from '@blip2/tensor';

export interface Entry {
  name: string;
  dtype: StoredDType;
  shape: number[];
  file: string;
  offset: number;
  byteLength: number;
}

export interface Checkpoint extends WeightLookup {
  readonly names: string[];
  float32(name: string): Tensor<'float32'>;
}

function parseHeader(path: string): { entries: Entry[]; bytes: Buffer } {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: StoredDType; shape: number[]; data_offsets: [number, number] }
  >;
  const entries: Entry[] = [];
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    entries.push({
      name,
      dtype: h.dtype,
      shape: h.shape,
      file: basename(path),
      offset: 8 + n + h.data_offsets[0],
      byteLength: h.data_offsets[1] - h.data_offsets[0],
    });
  }
  return { entries, bytes };
}

/** Opens one or more safetensors files (shards) as one checkpoint. */
export function openCheckpoint(...paths: string[]): Checkpoint {
  const byName = new Map<string, Entry>();
  const files = new Map<string, { path: string; bytes: Buffer }>();
  for (const path of paths) {
    const { entries, bytes } = parseHeader(path);
    files.set(basename(path), { path, bytes });
    for (const e of entries) byName.set(e.name, e);
  }
  const get = (name: string) => {
    const e = byName.get(name);
    if (!e) throw new Error(`no tensor '${name}' in ${paths.join(', ')}`);
    return e;
  };
  return {
    names: [...byName.keys()],
    has: (name) => byName.has(name),
    get,
    fileOf: (info) => {
      const f = files.get(info.file);
      if (!f) throw new Error(`unknown file ${info.file}`);
      return { name: info.file, uri: f.path, size: f.bytes.length };
    },
    float32(name) {
      const e = get(name);
      const file = files.get(e.file)?.bytes as Buffer;
      return tensor('float32', e.shape, decode(file.subarray(e.offset, e.offset + e.byteLength), e.dtype));
    },
  };
}

function decode(raw: Uint8Array, dtype: StoredDType): Float32Array {
  const copy = new Uint8Array(raw); // aligned copy
  if (dtype === 'F32') return new Float32Array(copy.buffer);
  const half = new Uint16Array(copy.buffer);
  const conv = dtype === 'F16' ? float16ToFloat32 : bfloat16ToFloat32;
  return Float32Array.from(half, conv);
}

export type StoreAs = 'F32' | 'F16' | 'BF16';

/** Writes float32 tensors as a safetensors file, optionally rounded to F16 / BF16. */
export function writeCheckpoint(
  path: string,
  tensors: Record<string, Tensor<'float32'>>,
  as: StoreAs = 'F32',
): void {
  const header: Record<string, unknown> = {};
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes =
      as === 'F32'
        ? new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)
        : new Uint8Array(
            Uint16Array.from(t.data, as === 'F16' ? float32ToFloat16 : float32ToBfloat16).buffer,
          );
    header[name] = { dtype: as, shape: t.dims, data_offsets: [off, off + bytes.length] };
    blobs.push(bytes);
    off += bytes.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const hb = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + hb.length + off);
  out.writeBigUInt64LE(BigInt(hb.length), 0);
  hb.copy(out, 8);
  let p = 8 + hb.length;
  for (const b of blobs) {
    out.set(b, p);
    p += b.length;
  }
  writeFileSync(path, out);
}
