/**
 * Getting a graph's weight files into memory. onnxruntime-web cannot map files:
 * it takes each external-data file as bytes (`externalData: [{ path, data }]`)
 * and copies the byte ranges its initializers reference into wasm memory.
 * The vision, Q-Former and language-model graphs of one checkpoint point into
 * the same model.safetensors, so a file is fetched once per backend and its
 * bytes are shared by every session that needs them.
 */
import type { ExternalDataFile } from '@blip2/tensor';
import { WebBackendError } from './errors.js';

export interface WeightProgress {
  /** the file name the graph uses (e.g. 'model.safetensors') */
  readonly location: string;
  readonly uri: string;
  readonly loaded: number;
  /** undefined when neither the graph nor the server said how big the file is */
  readonly total: number | undefined;
}

/** The part of `fetch` this package uses, so callers can pass an authenticated or caching one. */
export type FetchLike = (url: string, init?: { signal?: AbortSignal }) => Promise<Response>;

export interface WeightSourceOptions {
  readonly fetch?: FetchLike;
  readonly onProgress?: (progress: WeightProgress) => void;
}

export function isNodeRuntime(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

// Kept in a variable so browser bundlers (esbuild, Vite) leave the import alone
// instead of trying to resolve node:fs for the web.
const NODE_FS = 'node:fs/promises';

async function readNodeFile(graphName: string, file: ExternalDataFile): Promise<Uint8Array> {
  const fs = (await import(/* @vite-ignore */ NODE_FS)) as typeof import('node:fs/promises');
  const path = file.uri.startsWith('file://') ? new URL(file.uri) : file.uri;
  try {
    const buf = await fs.readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    const why =
      (e as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'does not exist'
        : `cannot be read (${(e as Error).message})`;
    throw new WebBackendError(
      'E_WEIGHT_FILES',
      `${graphName}: weight file ${file.uri} (for '${file.location}') ${why}`,
      { cause: e },
    );
  }
}

function sizeMismatch(graphName: string, file: ExternalDataFile, got: number): WebBackendError {
  return new WebBackendError(
    'E_WEIGHT_FILES',
    `${graphName}: weight file ${file.uri} has ${got} bytes but the graph expects ${file.size} (truncated download or a different checkpoint?)`,
  );
}

async function fetchFile(
  graphName: string,
  file: ExternalDataFile,
  options: WeightSourceOptions,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const doFetch = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
  if (!doFetch)
    throw new WebBackendError(
      'E_FETCH',
      `${graphName}: no fetch() in this runtime to get ${file.uri}; pass { fetch } to createWebBackend`,
    );
  let res: Response;
  try {
    res = await doFetch(file.uri, signal ? { signal } : undefined);
  } catch (e) {
    throw new WebBackendError(
      'E_FETCH',
      `${graphName}: fetching weight file ${file.uri} failed: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!res.ok) {
    throw new WebBackendError(
      'E_FETCH',
      `${graphName}: fetching weight file ${file.uri} answered HTTP ${res.status} ${res.statusText}`.trimEnd(),
    );
  }
  // Content-Length counts encoded bytes when the server compresses: only trust it for progress then.
  const header = res.headers.get('content-length');
  const plain = !res.headers.get('content-encoding');
  const total = file.size ?? (header && plain ? Number(header) : undefined);
  const report = (loaded: number) =>
    options.onProgress?.({ location: file.location, uri: file.uri, loaded, total });
  report(0);

  if (!res.body) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    report(bytes.byteLength);
    return bytes;
  }
  const reader = res.body.getReader();
  // With a known size we write straight into the final buffer: a multi-GB file is
  // never held twice (chunks + concatenation).
  const into = file.size !== undefined ? new Uint8Array(file.size) : undefined;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (into) {
      if (loaded + value.byteLength > into.byteLength) {
        await reader.cancel();
        throw sizeMismatch(graphName, file, loaded + value.byteLength);
      }
      into.set(value, loaded);
    } else chunks.push(value);
    loaded += value.byteLength;
    report(loaded);
  }
  if (into) {
    if (loaded !== into.byteLength) throw sizeMismatch(graphName, file, loaded);
    return into;
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Weight file bytes by URI, fetched or read once and shared between sessions. */
export class WeightFileCache {
  private readonly files = new Map<string, Promise<Uint8Array>>();

  constructor(private readonly options: WeightSourceOptions = {}) {}

  get(graphName: string, file: ExternalDataFile, signal?: AbortSignal): Promise<Uint8Array> {
    let pending = this.files.get(file.uri);
    if (!pending) {
      pending = this.read(graphName, file, signal);
      this.files.set(file.uri, pending);
      // a failed or aborted download must not poison later loads
      pending.catch(() => this.files.delete(file.uri));
    }
    return pending;
  }

  /** Drops the cached bytes but those of `keep` (sessions already created keep working: onnxruntime copied what it needs). */
  clear(keep: readonly string[] = []): void {
    for (const uri of [...this.files.keys()]) if (!keep.includes(uri)) this.files.delete(uri);
  }

  get size(): number {
    return this.files.size;
  }

  private async read(graphName: string, file: ExternalDataFile, signal?: AbortSignal): Promise<Uint8Array> {
    // In Node a URI without a scheme is a path; in a browser it is a URL relative to the page.
    const local = isNodeRuntime() && (!URL_SCHEME.test(file.uri) || file.uri.startsWith('file://'));
    const bytes = local
      ? await readNodeFile(graphName, file)
      : await fetchFile(graphName, file, this.options, signal);
    if (local)
      this.options.onProgress?.({
        location: file.location,
        uri: file.uri,
        loaded: bytes.byteLength,
        total: bytes.byteLength,
      });
    if (file.size !== undefined && bytes.byteLength !== file.size)
      throw sizeMismatch(graphName, file, bytes.byteLength);
    return bytes;
  }
}
