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

export function serializeSafetensors(
  tensors: Readonly<Record<string, TensorBytes>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (!isSafetensorsDType(t.dtype)) {
      throw new SafetensorsError(
        'E_WRITE',
        name,
        `dtype ${JSON.stringify(t.dtype)} is not a safetensors dtype`,
      );
    }
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPES[t.dtype].bytes;
    if (t.data.length !== expected) {
      throw new SafetensorsError(
        'E_WRITE',
        name,
        `${t.data.length} bytes given, ${t.dtype} [${t.shape.join(', ')}] needs ${expected}`,
      );
    }
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const t of Object.values(tensors)) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}
