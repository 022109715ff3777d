/**
 * What differs between Node and browsers, behind one small interface: where a
 * model's files come from, which backend runs graphs, and how images decode.
 * `@blip2/sdk` (Node) and `@blip2/sdk/browser` each register theirs.
 */
import type { ImageDecoder } from '@blip2/processor';
import type { WeightIndex } from '@blip2/safetensors';
import type { Backend } from '@blip2/tensor';
import { SdkError } from '../errors.js';
import type { ProgressCallback } from '../sources/progress.js';
import type { QuantizationPlan } from './dtype.js';

/** A checkpoint's files, wherever they are. */
export interface ModelFiles {
  /** folder path or base URL, for messages */
  readonly location: string;
  /** Parsed JSON of `name`; undefined when `optional` and absent. */
  readJson(name: string, optional?: boolean): Promise<unknown>;
  openWeights(): Promise<WeightIndex>;
}

/** Where a model comes from and how it is fetched: the options of every source, Node or browser. */
export interface SourceOptions {
  /** where remote models are kept (Node; default: $BLIP2_CACHE or ~/.cache/blip2-ts) */
  readonly cacheDir?: string;
  /** hub endpoint (default: $HF_ENDPOINT or https://huggingface.co) */
  readonly endpoint?: string;
  /** hub token (default: $HF_TOKEN) */
  readonly token?: string;
  /** hub revision when the id has no `@revision` (default 'main') */
  readonly revision?: string;
  /** extra request headers for URL sources */
  readonly headers?: Readonly<Record<string, string>>;
  readonly onProgress?: ProgressCallback;
  /** downloads (Node): ms until response headers, ms window a body must progress in, slowest bytes/s accepted */
  readonly timeouts?: {
    readonly connectMs?: number;
    readonly idleMs?: number;
    readonly minBytesPerSecond?: number;
  };
  readonly signal?: AbortSignal;
}

export interface BackendChoice {
  /** a Backend instance, or which runtime to use (default: 'node' in Node, 'web' in browsers) */
  readonly backend?: Backend | 'node' | 'web';
  /** 'cpu' | 'cuda' | 'tensorrt' | 'dml' | 'coreml' (node); 'webgpu' | 'wasm' | 'webnn' (web) */
  readonly device?: string;
  /** when the device is unavailable: run on the CPU/wasm instead (saying so once) or throw */
  readonly fallback?: 'cpu' | 'wasm' | 'error';
  /** threads a session computes with (onnxruntime's intra-op threads; wasm threads on the web); default: the runtime's */
  readonly threads?: number;
  /** which GPU of several (node: CUDA/TensorRT/DirectML device id); default 0 */
  readonly deviceId?: number;
  readonly onWarning?: (message: string) => void;
}

export interface Platform {
  openSource(source: string, options: SourceOptions): Promise<ModelFiles>;
  /**
   * Writes a quantization plan's weights somewhere they can be mapped from and opens
   * them (Node: the cache, reused on the next load). Platforms without it load only
   * exported folders in dtypes other than fp32.
   */
  quantizeWeights?(
    plan: QuantizationPlan,
    weights: WeightIndex,
    options: SourceOptions,
  ): Promise<WeightIndex>;
  createBackend(choice: BackendChoice): Promise<Backend>;
  readonly decodeImage: ImageDecoder;
}

let current: Platform | undefined;

export function setPlatform(platform: Platform): void {
  current = platform;
}

export function platform(): Platform {
  if (!current) {
    throw new SdkError(
      'E_BACKEND',
      'no platform registered: import from "@blip2/sdk" (Node) or "@blip2/sdk/browser"',
    );
  }
  return current;
}
