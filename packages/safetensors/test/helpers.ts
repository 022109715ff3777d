import { readFileSync } from 'node:fs';

/**
 * An independent reading of a safetensors file, straight from the format's
 * description (u64 length, JSON, data section), to check the library against.
 */
export function plainParse(path: string): Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = new Uint8Array(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]));
    out.set(name, { dtype: e.dtype, shape: e.shape, bytes });
  }
  return out;
}

/** A file with a hand-written header (for malformed cases) and `dataBytes` of data. */
export function rawFile(header: unknown, dataBytes: number, text = JSON.stringify(header)): Uint8Array {
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Byte equality without vitest's element-wise diffing (slow on large arrays). */
export function expectSameBytes(a: ArrayBufferView, b: ArrayBufferView, what: string): void {
  const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (!x.equals(y)) {
    let i = 0;
    while (i < Math.min(x.length, y.length) && x[i] === y[i]) i++;
    throw new Error(
      `${what}: bytes differ (lengths ${x.length} and ${y.length}, first difference at byte ${i})`,
    );
  }
}
