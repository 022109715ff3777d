/**
 * The browser platform: a model source is a URL (absolute, or relative to the
 * page) or a Hugging Face hub id, and nothing is copied to disk. The small JSON
 * files are fetched; the safetensors headers are read with HTTP Range requests
 * (a few KB, not the weights); the graphs' weight files are fetched whole by
 * @blip2/backend-web, once per backend, because onnxruntime-web takes weights as
 * in-memory `externalData` buffers. Images decode through the browser
 * (createImageBitmap + WebGL), or are fetched first when given as a URL string.
 *
 * Nothing here may import Node-only code (node:*, sharp, onnxruntime-node):
 * bundlers follow every static import of `@blip2/sdk/browser`.
 */
import {
  createWebBackend,
  type FetchLike,
  probeWebGpu,
  type WebBackendOptions,
  type WebDevice,
  type WeightProgress,
} from '@blip2/backend-web';
import { parseJson } from '@blip2/configs';
import { decodeImageBrowser, type RgbImage } from '@blip2/processor';
import {
  HttpByteReader,
  MemoryByteReader,
  openWeights,
  SafetensorsError,
  SINGLE_FILE,
  serializeSafetensors,
  type TensorBytes,
  type WeightIndex,
} from '@blip2/safetensors';
import type { Backend } from '@blip2/tensor';
import type { QuantizationPlan } from './core/dtype.js';
import { BACKEND_CHOICE_NAMES, checkSourceOptions, SOURCE_OPTION_NAMES } from './core/option-names.js';
import type { BackendChoice, ModelFiles, Platform, SourceOptions } from './core/platform.js';
import { SdkError, sdkJsonFail } from './errors.js';
import type { ProgressCallback } from './sources/progress.js';

/** The same `org/name[@revision]` shape the Node entry accepts. */
const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@([\w./-]+))?$/;
const DEFAULT_ENDPOINT = 'https://huggingface.co';
const WEB_DEVICES: readonly WebDevice[] = ['webgpu', 'wasm', 'webnn'];

/** onnxruntime-web settings that are process-wide, so they are set once for the page rather than per model. */
export type WebRuntimeOptions = Pick<
  WebBackendOptions,
  'wasmPaths' | 'numThreads' | 'logSeverityLevel' | 'maxWeightBytes' | 'webnnDeviceType'
>;

let runtimeOptions: WebRuntimeOptions = {};

/**
 * Where onnxruntime-web's .wasm/.mjs files are served (`wasmPaths`), how many wasm
 * threads to use, and the other settings every web backend this entry creates gets.
 * Call before the first `fromPretrained`.
 */
export function configureWebRuntime(options: WebRuntimeOptions): void {
  runtimeOptions = { ...runtimeOptions, ...options };
}

/**
 * Request headers per source base URL (a hub token, the caller's headers). The
 * weights are fetched later by the backend, which knows only URLs: it looks the
 * headers up here so that a token reaches the source it was given for and no other.
 */
const sourceHeaders = new Map<string, Readonly<Record<string, string>>>();

function headersFor(url: string): Readonly<Record<string, string>> | undefined {
  for (const [base, headers] of sourceHeaders) if (url.startsWith(base)) return headers;
  return undefined;
}

/** `fetch` with the headers of the source a URL belongs to. */
const fetchWithSourceHeaders: FetchLike = (url, init) => {
  const headers = headersFor(url);
  return globalThis.fetch(url, { ...init, ...(headers ? { headers: { ...headers } } : {}) });
};

function httpError(url: string, status: number, statusText: string, what: string): SdkError {
  if (status === 401 || status === 403) {
    return new SdkError(
      'E_HTTP_UNAUTHORIZED',
      `HTTP ${status} for ${url}: access denied (a gated or private model needs { token } or an Authorization header)`,
    );
  }
  if (status === 404 || status === 410) {
    return new SdkError('E_MISSING_FILE', `${url}: not found (HTTP ${status}); ${what}`);
  }
  return new SdkError('E_HTTP', `HTTP ${status} ${statusText} for ${url}`.trimEnd());
}

/** The files of a checkpoint served under `base` (a URL ending in '/'). */
export function urlFiles(
  base: string,
  options: {
    headers?: Readonly<Record<string, string>>;
    signal?: AbortSignal;
    urlOf?: (file: string) => string;
  } = {},
): ModelFiles {
  const urlOf = options.urlOf ?? ((file: string) => new URL(file, base).toString());
  const headers = options.headers ?? {};
  const location = base.replace(/\/+$/, '');

  return {
    location,
    async readJson(name: string, optional = false) {
      const url = urlOf(name);
      let res: Response;
      try {
        res = await globalThis.fetch(url, { headers: { ...headers }, signal: options.signal });
      } catch (e) {
        if (options.signal?.aborted)
          throw new SdkError('E_ABORTED', `loading ${url} was aborted`, { cause: e });
        // a CORS refusal surfaces as a bare TypeError, so name the likely cause
        throw new SdkError(
          'E_HTTP',
          `request to ${url} failed: ${(e as Error).message} (offline, or a cross-origin server without CORS headers?)`,
          { cause: e },
        );
      }
      // Dev servers with a single-page-app fallback (Vite's) answer unknown paths with index.html.
      const html = (res.headers.get('content-type') ?? '').startsWith('text/html');
      if (res.status === 404 || res.status === 410 || (res.ok && html)) {
        await res.body?.cancel().catch(() => {});
        if (optional) return undefined;
        if (html) {
          throw new SdkError(
            'E_MISSING_FILE',
            `${url}: the server answered an HTML page, not ${name} (a single-page-app fallback for a missing file?)`,
          );
        }
        throw httpError(url, res.status, res.statusText, `a BLIP-2 checkpoint needs ${name}`);
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        throw httpError(url, res.status, res.statusText, name);
      }
      return parseJson(await res.text(), url, sdkJsonFail);
    },
    async openWeights(): Promise<WeightIndex> {
      try {
        return await openWeights((file) => new HttpByteReader(urlOf(file), { headers }), {
          checkpoint: location,
        });
      } catch (e) {
        // the reader's HTTP failures, in the SDK's codes (it names the URL already)
        if (SafetensorsError.isInstance(e) && e.code === 'E_HTTP_UNAUTHORIZED')
          throw new SdkError('E_HTTP_UNAUTHORIZED', e.message, { cause: e });
        if (SafetensorsError.isInstance(e) && e.code === 'E_NOT_FOUND') {
          throw new SdkError(
            'E_MISSING_FILE',
            `${e.message} (a BLIP-2 checkpoint needs model.safetensors or model.safetensors.index.json)`,
            { cause: e },
          );
        }
        throw e;
      }
    },
  };
}

/** The page's URL, against which relative model URLs resolve. */
function pageUrl(): string | undefined {
  return (globalThis as { location?: { href?: string } }).location?.href;
}

/**
 * What a source string names, in the browser: an http(s) URL of a checkpoint
 * folder, a URL relative to the page ('/models/x/', './x/'), or a hub id.
 */
export function resolveBrowserSource(
  source: string,
  options: SourceOptions = {},
): { base: string; urlOf?: (file: string) => string; headers: Record<string, string>; kind: 'url' | 'hub' } {
  if (typeof source !== 'string' || source.length === 0) {
    throw new SdkError(
      'E_SOURCE',
      `model source must be an http(s) URL of a checkpoint folder or a hub id 'org/name', got ${JSON.stringify(source)}`,
    );
  }
  const headers = { ...(options.headers ?? {}) };
  const withSlash = (u: string) => (u.endsWith('/') ? u : `${u}/`);
  if (/^https?:\/\//i.test(source)) return { base: withSlash(source), headers, kind: 'url' };
  if (/^\.{0,2}\//.test(source)) {
    const page = pageUrl();
    if (!page) {
      throw new SdkError(
        'E_SOURCE',
        `model source '${source}' is a relative URL, but there is no page location to resolve it against: pass an absolute URL`,
      );
    }
    return { base: withSlash(new URL(source, page).toString()), headers, kind: 'url' };
  }
  const hub = HUB_ID.exec(source);
  if (!hub) {
    throw new SdkError(
      'E_SOURCE',
      `model source '${source}' is not an http(s) URL, a relative URL ('/...', './...') or a hub id 'org/name[@revision]'`,
    );
  }
  const [, org, name, rev] = hub;
  const revision = rev ?? options.revision ?? 'main';
  const endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const base = `${endpoint}/${org}/${name}/resolve/${encodeURIComponent(revision)}/`;
  return { base, urlOf: (file) => `${base}${file}`, headers, kind: 'hub' };
}

/** backend-web's per-file byte counts as the SDK's download events (overall = files seen so far). */
function forwardProgress(cb: ProgressCallback | undefined): ((p: WeightProgress) => void) | undefined {
  if (!cb) return undefined;
  const files = new Map<string, { loaded: number; total: number }>();
  return (p) => {
    files.set(p.uri, { loaded: p.loaded, total: p.total ?? p.loaded });
    let overallLoaded = 0;
    let overallTotal = 0;
    for (const f of files.values()) {
      overallLoaded += f.loaded;
      overallTotal += f.total;
    }
    cb({
      phase: 'download',
      file: p.location,
      loaded: p.loaded,
      total: p.total ?? p.loaded,
      overallLoaded,
      overallTotal,
    });
  };
}

/** A backend for the choice: a given instance, or onnxruntime-web (default WebGPU when an adapter exists, else wasm). */
export async function createBackend(choice: BackendChoice & SourceOptions = {}): Promise<Backend> {
  checkSourceOptions(choice, [...BACKEND_CHOICE_NAMES, ...SOURCE_OPTION_NAMES], 'createBackend options');
  return backendFor(choice);
}

/** createBackend once the names are known good (fromPretrained hands over all of its options). */
async function backendFor(choice: BackendChoice & SourceOptions): Promise<Backend> {
  const { backend = 'web', device, fallback } = choice;
  if (typeof backend === 'object' && backend !== null) return backend;
  if (backend === 'node') {
    throw new SdkError(
      'E_OPTION',
      "backend 'node' (onnxruntime-node) does not run in browsers: use 'web' or import '@blip2/sdk' in Node",
    );
  }
  if (backend !== 'web') {
    throw new SdkError(
      'E_OPTION',
      `backend must be 'web' or a Backend instance in the browser, got ${JSON.stringify(backend)}`,
    );
  }
  if (device !== undefined && !WEB_DEVICES.includes(device as WebDevice)) {
    throw new SdkError('E_OPTION', `device '${device}' is not a browser device (${WEB_DEVICES.join(', ')})`);
  }
  if (fallback !== undefined && !['cpu', 'wasm', 'error'].includes(fallback)) {
    throw new SdkError('E_OPTION', `fallback must be 'wasm' or 'error', got ${JSON.stringify(fallback)}`);
  }
  let chosen = device as WebDevice | undefined;
  if (chosen === undefined) {
    // no preference: the GPU when the browser gives an adapter, without a fallback warning otherwise
    const gpu = await probeWebGpu();
    chosen = 'adapter' in gpu ? 'webgpu' : 'wasm';
  }
  return createWebBackend({
    ...runtimeOptions,
    device: chosen,
    // 'cpu' is the Node spelling of "run it without the accelerator"; in a browser that is wasm
    fallback: fallback === 'cpu' ? 'wasm' : fallback,
    fetch: fetchWithSourceHeaders,
    ...(choice.threads !== undefined ? { numThreads: choice.threads } : {}),
    ...(choice.onWarning ? { onWarning: choice.onWarning } : {}),
    ...(choice.onProgress ? { onProgress: forwardProgress(choice.onProgress) } : {}),
  });
}

/** decodeImageBrowser, plus image URLs (fetched, then decoded). */
export async function decodeImageFromBrowser(input: unknown, what: string): Promise<RgbImage> {
  if (typeof input === 'string' || input instanceof URL) {
    const url = new URL(String(input), pageUrl()).toString();
    let res: Response;
    try {
      res = await globalThis.fetch(url);
    } catch (e) {
      throw new SdkError('E_IMAGE', `${what}: fetching ${url} failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new SdkError('E_IMAGE', `${what}: fetching ${url} answered HTTP ${res.status}`);
    }
    return decodeImageBrowser(await res.blob(), `${what} (${url})`);
  }
  return decodeImageBrowser(input, what);
}

export const browserPlatform: Platform = {
  async openSource(source: string, options: SourceOptions) {
    const { base, urlOf, headers } = resolveBrowserSource(source, options);
    if (Object.keys(headers).length) sourceHeaders.set(base, headers);
    else sourceHeaders.delete(base);
    return urlFiles(base, { headers, signal: options.signal, ...(urlOf ? { urlOf } : {}) });
  },
  quantizeWeights: quantizeInMemory,
  createBackend: backendFor,
  decodeImage: decodeImageFromBrowser,
};

/**
 * Quantize at load in a browser: the plan's tensors (read one at a time from the
 * checkpoint's URLs) serialized into one in-memory safetensors file, which the web backend
 * fetches from a `blob:` URL like any weight file. The packed bytes live in the page for
 * the model's lifetime (revoked when it is disposed): for checkpoints that fit in memory;
 * a large one is better exported once (`blip2 export`) than quantized on every visit.
 */
async function quantizeInMemory(plan: QuantizationPlan): Promise<WeightIndex> {
  const tensors: Record<string, TensorBytes> = {};
  for (const t of plan.tensors) tensors[t.name] = { dtype: t.dtype, shape: t.shape, data: await t.bytes() };
  const bytes = serializeSafetensors(tensors);
  const uri = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
  const reader = Object.assign(new MemoryByteReader(uri, bytes), {
    close: async () => URL.revokeObjectURL(uri),
  });
  return openWeights(async (file) => {
    if (file !== SINGLE_FILE)
      throw new SafetensorsError('E_NOT_FOUND', file, `${file}: not part of the quantized weights`);
    return reader;
  });
}

/** @deprecated the same function as `createBackend` (one name in both entries); kept for 0.x code */
export const createBackendBrowser = createBackend;
