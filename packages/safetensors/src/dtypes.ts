/** The safetensors dtypes this library reads, and the @blip2/tensor dtype each becomes. */
import type { DType } from '@blip2/tensor';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';

export const DTYPES: {
  readonly [D in SafetensorsDType]: { readonly bytes: number; readonly tensor: DType };
} = {
  F32: { bytes: 4, tensor: 'float32' },
  F16: { bytes: 2, tensor: 'float16' },
  BF16: { bytes: 2, tensor: 'bfloat16' },
  I64: { bytes: 8, tensor: 'int64' },
  I32: { bytes: 4, tensor: 'int32' },
  U8: { bytes: 1, tensor: 'uint8' },
  BOOL: { bytes: 1, tensor: 'bool' },
};

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.hasOwn(DTYPES, s);
}

/** The safetensors dtype that stores a @blip2/tensor dtype. */
export function safetensorsDTypeOf(dtype: DType): SafetensorsDType {
  const found = (Object.keys(DTYPES) as SafetensorsDType[]).find((d) => DTYPES[d].tensor === dtype);
  // every DType has an entry; the table above is exhaustive
  return found!;
}
