/**
 * Conversion to and from onnxruntime tensors. onnxruntime-node and -web share
 * onnxruntime-common's Tensor, but each bundle may carry its own copy of the
 * class, so the backend passes in the constructor it uses.
 */
import type { Tensor as OrtTensor } from 'onnxruntime-common';
import type { BuiltGraph, Session } from './backend.js';
import { type AnyTensor, type DeviceLocation, type DeviceTensor, isDeviceTensor } from './device.js';
import { TensorError } from './errors.js';
import { checkFeeds } from './feeds.js';
import type { DType, Tensor } from './tensor.js';

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

/** No copy: ORT wraps the same buffer, or for a device tensor is handed back its own tensor. */
export function toOrt(t: AnyTensor, Ctor: OrtCtor): OrtTensor {
  if (isDeviceTensor(t)) {
    if (!(t instanceof OrtDeviceTensor)) {
      throw new TensorError(
        'E_FEEDS',
        `a ${t.location} tensor [${t.dims.join(', ')}] not made by onnxruntime cannot be fed to onnxruntime`,
      );
    }
    return t.handle;
  }
  return new Ctor(TO_ORT[t.dtype], t.data as OrtTensor.DataType, t.dims);
}

function dtypeOf(type: OrtTensor.Type): DType {
  switch (type) {
    case 'float32':
    case 'float16':
    case 'int64':
    case 'int32':
    case 'uint8':
    case 'bool':
      return type;
    default:
      throw new TensorError('E_DTYPE', `onnxruntime output of type ${type} is not supported`);
  }
}

/** A CPU tensor over data onnxruntime returned (no copy). */
function fromOrtData(type: OrtTensor.Type, data: OrtTensor.DataType, dims: readonly number[]): Tensor {
  const dtype = dtypeOf(type);
  if (dtype === 'float16') {
    // onnxruntime may hand back a Float16Array where the platform has one; keep raw bits
    const d = data as unknown as ArrayBufferView;
    return {
      dtype,
      dims: [...dims],
      data: new Uint16Array(
        d.buffer,
        d.byteOffset,
        dims.reduce((a, b) => a * b, 1),
      ),
    };
  }
  return { dtype, dims: [...dims], data } as Tensor;
}

export function fromOrt(o: OrtTensor): Tensor {
  return fromOrtData(o.type, o.data, o.dims);
}

/**
 * An onnxruntime tensor that lives on a device (`location` 'gpu-buffer' or
 * 'ml-tensor'): the runtime's own object is the handle, fed back untouched.
 */
export class OrtDeviceTensor implements DeviceTensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly location: DeviceLocation;
  private released = false;

  constructor(readonly handle: OrtTensor) {
    this.dtype = dtypeOf(handle.type);
    this.dims = [...handle.dims];
    this.location = handle.location as DeviceLocation;
  }

  get disposed(): boolean {
    return this.released;
  }

  async download(): Promise<Tensor> {
    if (this.released) {
      throw new TensorError(
        'E_DISPOSED',
        `cannot download a ${this.location} tensor [${this.dims.join(', ')}] that was already disposed`,
      );
    }
    // getData() copies to the CPU and keeps the device buffer (releaseData = false)
    const data = await this.handle.getData(false);
    return fromOrtData(this.handle.type, data as OrtTensor.DataType, this.dims);
  }

  dispose(): void {
    if (this.released) return;
    this.released = true;
    this.handle.dispose();
  }
}

const onDevice = (o: OrtTensor) => o.location === 'gpu-buffer' || o.location === 'ml-tensor';

/** What the seam needs of an onnxruntime InferenceSession (onnxruntime-node's and -web's both fit). */
export interface OrtInferenceSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Readonly<Record<string, OrtTensor>>>;
  run(
    feeds: Record<string, OrtTensor>,
    fetches: readonly string[],
  ): Promise<Readonly<Record<string, OrtTensor>>>;
  release(): Promise<void>;
}

export interface OrtSessionOptions {
  /** the runtime's own Tensor class (each onnxruntime bundle may carry its own copy) */
  readonly Tensor: OrtCtor;
  /** how errors name the runtime, e.g. 'onnxruntime-web' */
  readonly runtime: string;
  /** the backend's typed error (`E_RELEASED`, `E_RUN`) */
  readonly error: (code: 'E_RELEASED' | 'E_RUN', message: string, cause?: unknown) => Error;
}

/**
 * A `Session` over an onnxruntime InferenceSession, shared by the Node and web
 * backends: feeds are checked against the graph before the runtime sees them, a
 * runtime failure names the feeds' dims, and release is idempotent.
 */
export class OrtSession implements Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  private released = false;

  constructor(
    private readonly graph: BuiltGraph,
    private readonly session: OrtInferenceSession,
    private readonly options: OrtSessionOptions,
  ) {
    this.inputNames = session.inputNames;
    this.outputNames = session.outputNames;
  }

  get name(): string {
    return this.graph.name;
  }

  async run(
    feeds: Readonly<Record<string, AnyTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const result = await this.runOrt(feeds, outputs);
    const out: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(result)) {
      if (onDevice(v)) {
        // getData(true) downloads and frees the device buffer: nothing keeps it after this
        out[k] = fromOrtData(v.type, (await v.getData(true)) as OrtTensor.DataType, v.dims);
      } else out[k] = fromOrt(v);
    }
    return out;
  }

  async runOnDevice(
    feeds: Readonly<Record<string, AnyTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, AnyTensor>> {
    const result = await this.runOrt(feeds, outputs);
    const out: Record<string, AnyTensor> = {};
    for (const [k, v] of Object.entries(result)) out[k] = onDevice(v) ? new OrtDeviceTensor(v) : fromOrt(v);
    return out;
  }

  private async runOrt(
    feeds: Readonly<Record<string, AnyTensor>>,
    outputs: readonly string[] | undefined,
  ): Promise<Readonly<Record<string, OrtTensor>>> {
    const { error, runtime } = this.options;
    if (this.released) throw error('E_RELEASED', `${this.name}: session was released`);
    checkFeeds(this.name, this.graph.inputs, feeds);
    const ortFeeds: Record<string, OrtTensor> = {};
    for (const [k, t] of Object.entries(feeds)) ortFeeds[k] = toOrt(t, this.options.Tensor);
    try {
      return outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    } catch (e) {
      const dims = Object.entries(feeds)
        .map(([k, t]) => `${k}[${t.dims.join(',')}]${isDeviceTensor(t) ? `@${t.location}` : ''}`)
        .join(' ');
      throw error('E_RUN', `${this.name}: ${runtime} failed on ${dims}: ${(e as Error).message}`, e);
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}
