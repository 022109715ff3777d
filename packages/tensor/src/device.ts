/**
 * Tensors that stay where a runtime computed them (a WebGPU buffer, ...), so a
 * graph's output can feed the next run without a round trip through the CPU:
 * the key/value cache between generation steps is the case this exists for
 * (onnxruntime's IO binding, `preferredOutputLocation`). Everything else in the
 * project sees plain CPU `Tensor`s; only code that asks for device outputs
 * (`Session.runOnDevice`) ever holds one of these.
 */
import type { DType, Tensor } from './tensor.js';

/** Where a device tensor's data lives, in onnxruntime's words. */
export type DeviceLocation = 'gpu-buffer' | 'ml-tensor';

export interface DeviceTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly location: DeviceLocation;
  /** the runtime's own tensor object; opaque outside the backend that made it */
  readonly handle: unknown;
  /** true once `dispose()` ran: the data is gone and the tensor may not be fed again */
  readonly disposed: boolean;
  /** Copies the data to the CPU (the device copy stays until `dispose()`). */
  download(): Promise<Tensor<D>>;
  /** Frees the device memory now instead of whenever the runtime's garbage collection gets to it. Idempotent. */
  dispose(): void;
}

/** What a session takes as a feed and gives back for outputs kept on the device. */
export type AnyTensor<D extends DType = DType> = Tensor<D> | DeviceTensor<D>;

export function isDeviceTensor<D extends DType>(t: AnyTensor<D>): t is DeviceTensor<D> {
  return !('data' in t) && 'location' in t;
}

/** The CPU tensor, downloading it when it lives on a device. */
export async function toCpu<D extends DType>(t: AnyTensor<D>): Promise<Tensor<D>> {
  return isDeviceTensor(t) ? t.download() : t;
}

/** Frees `t` when it lives on a device; CPU tensors are left to the garbage collector. */
export function disposeTensor(t: AnyTensor): void {
  if (isDeviceTensor(t)) t.dispose();
}
