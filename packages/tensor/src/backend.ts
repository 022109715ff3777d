/**
 * The seam between graphs and runtimes (onnxruntime's `common/` vs `node/`/`web/`).
 * Model modules produce `BuiltGraph`s; a backend turns one into a `Session`.
 * Nothing here imports a runtime.
 */
import type { AnyTensor } from './device.js';
import type { DType, Tensor } from './tensor.js';

/** One input or output of a graph; a string dim is symbolic (dynamic). */
export interface GraphIO {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly (number | string)[];
}

/**
 * A weights file the graph's external-data initializers point into.
 * `location` is the name written in the graph (a bare file name, never `..` or absolute);
 * `uri` is where the file really is: an absolute file path (Node) or a URL (web).
 */
export interface ExternalDataFile {
  readonly location: string;
  readonly uri: string;
  /** bytes, when known: lets web backends report progress and check what they fetched */
  readonly size?: number;
}

/** A serialized ONNX model plus what is needed to run it. */
export interface BuiltGraph {
  /** e.g. 'vision_model', 'opt.prefill' */
  readonly name: string;
  /** ModelProto bytes */
  readonly bytes: Uint8Array;
  readonly inputs: readonly GraphIO[];
  readonly outputs: readonly GraphIO[];
  readonly externalData: readonly ExternalDataFile[];
}

export interface LoadOptions {
  /**
   * Outputs that should stay on the device the graph runs on (the KV cache on the GPU),
   * returned by `runOnDevice` as `DeviceTensor`s. Backends whose outputs already live
   * where compute is (CPU, wasm) ignore it; names that are not outputs of the graph are an error.
   */
  readonly keepOnDevice?: readonly string[];
  readonly signal?: AbortSignal;
}

export interface Session {
  readonly name: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * Runs the graph; `outputs` limits what is fetched (default: all). Every output comes
   * back on the CPU (outputs kept on the device are downloaded and their device copy freed).
   * Feeds may be device tensors another run of the same backend returned.
   */
  run(
    feeds: Readonly<Record<string, AnyTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor>>;
  /**
   * Like `run`, but outputs named in the load's `keepOnDevice` come back as `DeviceTensor`s
   * when the backend kept them on its device (the caller then owns them: `dispose()`).
   * Other outputs, and all outputs on CPU backends, are CPU `Tensor`s.
   */
  runOnDevice(
    feeds: Readonly<Record<string, AnyTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, AnyTensor>>;
  release(): Promise<void>;
}

/**
 * How a linear layer's matrix product is laid out in a graph (see @blip2/onnx's `linear`):
 * - 'gemm': `Gemm(transB=1)` over torch's [out, in] weight, as stored;
 * - 'weight-first': the same product written weight-first, which onnxruntime's CPU
 *   provider runs without re-packing the weight on every run of several rows.
 */
export type LinearLayout = 'gemm' | 'weight-first';

/**
 * What a backend runs well, declared so model modules choose graph layouts and
 * session counts from it rather than from the backend's `name`. An open record:
 * other packages add keys (e.g. packed weight formats a backend has kernels for);
 * a module reading a key it does not know takes the conservative default.
 */
export interface BackendCapabilities {
  /**
   * The layout of linears that multiply several rows (beams, batches) this backend runs
   * fastest. A module builds an extra weight-first graph for such steps only where it
   * says 'weight-first' (a single row always runs Gemm).
   */
  readonly batchedLinears: LinearLayout;
  /**
   * Whether another session over the same weights is cheap: true where weights are
   * mapped in place (onnxruntime-node), false where each session holds its own copy
   * (onnxruntime-web copies them into wasm memory).
   */
  readonly sharedWeights: boolean;
  /** Whether outputs named in `keepOnDevice` really stay on a device (WebGPU), so caches need device-side reorders. */
  readonly deviceOutputs: boolean;
  /** Float dtypes the backend computes in natively (float32 always). */
  readonly computeDtypes: readonly DType[];
  /**
   * Whether int8 x int8 products (`DynamicQuantizeMatMul`) run on the backend's own
   * compute device and beat float32 there, so a half-precision checkpoint is best served
   * as q8 when no dtype is asked (docs/backends.md). Absent: false.
   */
  readonly fastInt8Linears?: boolean;
  /**
   * The blocks along K (q4's `MatMulNBits`) this backend multiplies right, the one it runs
   * fastest first: weights quantized at load are packed in the first, and an export packed
   * in another is refused. Absent: [32].
   */
  readonly q4BlockSizes?: readonly number[];
  readonly [key: string]: unknown;
}

export interface Backend {
  /** e.g. 'node:cpu', 'web:webgpu': for messages and reports; decisions read `capabilities` */
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  load(graph: BuiltGraph, options?: LoadOptions): Promise<Session>;
  /**
   * Drops what the backend holds for later loads (fetched weight files) but the files of
   * `keep` (their URIs): called with the files the graphs still to load use, and once every
   * graph of a checkpoint is loaded. Backends that hold nothing leave it out.
   */
  clearWeightCache?(keep?: readonly string[]): void;
}
