/**
 * Conversion to and from onnxruntime tensors. onnxruntime-node and -web share
 * onnxruntime-common's Tensor, but each bundle may carry its own copy of the
 * class, so the backend passes in the constructor it uses.
 */
import type { Tensor as OrtTensor } from 'onnxruntime-common';
import { type DType, type Tensor, TensorError } from './tensor.js';

type OrtCtor = new (type: OrtTensor.Type, data: OrtTensor.DataType, dims: readonly number[]) => OrtTensor;

const TO_ORT: Record<DType, OrtTensor.Type> = {
  float32: 'float32',
  float16: 'float16',
  bfloat16: 'bfloat16' as OrtTensor.Type,
  int64: 'int64',
  int32: 'int32',
  uint8: 'uint8',
  bool: 'bool',
};

/** No copy: ORT wraps the same buffer. */
export function toOrt(t: Tensor, Ctor: OrtCtor): OrtTensor {
  return new Ctor(TO_ORT[t.dtype], t.data as OrtTensor.DataType, t.dims);
}

export function fromOrt(o: OrtTensor): Tensor {
  const dims = [...o.dims];
  switch (o.type) {
    case 'float32':
      return { dtype: 'float32', dims, data: o.data as Float32Array };
    case 'float16': {
      // onnxruntime may hand back a Float16Array where the platform has one; keep raw bits
      const d = o.data as unknown as ArrayBufferView;
      return {
        dtype: 'float16',
        dims,
        data: new Uint16Array(
          d.buffer,
          d.byteOffset,
          dims.reduce((a, b) => a * b, 1),
        ),
      };
    }
    case 'int64':
      return { dtype: 'int64', dims, data: o.data as BigInt64Array };
    case 'int32':
      return { dtype: 'int32', dims, data: o.data as Int32Array };
    case 'uint8':
      return { dtype: 'uint8', dims, data: o.data as Uint8Array };
    case 'bool':
      return { dtype: 'bool', dims, data: o.data as Uint8Array };
    default:
      throw new TensorError('E_DTYPE', `onnxruntime output of type ${o.type} is not supported`);
  }
}
