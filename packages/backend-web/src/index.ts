/**
 * onnxruntime-web behind the backend seam: WebGPU, wasm or WebNN in browsers,
 * and wasm in Node (how CI tests this package without a browser).
 *
 * Unlike backend-node, onnxruntime-web cannot map weight files: each graph's
 * external-data files are fetched (or read, in Node) into memory and handed to
 * `InferenceSession.create` as `externalData` buffers, which onnxruntime copies
 * into the 32-bit wasm heap. Files are cached per backend so the graphs of one
 * checkpoint share a single download.
 */
import {
  type Backend,
  type BackendCapabilities,
  type BuiltGraph,
  type LoadOptions,
  OrtSession,
  type Session,
} from '@blip2/tensor';
import * as ort from 'onnxruntime-web';
import { deviceProblem, type WebDevice } from './device.js';
import { WebBackendError } from './errors.js';
import { type FetchLike, WeightFileCache, type WeightProgress } from './weights.js';

export { doctor, type GpuAdapterInfo, probeWebGpu, type WebDevice, type WebDoctorReport } from './device.js';
export { WebBackendError } from './errors.js';
export type { FetchLike, WeightProgress } from './weights.js';

/**
 * wasm32 addresses 4 GiB, and the weights, the graph and every activation must fit in it.
 * Checked against whole weight files (what the graph references is not listed per range).
 */
export const WASM_MAX_WEIGHT_BYTES = 2 ** 32;

export interface WebBackendOptions {
  /** Execution provider (default 'wasm'). */
  readonly device?: WebDevice;
  /** When the device is unavailable: run on wasm (saying so once) or throw (default). */
  readonly fallback?: 'wasm' | 'error';
  /**
   * Where onnxruntime-web's .wasm/.mjs files are served from (a URL prefix ending in '/', or per-file URLs).
   * Process-wide: it is onnxruntime's `env.wasm.wasmPaths`, read when the first session loads.
   */
  readonly wasmPaths?: ort.Env.WasmPrefixOrFilePaths;
  /**
   * wasm threads. Default: onnxruntime's choice (several when the page is cross-origin isolated, else 1).
   * Process-wide, fixed when the first session loads.
   */
  readonly numThreads?: number;
  /** Used for weight URLs (default: globalThis.fetch). */
  readonly fetch?: FetchLike;
  /** Bytes done/total per weight file while it downloads. */
  readonly onProgress?: (progress: WeightProgress) => void;
  /** Human-readable notices (the wasm fallback); default console.warn. */
  readonly onWarning?: (message: string) => void;
  /** onnxruntime's own log level: 0 verbose .. 4 fatal (default 3, errors only). */
  readonly logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** Refuse graphs whose weight files together exceed this (default WASM_MAX_WEIGHT_BYTES). */
  readonly maxWeightBytes?: number;
  /** WebNN device type (default 'gpu'). */
  readonly webnnDeviceType?: 'cpu' | 'gpu' | 'npu';
}

function providersFor(
  device: WebDevice,
  o: WebBackendOptions,
): ort.InferenceSession.ExecutionProviderConfig[] {
  switch (device) {
    case 'wasm':
      return ['wasm'];
    case 'webgpu':
      // nodes the WebGPU provider lacks run on the wasm CPU provider, which onnxruntime always appends
      return ['webgpu'];
    case 'webnn':
      return [{ name: 'webnn', deviceType: o.webnnDeviceType ?? 'gpu' }];
  }
}

/**
 * On WebGPU the outputs named in keepOnDevice stay GPU buffers (onnxruntime-web's IO
 * binding) and feed the next run without a copy; the rest, logits included, are read
 * back. wasm and WebNN-on-CPU outputs are already in the memory compute uses, so there
 * is nothing to keep.
 */
function outputLocations(
  device: WebDevice,
  graph: BuiltGraph,
  keepOnDevice: readonly string[],
): ort.InferenceSession.SessionOptions['preferredOutputLocation'] {
  if (device !== 'webgpu' || keepOnDevice.length === 0) return 'cpu';
  const keep = new Set(keepOnDevice);
  return Object.fromEntries(graph.outputs.map((io) => [io.name, keep.has(io.name) ? 'gpu-buffer' : 'cpu']));
}

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

function tooLarge(graph: BuiltGraph, bytes: number, limit: number): WebBackendError {
  const files = graph.externalData.map((f) => f.location).join(', ');
  return new WebBackendError(
    'E_TOO_LARGE',
    `${graph.name}: its weight files (${files}) hold ${formatBytes(bytes)}, more than the ${formatBytes(limit)} onnxruntime-web's 32-bit wasm memory can take. ` +
      'Export it with packed weights for the browser (`blip2 export --model M --out DIR --dtype q4`; q8 and fp16 also shrink it), or run it in Node with @blip2/backend-node.',
  );
}

const sessionError = (code: 'E_RELEASED' | 'E_RUN', message: string, cause?: unknown) =>
  new WebBackendError(code, message, { cause });

export class WebBackend implements Backend {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  /** The device sessions run on (after any fallback). */
  readonly device: WebDevice;
  private readonly weights: WeightFileCache;

  /** Use createWebBackend(): probing WebGPU is asynchronous. */
  constructor(
    device: WebDevice,
    private readonly options: WebBackendOptions,
  ) {
    this.device = device;
    this.name = `web:${device}`;
    this.capabilities = {
      batchedLinears: 'gemm',
      // onnxruntime-web copies the weight files into each session's memory
      sharedWeights: false,
      deviceOutputs: device === 'webgpu',
      computeDtypes: ['float32'],
      // no WebGPU kernel; the wasm kernel onnxruntime places such nodes on inside a WebGPU
      // session gave wrong Q-Former numbers (0.26 off, tiny fixture, Chromium): q8 linears
      // take their DequantizeLinear + MatMul form there (@blip2/onnx PACKED_OPS)
      ...(device === 'webgpu' ? { DynamicQuantizeMatMul: false } : {}),
      // the WebGPU MatMulNBits of onnxruntime-web 1.30 gives wrong products for blocks of 128
      // (docs/browser.md); wasm runs onnxruntime's CPU kernel, faster at 128 (12.0 vs 15.8 s per
      // token at real size)
      q4BlockSizes: device === 'webgpu' ? [32] : [128, 32],
    };
    this.weights = new WeightFileCache({
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
  }

  async load(graph: BuiltGraph, options: LoadOptions = {}): Promise<Session> {
    const limit = this.options.maxWeightBytes ?? WASM_MAX_WEIGHT_BYTES;
    // Known sizes are checked before downloading gigabytes that could not be used.
    const announced = graph.externalData.reduce((n, f) => n + (f.size ?? 0), 0);
    if (announced > limit) throw tooLarge(graph, announced, limit);

    const files = await Promise.all(
      graph.externalData.map((f) => this.weights.get(graph.name, f, options.signal)),
    );
    const total = files.reduce((n, b) => n + b.byteLength, 0);
    if (total > limit) throw tooLarge(graph, total, limit);

    const o = this.options;
    const unknown = (options.keepOnDevice ?? []).filter((n) => !graph.outputs.some((io) => io.name === n));
    if (unknown.length) {
      throw new WebBackendError(
        'E_KEEP_ON_DEVICE',
        `${graph.name}: keepOnDevice names ${unknown.map((n) => `'${n}'`).join(', ')}, which ${unknown.length > 1 ? 'are not outputs' : 'is not an output'} of the graph (outputs are ${graph.outputs.map((io) => io.name).join(', ')})`,
      );
    }
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: providersFor(this.device, o),
      graphOptimizationLevel: 'all',
      logSeverityLevel: o.logSeverityLevel ?? 3,
      preferredOutputLocation: outputLocations(this.device, graph, options.keepOnDevice ?? []),
      externalData: graph.externalData.map((f, i) => ({ path: f.location, data: files[i] })),
    };
    try {
      const s = await ort.InferenceSession.create(graph.bytes, sessionOptions);
      return new OrtSession(graph, s, {
        Tensor: ort.Tensor,
        runtime: 'onnxruntime-web',
        error: sessionError,
      });
    } catch (e) {
      throw new WebBackendError(
        'E_LOAD',
        `${graph.name}: onnxruntime-web (${this.device}) could not create the session: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  }

  /** Number of weight files held in memory for later loads. */
  get cachedWeightFiles(): number {
    return this.weights.size;
  }

  /**
   * Lets the fetched weight files be garbage-collected, but those of `keep` (URIs): the
   * SDK keeps the files the graphs still to load use (a sharded checkpoint's language-model
   * shards while its vision shard goes), then clears all once every graph is loaded.
   */
  clearWeightCache(keep: readonly string[] = []): void {
    this.weights.clear(keep);
  }
}

/**
 * A backend on `options.device` (default 'wasm'). Resolves after checking the device
 * really works here (for WebGPU: an adapter), falling back to wasm when asked to.
 */
export async function createWebBackend(options: WebBackendOptions = {}): Promise<WebBackend> {
  const wanted = options.device ?? 'wasm';
  let device = wanted;
  const problem = await deviceProblem(wanted);
  if (problem) {
    if ((options.fallback ?? 'error') === 'error' || wanted === 'wasm') {
      throw new WebBackendError('E_PROVIDER_UNAVAILABLE', `device '${wanted}' is unavailable: ${problem}`);
    }
    (options.onWarning ?? console.warn)(
      `blip2: device '${wanted}' is unavailable, running on wasm instead (${problem.split('. ')[0]})`,
    );
    device = 'wasm';
  }
  if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
  if (options.numThreads !== undefined) ort.env.wasm.numThreads = options.numThreads;
  return new WebBackend(device, options);
}
