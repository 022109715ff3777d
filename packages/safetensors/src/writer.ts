/**
 * A safetensors writer, for tests and tools (sharding, random-weight checkpoints,
 * exported fp16 files). The layout follows the Rust crate: the JSON header padded
 * with spaces to a multiple of 8 so the data section starts aligned.
 */
import { DTYPES, isSafetensorsDType, type SafetensorsDType } from './dtypes.js';
import { SafetensorsError } from './errors.js';

export interface TensorBytes {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** little-endian element bytes */
  readonly data: Uint8Array;
}

/** One tensor's entry in a header: what `encodeHeader` lays out. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
}

/**
 * The file's first bytes: the 8-byte little-endian header length, then the JSON
 * header padded with spaces to a multiple of 8. Tensors follow in the order given.
 */
export function encodeHeader(
  entries: readonly TensorEntry[],
  metadata?: Readonly<Record<string, string>>,
): { head: Uint8Array; dataBytes: number } {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const { name, dtype, shape } of entries) {
    if (!isSafetensorsDType(dtype)) {
      throw new SafetensorsError(
        'E_WRITE',
        name,
        `dtype ${JSON.stringify(dtype)} is not a safetensors dtype`,
      );
    }
    const bytes = shape.reduce((a, b) => a * b, 1) * DTYPES[dtype].bytes;
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length);
  return { head, dataBytes: offset };
}

export function serializeSafetensors(
  tensors: Readonly<Record<string, TensorBytes>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const entries = Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
  const { head, dataBytes } = encodeHeader(entries, metadata);
  for (const [name, t] of Object.entries(tensors)) {
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPES[t.dtype].bytes;
    if (t.data.length !== expected) {
      throw new SafetensorsError(
        'E_WRITE',
        name,
        `${t.data.length} bytes given, ${t.dtype} [${t.shape.join(', ')}] needs ${expected}`,
      );
    }
  }
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head, 0);
  let at = head.length;
  for (const t of Object.values(tensors)) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}
