/**
 * onnxruntime-node behind the backend seam. Graph bytes come from the model
 * modules; the weights they reference are mapped in place from the checkpoint
 * folder (`model_external_initializers_file_folder_path`) with pre-packing off,
 * so a multi-GB checkpoint costs page cache, not process memory, and sessions
 * open in milliseconds.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  type Backend,
  type BackendCapabilities,
  type BuiltGraph,
  type LoadOptions,
  OrtSession,
  type Session,
} from '@blip2/tensor';
import * as ort from 'onnxruntime-node';
import { NodeBackendError } from './errors.js';

export { NodeBackendError } from './errors.js';

export type NodeDevice = 'cpu' | 'cuda' | 'tensorrt' | 'dml' | 'coreml' | 'webgpu';

export interface NodeBackendOptions {
  /** Execution provider to use (default 'cpu'). */
  readonly device?: NodeDevice;
  /** What to do when the device's provider cannot load: run on CPU (saying so once) or throw (default). */
  readonly fallback?: 'cpu' | 'error';
  /** GPU index for cuda/tensorrt/dml. */
  readonly deviceId?: number;
  readonly intraOpNumThreads?: number;
  readonly interOpNumThreads?: number;
  /** onnxruntime's own log level: 0 verbose .. 4 fatal (default 3, errors only). */
  readonly logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /**
   * Pre-pack int8 weights (`DynamicQuantizeMatMul`, dtype q8) into MLAS's layout when a
   * session is created (default true): a one-row q8 linear runs ~2x faster packed, and the
   * image side 6-13% faster, at the cost of a private copy of each session's int8 weights
   * (about the file's size per session that uses them) instead of mapping them in place.
   * 4-bit weights are always pre-packed (unpacked they run ~100x slower), float ones never.
   */
  readonly prepackInt8?: boolean;
  /** Called with human-readable notices (the CPU fallback); default console.warn. */
  readonly onWarning?: (message: string) => void;
}

const require_ = createRequire(import.meta.url);

function ortBinDir(): string {
  const pkg = dirname(require_.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

const CUDA_HELP =
  'The CUDA provider binaries of onnxruntime-node are not installed. They are downloaded at install time only on request: ' +
  'reinstall with `ONNXRUNTIME_NODE_INSTALL=cuda12 pnpm install` (or npm install), and have CUDA 12 and cuDNN 9 on the machine ' +
  '(libcudart.so.12, libcudnn.so.9 on the library path). Or pass { fallback: "cpu" } to run on the CPU.';

/** A one-Add ONNX graph (float32 [1] -> [1]), built with @blip2/onnx, to see whether a session opens. */
const PROBE_GRAPH =
  'CAgSCGJsaXAyLXRzQgQKABAROnIKHgoBeAoBeBIFQWRkXzAaCkFkZF8wL25vZGUiA0FkZAogCgVBZGRfMBIBeRoKeS9JZGVudGl0eSIISWRlbnRpdHkSDHdlYmdwdV9wcm9iZVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAE=';

let webGpuProbe: string | null | undefined;

/**
 * onnxruntime-node lists its WebGPU provider wherever it is built in, but the provider
 * needs an adapter from Dawn (Vulkan on Linux), which only opening a session tells.
 * Opening one here would let Dawn print its native warnings on our stderr, so a child
 * process opens a one-node session and we keep its stderr. Once per process (~0.3 s).
 */
function webGpuProblem(): string | null {
  if (webGpuProbe !== undefined) return webGpuProbe;
  const script = `const ort = require(${JSON.stringify(require_.resolve('onnxruntime-node'))});
ort.InferenceSession.create(Buffer.from(${JSON.stringify(PROBE_GRAPH)}, 'base64'), { executionProviders: ['webgpu'] })
  .then(() => process.stdout.write('ok'), (e) => process.stdout.write(String(e && e.message)));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  if (r.stdout === 'ok') webGpuProbe = null;
  else {
    const reason =
      /Failed to get a WebGPU adapter[^\n]*/.exec(r.stdout)?.[0] ??
      (r.stdout.trim() || r.error?.message || `probe exited ${r.status}`);
    const vulkan = /libvulkan\.so\.1/.test(r.stderr)
      ? ' (Dawn could not load Vulkan: libvulkan.so.1 is missing; install the Vulkan loader and a GPU driver, e.g. mesa-vulkan-drivers)'
      : '';
    webGpuProbe = `onnxruntime-node's WebGPU provider found no GPU adapter: ${reason.trim()}${vulkan}. Use device 'cpu', or { fallback: "cpu" }`;
  }
  return webGpuProbe;
}

/** Why `device` cannot be used here, or null when its provider is available. */
export function providerProblem(device: NodeDevice): string | null {
  if (device === 'cpu') return null;
  const supported = ort.listSupportedBackends() as { name: string; bundled: boolean }[];
  const entry = supported.find((b) => b.name === device);
  if (!entry) {
    return `onnxruntime-node ${ort.env.versions.node} on ${process.platform}/${process.arch} has no '${device}' provider (available: ${supported.map((b) => b.name).join(', ')})`;
  }
  if (device === 'webgpu') return webGpuProblem();
  if (device === 'cuda' || device === 'tensorrt') {
    const lib =
      device === 'cuda' ? 'libonnxruntime_providers_cuda.so' : 'libonnxruntime_providers_tensorrt.so';
    if (process.platform === 'linux' && !existsSync(join(ortBinDir(), lib)))
      return `${lib} is missing in ${ortBinDir()}. ${CUDA_HELP}`;
  }
  return null;
}

function providersFor(device: NodeDevice, deviceId: number): ort.InferenceSession.ExecutionProviderConfig[] {
  switch (device) {
    case 'cpu':
      return ['cpu'];
    case 'cuda':
      return [{ name: 'cuda', deviceId }, 'cpu'];
    case 'tensorrt':
      return [{ name: 'tensorrt', deviceId }, { name: 'cuda', deviceId }, 'cpu'];
    case 'dml':
      return [{ name: 'dml', deviceId }, 'cpu'];
    default:
      return [device, 'cpu'];
  }
}

/** The one folder all of a graph's weight files live in (onnxruntime maps them from a single folder). */
export function weightFolder(graph: BuiltGraph): string | undefined {
  let folder: string | undefined;
  for (const f of graph.externalData) {
    if (/^[a-z]+:\/\//i.test(f.uri)) {
      throw new NodeBackendError(
        'E_WEIGHT_FILES',
        `${graph.name}: backend-node reads weights from files, got URL ${f.uri}; download it first (the SDK's model sources do)`,
      );
    }
    if (!existsSync(f.uri))
      throw new NodeBackendError('E_WEIGHT_FILES', `${graph.name}: weight file ${f.uri} does not exist`);
    const real = realpathSync(f.uri);
    const dir = dirname(real);
    if (real !== join(dir, f.location)) {
      throw new NodeBackendError(
        'E_WEIGHT_FILES',
        `${graph.name}: weight file ${f.uri} resolves to ${real}, not to a file named '${f.location}'`,
      );
    }
    if (folder !== undefined && folder !== dir) {
      throw new NodeBackendError(
        'E_WEIGHT_FILES',
        `${graph.name}: weight files are in two folders (${folder}, ${dir}); onnxruntime maps them from one`,
      );
    }
    folder = dir;
  }
  return folder;
}

const sessionError = (code: 'E_RELEASED' | 'E_RUN', message: string, cause?: unknown) =>
  new NodeBackendError(code, message, { cause });

export class NodeBackend implements Backend {
  readonly name: string;
  readonly device: NodeDevice;
  readonly capabilities: BackendCapabilities;
  private readonly options: NodeBackendOptions;

  constructor(options: NodeBackendOptions = {}) {
    this.options = options;
    const wanted = options.device ?? 'cpu';
    const problem = providerProblem(wanted);
    if (problem) {
      if ((options.fallback ?? 'error') === 'error') {
        throw new NodeBackendError('E_PROVIDER_UNAVAILABLE', `device '${wanted}' is unavailable: ${problem}`);
      }
      (options.onWarning ?? console.warn)(
        `blip2: device '${wanted}' is unavailable, running on CPU instead (${problem.split('. ')[0]})`,
      );
      this.device = 'cpu';
    } else this.device = wanted;
    this.name = `node:${this.device}`;
    this.capabilities = {
      // measured on the CPU provider only (docs/architecture.md): with pre-packing off, Gemm
      // re-packs the whole weight on every run of two rows or more; the weight-first product does not
      batchedLinears: this.device === 'cpu' ? 'weight-first' : 'gemm',
      // weights are memory-mapped from the checkpoint: another session over them costs no copy
      sharedWeights: true,
      // see `load`: onnxruntime-node cannot keep an output in device memory from JavaScript
      deviceOutputs: false,
      computeDtypes: ['float32'],
      // MLAS's u8 x s8 kernels: 2.33x float32 on the image side here (docs/backends.md); a GPU
      // provider would place DynamicQuantizeMatMul on the CPU
      fastInt8Linears: this.device === 'cpu',
      // MLAS's 4-bit kernel: a blip2-opt-2.7b q4 step 68 ms at block 128, 87 ms at 32 (@blip2/onnx q4BlockSize)
      q4BlockSizes: [128, 32],
    };
  }

  /**
   * `options.keepOnDevice` is checked (names must be outputs) and otherwise a no-op on every
   * device: on CPU outputs already are where compute is, and onnxruntime-node 1.30 cannot
   * keep an output in CUDA memory from JavaScript. Its `preferredOutputLocation` knows only
   * 'gpu-buffer', which its binding maps to the WebGPU provider's allocator alone, and a
   * Node 'gpu-buffer' tensor cannot be downloaded (its `download` throws "not implemented").
   * CUDA outputs therefore come back to the CPU and the KV cache is uploaded again each step.
   */
  async load(graph: BuiltGraph, options: LoadOptions = {}): Promise<Session> {
    const unknown = (options.keepOnDevice ?? []).filter((n) => !graph.outputs.some((io) => io.name === n));
    if (unknown.length) {
      throw new NodeBackendError(
        'E_KEEP_ON_DEVICE',
        `${graph.name}: keepOnDevice names ${unknown.map((n) => `'${n}'`).join(', ')}, which ${unknown.length > 1 ? 'are not outputs' : 'is not an output'} of the graph (outputs are ${graph.outputs.map((io) => io.name).join(', ')})`,
      );
    }
    const folder = weightFolder(graph);
    const o = this.options;
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: providersFor(this.device, o.deviceId ?? 0),
      graphOptimizationLevel: 'all',
      logSeverityLevel: o.logSeverityLevel ?? 3,
      ...(o.intraOpNumThreads ? { intraOpNumThreads: o.intraOpNumThreads } : {}),
      ...(o.interOpNumThreads ? { interOpNumThreads: o.interOpNumThreads } : {}),
      extra: {
        session: {
          disable_prepacking: prepacks(graph, o) ? '0' : '1',
          ...(folder ? { model_external_initializers_file_folder_path: folder } : {}),
        },
      },
    };
    try {
      const s = await ort.InferenceSession.create(graph.bytes, sessionOptions);
      return new OrtSession(graph, s, { Tensor: ort.Tensor, runtime: 'onnxruntime', error: sessionError });
    } catch (e) {
      throw new NodeBackendError(
        'E_LOAD',
        `${graph.name}: onnxruntime could not create the session: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
}

export function createNodeBackend(options: NodeBackendOptions = {}): NodeBackend {
  return new NodeBackend(options);
}

export interface DoctorReport {
  readonly node: string;
  readonly onnxruntime: string;
  readonly platform: string;
  readonly providers: { name: NodeDevice; available: boolean; problem?: string }[];
}

/** What this machine can run, and how to get what is missing. */
export function doctor(): DoctorReport {
  const devices: NodeDevice[] = ['cpu', 'cuda', 'tensorrt', 'dml', 'coreml', 'webgpu'];
  return {
    node: process.version,
    onnxruntime: ort.env.versions.node ?? 'unknown',
    platform: `${process.platform}/${process.arch}`,
    providers: devices.map((name) => {
      const problem = providerProblem(name);
      return problem ? { name, available: false, problem } : { name, available: true };
    }),
  };
}

/**
 * Whether a session pre-packs its weights. Float weights stay mapped in place: packing
 * would copy every one (15.5 GB for blip2-opt-2.7b). Packed integer weights are small
 * enough to copy, and their kernels are much faster packed: MLAS packs MatMulNBits' 4-bit
 * blocks only then (a one-row 10240x2560 q4 linear: 142 ms unpacked, 0.80 ms packed), and
 * DynamicQuantizeMatMul over packed int8 weights read one row at 27 GB/s against 13 GB/s
 * mapped (2560x10240 and back, 8 times; 2x at 5 rows, 1.2x at 42, 1.06-1.14x at the image
 * side's 257-2056), docs/backends.md. The cost: each session holds its own packed copy
 * (onnxruntime-node 1.30 has no way to share one between sessions).
 */
export function prepacks(graph: BuiltGraph, options: NodeBackendOptions = {}): boolean {
  if (usesOp(graph, 'MatMulNBits')) return true;
  return (options.prepackInt8 ?? true) && usesOp(graph, 'DynamicQuantizeMatMul');
}

/** Whether a graph's ModelProto names op type `op` (its nodes' op_type strings are plain bytes). */
function usesOp(graph: BuiltGraph, op: string): boolean {
  return Buffer.from(graph.bytes.buffer, graph.bytes.byteOffset, graph.bytes.byteLength).includes(op);
}
