/**
 * What the current runtime offers onnxruntime-web: WebGPU (an adapter, not just
 * `navigator.gpu`), WebNN, and wasm threads (which need cross-origin isolation).
 * The DOM typings for WebGPU/WebNN are not in TypeScript's lib, so the few
 * members used are declared here.
 */
import * as ort from 'onnxruntime-web';
import { isNodeRuntime } from './weights.js';

export type WebDevice = 'webgpu' | 'wasm' | 'webnn';

export interface GpuAdapterInfo {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
}

interface GpuAdapterLike {
  readonly info?: GpuAdapterInfo;
  requestAdapterInfo?(): Promise<GpuAdapterInfo>;
}

interface NavigatorLike {
  readonly gpu?: { requestAdapter(options?: { powerPreference?: string }): Promise<GpuAdapterLike | null> };
  readonly ml?: unknown;
  readonly hardwareConcurrency?: number;
}

function navigatorOf(): NavigatorLike | undefined {
  return (globalThis as { navigator?: NavigatorLike }).navigator;
}

const WEBGPU_HELP =
  'WebGPU needs Chrome/Edge 113+ (Safari 26, Firefox 141+ on Windows) on a page served over HTTPS or localhost; ' +
  'on Linux, Chromium needs --enable-unsafe-webgpu (and a Vulkan driver, or SwiftShader for a slow software GPU). ' +
  'Node.js has no WebGPU: use @blip2/backend-node there, or device "wasm".';
const WEBNN_HELP =
  'WebNN is experimental: in Chrome/Edge enable chrome://flags/#web-machine-learning-neural-network; Node.js has none.';
export const THREADS_HELP =
  'wasm threads need a cross-origin isolated page: serve it with the headers Cross-Origin-Opener-Policy: same-origin ' +
  'and Cross-Origin-Embedder-Policy: require-corp (or credentialless). Without them onnxruntime-web runs on one thread.';

/** A usable WebGPU adapter, or why there is none. */
export async function probeWebGpu(): Promise<{ adapter: GpuAdapterInfo | undefined } | { problem: string }> {
  const gpu = navigatorOf()?.gpu;
  if (!gpu) return { problem: `navigator.gpu is missing in this runtime. ${WEBGPU_HELP}` };
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { problem: `navigator.gpu.requestAdapter() failed: ${(e as Error).message}. ${WEBGPU_HELP}` };
  }
  if (!adapter)
    return {
      problem: `navigator.gpu.requestAdapter() returned no adapter (GPU blocklisted or disabled). ${WEBGPU_HELP}`,
    };
  let info = adapter.info;
  if (!info && adapter.requestAdapterInfo) info = await adapter.requestAdapterInfo().catch(() => undefined);
  return {
    adapter: info && {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
    },
  };
}

/** Why `device` cannot be used here, or null when it can. */
export async function deviceProblem(device: WebDevice): Promise<string | null> {
  switch (device) {
    case 'wasm':
      return typeof WebAssembly === 'undefined' ? 'WebAssembly is not available in this runtime' : null;
    case 'webgpu': {
      const probe = await probeWebGpu();
      return 'problem' in probe ? probe.problem : null;
    }
    case 'webnn':
      return navigatorOf()?.ml ? null : `navigator.ml is missing in this runtime. ${WEBNN_HELP}`;
  }
}

export function crossOriginIsolated(): boolean {
  return (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
}

export interface WebDoctorReport {
  readonly runtime: 'browser' | 'worker' | 'node' | 'unknown';
  readonly onnxruntimeWeb: string;
  readonly crossOriginIsolated: boolean;
  readonly threads: {
    readonly available: boolean;
    readonly hardwareConcurrency?: number;
    readonly problem?: string;
  };
  readonly webgpuAdapter?: GpuAdapterInfo;
  readonly providers: readonly {
    readonly name: WebDevice;
    readonly available: boolean;
    readonly problem?: string;
  }[];
}

function runtimeKind(): WebDoctorReport['runtime'] {
  if (isNodeRuntime()) return 'node';
  const g = globalThis as { document?: unknown; importScripts?: unknown };
  if (g.document !== undefined) return 'browser';
  if (typeof g.importScripts === 'function') return 'worker';
  return 'unknown';
}

/** Which onnxruntime-web providers load here, what is missing, and how to get it. */
export async function doctor(): Promise<WebDoctorReport> {
  const runtime = runtimeKind();
  const isolated = crossOriginIsolated();
  // Node's worker_threads give onnxruntime-web threads without any isolation headers.
  const threadsOk = typeof SharedArrayBuffer !== 'undefined' && (isolated || runtime === 'node');
  const gpu = await probeWebGpu();
  const devices: WebDevice[] = ['webgpu', 'wasm', 'webnn'];
  const providers = await Promise.all(
    devices.map(async (name) => {
      const problem = name === 'webgpu' ? ('problem' in gpu ? gpu.problem : null) : await deviceProblem(name);
      return problem ? { name, available: false, problem } : { name, available: true };
    }),
  );
  const cores = navigatorOf()?.hardwareConcurrency;
  return {
    runtime,
    onnxruntimeWeb: ort.env.versions.web ?? 'unknown',
    crossOriginIsolated: isolated,
    threads: {
      available: threadsOk,
      ...(cores !== undefined ? { hardwareConcurrency: cores } : {}),
      ...(threadsOk ? {} : { problem: THREADS_HELP }),
    },
    ...('adapter' in gpu && gpu.adapter ? { webgpuAdapter: gpu.adapter } : {}),
    providers,
  };
}
