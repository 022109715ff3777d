// A tiny safetensors writer for these tests (the real one lives in @blip2/safetensors;
// this package must not depend on it).
import { writeFileSync } from 'node:fs';

export interface StTensor {
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  bytes: Uint8Array;
}

export function writeSafetensors(path: string, tensors: Record<string, StTensor>, leadingPad = 0) {
  const header: Record<string, unknown> = {};
  let off = leadingPad;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let p = 8 + hb.length + leadingPad;
  for (const t of Object.values(tensors)) {
    out.set(t.bytes, p);
    p += t.bytes.length;
  }
  writeFileSync(path, out);
  // the lookup the builder wants, computed like @blip2/safetensors does
  const infos = new Map<
    string,
    {
      name: string;
      dtype: StTensor['dtype'];
      shape: number[];
      file: string;
      offset: number;
      byteLength: number;
    }
  >();
  for (const [name, h] of Object.entries(header) as [
    string,
    { dtype: StTensor['dtype']; shape: number[]; data_offsets: number[] },
  ][]) {
    infos.set(name, {
      name,
      dtype: h.dtype,
      shape: h.shape,
      file: 'w.safetensors',
      offset: 8 + hb.length + h.data_offsets[0],
      byteLength: h.data_offsets[1] - h.data_offsets[0],
    });
  }
  return {
    has: (n: string) => infos.has(n),
    get: (n: string) => {
      const i = infos.get(n);
      if (!i) throw new Error(`no weight ${n}`);
      return i;
    },
    fileOf: () => ({ name: 'w.safetensors', uri: path, size: out.length }),
  };
}

export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function seeded(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}
