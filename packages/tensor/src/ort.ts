/**
 * Conversion to and from onnxruntime tensors. onnxruntime-node and -web share
 * onnxruntime-common's Tensor, but each bundle may carry its own copy of the
 * class, so the backend passes in the constructor it uses.
 */
import type { Tensor as OrtTensor } from 'onnxruntime-common';
import type { BuiltGraph, Session } from './backend.js';
import { checkFeeds } from './feeds.js';
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
    feeds: Readonly<Record<string, Tensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const { error, runtime } = this.options;
    if (this.released) throw error('E_RELEASED', `${this.name}: session was released`);
    checkFeeds(this.name, this.graph.inputs, feeds);
    const ortFeeds: Record<string, OrtTensor> = {};
    for (const [k, t] of Object.entries(feeds)) ortFeeds[k] = toOrt(t, this.options.Tensor);
    let result: Readonly<Record<string, OrtTensor>>;
    try {
      result = outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    } catch (e) {
      const dims = Object.entries(feeds)
        .map(([k, t]) => `${k}[${t.dims.join(',')}]`)
        .join(' ');
      throw error('E_RUN', `${this.name}: ${runtime} failed on ${dims}: ${(e as Error).message}`, e);
    }
    const out: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(result)) out[k] = fromOrt(v);
    return out;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}
