/**
 * Downloads into a cache that a later run can trust.
 * - Bytes go to `<file>.incomplete`; only a file whose size (and sha256, when the server
 *   names it) checks out is fsync'd and renamed into place, so a file in the cache is whole.
 * - An interrupted download resumes only with a validator: `Range` plus `If-Range` carrying
 *   the strong ETag (or Last-Modified) of the response that sent the first bytes. A server that
 *   changed the file answers 200 with all of the new one, and we start over; without any
 *   validator we start over too. Two versions are never spliced.
 * - A cached file is revalidated against the server each time it is resolved: by sha256 when
 *   the server names one (the hub's `X-Linked-Etag`), else by ETag, else by Last-Modified.
 * - One lock per file (`<file>.lock`): concurrent processes share one download, the second
 *   waits for the first and then finds the file in place.
 * - Nothing is written through a symbolic link: the partial file is opened with O_NOFOLLOW
 *   and a link planted in its place is removed, never appended to.
 * - Connect and idle timeouts (with a minimum speed) bound how long a dead or crawling
 *   server can keep us waiting.
 * Redirects are followed by hand so the hub's `X-Linked-Etag` (the LFS sha256) and
 * `X-Repo-Commit` are seen before the CDN answers, and a token never follows a redirect to
 * another origin.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  fstatSync,
  fsyncSync,
  lstatSync,
  readFileSync,
  renameSync,
} from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SdkError } from '../errors.js';
import { openNoFollow, syncDir, waitForLock, writeAll, writeFileAtomic } from '../files.js';

export interface RemoteFile {
  /** the URL asked for; downloads ask it again (hub CDN links are signed and expire) */
  readonly url: string;
  readonly size: number;
  /** hex sha256 when the server gave one (hub LFS files) */
  readonly sha256?: string;
  /** the version's identity as the first server named it (ETag, or the hub's X-Linked-Etag) */
  readonly etag?: string;
  readonly lastModified?: string;
  /** the hub's `X-Repo-Commit`: the commit the revision resolved to */
  readonly commit?: string;
}

export interface HttpTimeouts {
  /** until the response headers arrive (default 30 000) */
  readonly connectMs: number;
  /** the window over which a body must make progress (default 30 000) */
  readonly idleMs: number;
  /** the slowest body accepted, averaged over each idle window (default 1024 bytes/s; 0: any progress) */
  readonly minBytesPerSecond: number;
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = {
  connectMs: 30_000,
  idleMs: 30_000,
  minBytesPerSecond: 1024,
};

export interface FetchOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  readonly fetch?: typeof fetch;
  /** overrides of DEFAULT_HTTP_TIMEOUTS (also from $BLIP2_HTTP_CONNECT_TIMEOUT_MS, $BLIP2_HTTP_IDLE_TIMEOUT_MS) */
  readonly timeouts?: Partial<HttpTimeouts>;
}

const MAX_REDIRECTS = 10;

function timeoutsOf(options: FetchOptions): HttpTimeouts {
  const env = (name: string) => {
    const v = process.env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0)
      throw new SdkError(
        'E_OPTION',
        `$${name}=${JSON.stringify(v)}: expected a positive number of milliseconds`,
      );
    return n;
  };
  const t: HttpTimeouts = {
    connectMs:
      options.timeouts?.connectMs ?? env('BLIP2_HTTP_CONNECT_TIMEOUT_MS') ?? DEFAULT_HTTP_TIMEOUTS.connectMs,
    idleMs: options.timeouts?.idleMs ?? env('BLIP2_HTTP_IDLE_TIMEOUT_MS') ?? DEFAULT_HTTP_TIMEOUTS.idleMs,
    minBytesPerSecond: options.timeouts?.minBytesPerSecond ?? DEFAULT_HTTP_TIMEOUTS.minBytesPerSecond,
  };
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (k !== 'minBytesPerSecond' && v === 0))
      throw new SdkError('E_OPTION', `timeouts.${k} ${String(v)}: expected a positive number`);
  }
  return t;
}

function httpError(url: string, status: number, statusText: string): SdkError {
  if (status === 404 || status === 410)
    return new SdkError('E_HTTP_NOT_FOUND', `HTTP ${status} for ${url}: not found`);
  if (status === 401 || status === 403) {
    return new SdkError(
      'E_HTTP_UNAUTHORIZED',
      `HTTP ${status} for ${url}: access denied (gated or private: pass { token } or set HF_TOKEN)`,
    );
  }
  return new SdkError('E_HTTP', `HTTP ${status} ${statusText} for ${url}`);
}

interface Exchange {
  res: Response;
  /** the first hop's headers (the hub's, before a redirect to its CDN) */
  first: Headers;
  url: string;
  /** reads the body in chunks under the idle timeout; throws typed errors */
  chunks(): AsyncGenerator<Uint8Array>;
  cancel(): Promise<void>;
}

/** One request with redirects followed by hand, under the connect timeout. */
async function request(
  url: string,
  init: { headers?: Record<string, string> },
  options: FetchOptions,
): Promise<Exchange> {
  const f = options.fetch ?? globalThis.fetch.bind(globalThis);
  const timeouts = timeoutsOf(options);
  const ctl = new AbortController();
  let timedOut: SdkError | undefined;
  const onAbort = () => ctl.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const cleanup = () => options.signal?.removeEventListener('abort', onAbort);
  if (options.signal?.aborted) ctl.abort();
  const fail = (e: unknown, what: string): SdkError => {
    if (timedOut) return timedOut;
    if (options.signal?.aborted)
      return new SdkError('E_ABORTED', `download of ${url} was aborted`, { cause: e });
    if (SdkError.isInstance(e)) return e;
    const cause = (e as Error & { cause?: Error }).cause;
    return new SdkError('E_HTTP', `${what}: ${(e as Error).message}${cause ? ` (${cause.message})` : ''}`, {
      cause: e,
    });
  };

  let current = url;
  let first: Headers | undefined;
  const origin = new URL(url).origin;
  const connectTimer = setTimeout(() => {
    timedOut = new SdkError(
      'E_HTTP_TIMEOUT',
      `${url}: no response within ${timeouts.connectMs} ms (timeouts.connectMs, $BLIP2_HTTP_CONNECT_TIMEOUT_MS)`,
    );
    ctl.abort();
  }, timeouts.connectMs);
  try {
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(options.headers ?? {})) {
        if (k.toLowerCase() === 'authorization' && new URL(current).origin !== origin) continue;
        headers[k] = v;
      }
      Object.assign(headers, init.headers);
      let res: Response;
      try {
        res = await f(current, { method: 'GET', headers, redirect: 'manual', signal: ctl.signal });
      } catch (e) {
        throw fail(e, `request to ${current} failed`);
      }
      first ??= res.headers;
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        await res.body?.cancel().catch(() => {});
        current = new URL(res.headers.get('location') as string, current).toString();
        continue;
      }
      clearTimeout(connectTimer);
      const finalUrl = current;
      return {
        res,
        first,
        url: finalUrl,
        cancel: async () => {
          cleanup();
          await res.body?.cancel().catch(() => {});
        },
        async *chunks() {
          const reader = res.body?.getReader();
          if (!reader) throw new SdkError('E_HTTP', `${url}: empty response body`);
          // every idleMs the body must have brought minBytesPerSecond * idleMs bytes (at least one)
          const needed = Math.max(1, Math.floor((timeouts.minBytesPerSecond * timeouts.idleMs) / 1000));
          let inWindow = 0;
          const watchdog = setInterval(() => {
            if (inWindow < needed) {
              timedOut = new SdkError(
                'E_HTTP_TIMEOUT',
                `${url}: ${inWindow} bytes in ${timeouts.idleMs} ms, below the minimum of ` +
                  `${timeouts.minBytesPerSecond} bytes/s (timeouts.idleMs, timeouts.minBytesPerSecond, ` +
                  '$BLIP2_HTTP_IDLE_TIMEOUT_MS); run again to resume',
              );
              ctl.abort();
              reader.cancel().catch(() => {});
            }
            inWindow = 0;
          }, timeouts.idleMs);
          try {
            for (;;) {
              let chunk: ReadableStreamReadResult<Uint8Array>;
              try {
                chunk = await reader.read();
              } catch (e) {
                throw fail(e, `${url}: connection lost; run again to resume`);
              }
              if (timedOut) throw timedOut;
              if (chunk.done) return;
              inWindow += chunk.value.length;
              yield chunk.value;
            }
          } finally {
            clearInterval(watchdog);
            cleanup();
            reader.releaseLock();
          }
        },
      };
    }
    throw new SdkError('E_HTTP', `too many redirects for ${url}`);
  } catch (e) {
    clearTimeout(connectTimer);
    cleanup();
    throw fail(e, `request to ${current} failed`);
  }
}

const unquote = (v: string | null | undefined) => v?.replace(/^W\//, '').replace(/"/g, '') || undefined;

function sha256Of(h: Headers): string | undefined {
  for (const name of ['x-linked-etag', 'etag']) {
    const v = unquote(h.get(name));
    if (v && /^[0-9a-f]{64}$/.test(v)) return v;
  }
  return undefined;
}

/** Size, identity (sha256, ETag, Last-Modified) and commit of a remote file, or undefined on 404. */
export async function probe(url: string, options: FetchOptions = {}): Promise<RemoteFile | undefined> {
  const { res, first, cancel } = await request(url, { headers: { Range: 'bytes=0-0' } }, options);
  await cancel();
  if (res.status === 404 || res.status === 410) return undefined;
  if (res.status !== 200 && res.status !== 206) throw httpError(url, res.status, res.statusText);
  let size: number | undefined;
  const range = res.headers.get('content-range');
  if (res.status === 206 && range) size = Number(/\/(\d+)$/.exec(range)?.[1]);
  else if (res.status === 200) size = Number(res.headers.get('content-length') ?? Number.NaN);
  const linked = first.get('x-linked-size');
  if (linked) size = Number(linked);
  if (size === undefined || !Number.isSafeInteger(size) || size < 0)
    throw new SdkError('E_HTTP', `${url}: the server did not say how large the file is`);
  const etag = first.get('x-linked-etag') ?? first.get('etag') ?? undefined;
  const lastModified = first.get('last-modified') ?? res.headers.get('last-modified') ?? undefined;
  const commit = first.get('x-repo-commit') ?? undefined;
  const sha256 = sha256Of(first);
  return {
    url,
    size,
    ...(sha256 ? { sha256 } : {}),
    ...(etag ? { etag } : {}),
    ...(lastModified ? { lastModified } : {}),
    ...(commit && /^[0-9a-f]{40}$/.test(commit) ? { commit } : {}),
  };
}

/** What the cache records next to a file (`<file>.meta.json`) and a partial one (`<file>.incomplete.json`). */
interface FileMeta {
  url: string;
  size: number;
  sha256?: string;
  etag?: string;
  lastModified?: string;
  /** the strong ETag or Last-Modified of the response that sent the bytes: what If-Range carries */
  validator?: string;
}

const metaPathOf = (dest: string) => `${dest}.meta.json`;

function readMeta(path: string): FileMeta | undefined {
  try {
    if (!lstatSync(path).isFile()) return undefined;
    const m = JSON.parse(readFileSync(path, 'utf8')) as FileMeta;
    return typeof m.size === 'number' ? m : undefined;
  } catch {
    return undefined;
  }
}

/** Size of the regular file at `path`, 0 when absent; a link or anything else is removed. */
async function regularSize(path: string): Promise<number> {
  try {
    const st = lstatSync(path);
    if (st.isFile()) return st.size;
    // a link here would make us write outside the cache: drop the link, never its target
    await rm(path, { force: true, recursive: false });
    return 0;
  } catch {
    return 0;
  }
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const sameVersion = (a: Pick<FileMeta, 'sha256' | 'etag' | 'lastModified'>, b: RemoteFile) =>
  b.sha256 !== undefined
    ? a.sha256 === b.sha256
    : b.etag !== undefined
      ? a.etag === b.etag
      : b.lastModified !== undefined
        ? a.lastModified === b.lastModified
        : true; // the server names no version: size is all we can compare

/** Whether `dest` holds `remote`'s current version. */
async function isCurrent(remote: RemoteFile, dest: string): Promise<boolean> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dest);
  } catch {
    return false;
  }
  if (!st.isFile() || st.size !== remote.size) return false;
  const meta = readMeta(metaPathOf(dest));
  if (meta && meta.size === remote.size && sameVersion(meta, remote)) {
    if (remote.sha256 === undefined || meta.sha256 === remote.sha256) return true;
  }
  // no record (a cache from an older version): a sha256 can still vouch for the bytes
  if (!meta && remote.sha256 !== undefined && (await hashFile(dest)) === remote.sha256) {
    writeFileAtomic(metaPathOf(dest), JSON.stringify(metaOf(remote)));
    return true;
  }
  return false;
}

function metaOf(remote: RemoteFile, validator?: string): FileMeta {
  return {
    url: remote.url,
    size: remote.size,
    ...(remote.sha256 ? { sha256: remote.sha256 } : {}),
    ...(remote.etag ? { etag: remote.etag } : {}),
    ...(remote.lastModified ? { lastModified: remote.lastModified } : {}),
    ...(validator ? { validator } : {}),
  };
}

/** The strong validator of a response (If-Range takes no weak ETag), else its Last-Modified. */
function validatorOf(h: Headers): string | undefined {
  const etag = h.get('etag');
  if (etag && !etag.startsWith('W/')) return etag;
  return h.get('last-modified') ?? undefined;
}

export interface DownloadOptions extends FetchOptions {
  /** `loaded` bytes of this file present so far (resumed bytes count) */
  readonly onBytes?: (loaded: number) => void;
  /** called once when another process holds the file's lock and this one waits */
  readonly onWait?: (holder: string) => void;
}

/**
 * Brings `remote` to `dest`, unless `dest` already holds its current version. Under the
 * file's lock, so a second process waits and then finds the file in place.
 */
export async function download(
  remote: RemoteFile,
  dest: string,
  options: DownloadOptions = {},
): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const lock = await waitForLock(`${dest}.lock`, `download of ${remote.url}`, {
    ...(options.signal ? { signal: options.signal } : {}),
    onWait: (h) => options.onWait?.(`pid ${h.pid} on ${h.host}`),
  });
  try {
    if (await isCurrent(remote, dest)) {
      options.onBytes?.(remote.size);
      return;
    }
    const part = `${dest}.incomplete`;
    await fetchPart(remote, part, options);
    const got = await regularSize(part);
    if (got !== remote.size) {
      throw new SdkError('E_DOWNLOAD_SIZE', `${remote.url}: got ${got} bytes, expected ${remote.size}`);
    }
    if (remote.sha256) {
      const actual = await hashFile(part);
      if (actual !== remote.sha256) {
        await rm(part, { force: true });
        await rm(`${part}.json`, { force: true });
        throw new SdkError(
          'E_DOWNLOAD_HASH',
          `${remote.url}: sha256 ${actual} does not match the server's ${remote.sha256}; the partial file was discarded`,
        );
      }
    }
    // the old record goes first: a crash between the two renames leaves a file with no record,
    // which the next run refetches, never a record that vouches for the wrong bytes
    await rm(metaPathOf(dest), { force: true });
    renameSync(part, dest);
    syncDir(dirname(dest));
    writeFileAtomic(metaPathOf(dest), JSON.stringify(metaOf(remote)));
    await rm(`${part}.json`, { force: true });
  } finally {
    lock.release();
  }
}

/** Fills `part` with all of `remote`: resumes with If-Range when it safely can, else starts over. */
async function fetchPart(remote: RemoteFile, part: string, options: DownloadOptions): Promise<void> {
  const partMeta = `${part}.json`;
  let have = await regularSize(part);
  const recorded = readMeta(partMeta);
  const resumable =
    have > 0 &&
    have <= remote.size &&
    recorded !== undefined &&
    recorded.size === remote.size &&
    recorded.validator !== undefined &&
    sameVersion(recorded, remote);
  if (!resumable) have = 0;
  if (have === remote.size && recorded) return;

  const headers: Record<string, string> = {};
  if (have > 0 && recorded?.validator) {
    headers.Range = `bytes=${have}-`;
    headers['If-Range'] = recorded.validator;
  }
  const ex = await request(remote.url, { headers }, options);
  const { res } = ex;
  if (res.status !== 200 && res.status !== 206) {
    await ex.cancel();
    throw httpError(remote.url, res.status, res.statusText);
  }
  if (res.status === 206) {
    // the server must continue the very bytes we have, of the very version we started
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
    const validator = validatorOf(res.headers);
    if (
      have === 0 ||
      !m ||
      Number(m[1]) !== have ||
      Number(m[3]) !== remote.size ||
      (validator !== undefined && validator !== recorded?.validator)
    ) {
      await ex.cancel();
      await rm(part, { force: true });
      await rm(partMeta, { force: true });
      throw new SdkError(
        'E_HTTP',
        `${remote.url}: the server answered the resume with ${res.headers.get('content-range') ?? 'no Content-Range'}` +
          ` for another range or version; the partial file was discarded: run again to start over`,
      );
    }
  } else {
    // 200: all of the file, of whatever version the server has now (If-Range said it changed)
    have = 0;
    writeFileAtomic(partMeta, JSON.stringify(metaOf(remote, validatorOf(res.headers))));
  }
  const fd = openNoFollow(part, have > 0 ? 'append' : 'truncate');
  try {
    if (fstatSync(fd).size !== have) {
      await ex.cancel();
      throw new SdkError('E_HTTP', `${part} changed while it was being resumed; run again`);
    }
    options.onBytes?.(have);
    for await (const chunk of ex.chunks()) {
      if (have + chunk.length > remote.size) {
        await ex.cancel();
        await rm(part, { force: true });
        throw new SdkError(
          'E_DOWNLOAD_SIZE',
          `${remote.url}: the server sent more than the ${remote.size} bytes it announced; the partial file was discarded`,
        );
      }
      writeAll(fd, chunk);
      have += chunk.length;
      options.onBytes?.(have);
    }
    fsyncSync(fd);
  } catch (e) {
    if (
      SdkError.isInstance(e) &&
      (e.code === 'E_HTTP' || e.code === 'E_HTTP_TIMEOUT' || e.code === 'E_ABORTED')
    ) {
      throw new SdkError(e.code, `${e.message} (${have} of ${remote.size} bytes kept)`, { cause: e });
    }
    if (SdkError.isInstance(e)) throw e;
    throw new SdkError('E_FILE', `${part}: cannot write the download: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    closeSync(fd);
  }
  if (have !== remote.size) {
    throw new SdkError(
      'E_DOWNLOAD_SIZE',
      `${remote.url}: connection closed at ${have} of ${remote.size} bytes; run again to resume`,
    );
  }
}
