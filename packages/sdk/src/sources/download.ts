/**
 * Downloads into a cache that a later run can trust: bytes go to `<file>.incomplete`,
 * an interrupted download resumes from there with an HTTP Range request, and only a
 * file whose size (and sha256, when the server names it) checks out is renamed into
 * place. Redirects are followed by hand so the hub's `X-Linked-Etag` (the LFS
 * sha256) is seen before the CDN answers, and a token never follows a redirect to
 * another origin.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Blip2Error } from '../errors.js';

export interface RemoteFile {
  /** the URL asked for; downloads ask it again (hub CDN links are signed and expire) */
  readonly url: string;
  readonly size: number;
  /** hex sha256 when the server gave one (hub LFS files) */
  readonly sha256?: string;
}

export interface FetchOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  readonly fetch?: typeof fetch;
}

const MAX_REDIRECTS = 10;

function httpError(url: string, status: number, statusText: string): Blip2Error {
  if (status === 404 || status === 410)
    return new Blip2Error('E_HTTP_NOT_FOUND', `HTTP ${status} for ${url}: not found`);
  if (status === 401 || status === 403) {
    return new Blip2Error(
      'E_HTTP_UNAUTHORIZED',
      `HTTP ${status} for ${url}: access denied (gated or private: pass { token } or set HF_TOKEN)`,
    );
  }
  return new Blip2Error('E_HTTP', `HTTP ${status} ${statusText} for ${url}`);
}

/** One request with redirects followed by hand; returns the final response and the first hop's headers. */
async function request(
  url: string,
  init: { range?: string; method?: string },
  options: FetchOptions,
): Promise<{ res: Response; first: Headers; url: string }> {
  const f = options.fetch ?? globalThis.fetch.bind(globalThis);
  let current = url;
  let first: Headers | undefined;
  const origin = new URL(url).origin;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.headers ?? {})) {
      if (k.toLowerCase() === 'authorization' && new URL(current).origin !== origin) continue;
      headers[k] = v;
    }
    if (init.range) headers.Range = init.range;
    let res: Response;
    try {
      res = await f(current, {
        method: init.method ?? 'GET',
        headers,
        redirect: 'manual',
        signal: options.signal,
      });
    } catch (e) {
      if (options.signal?.aborted)
        throw new Blip2Error('E_ABORTED', `download of ${url} was aborted`, { cause: e });
      throw new Blip2Error('E_HTTP', `request to ${current} failed: ${(e as Error).message}`, { cause: e });
    }
    first ??= res.headers;
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel().catch(() => {});
      current = new URL(res.headers.get('location') as string, current).toString();
      continue;
    }
    return { res, first, url: current };
  }
  throw new Blip2Error('E_HTTP', `too many redirects for ${url}`);
}

function sha256Of(h: Headers): string | undefined {
  for (const name of ['x-linked-etag', 'etag']) {
    const v = h.get(name)?.replace(/^W\//, '').replace(/"/g, '');
    if (v && /^[0-9a-f]{64}$/.test(v)) return v;
  }
  return undefined;
}

/** Size (and sha256 when known) of a remote file, or undefined when it does not exist (404). */
export async function probe(url: string, options: FetchOptions = {}): Promise<RemoteFile | undefined> {
  const { res, first } = await request(url, { range: 'bytes=0-0' }, options);
  await res.body?.cancel().catch(() => {});
  if (res.status === 404 || res.status === 410) return undefined;
  if (res.status !== 200 && res.status !== 206) throw httpError(url, res.status, res.statusText);
  let size: number | undefined;
  const range = res.headers.get('content-range');
  if (res.status === 206 && range) size = Number(/\/(\d+)$/.exec(range)?.[1]);
  else if (res.status === 200) size = Number(res.headers.get('content-length'));
  const linked = first.get('x-linked-size');
  if (linked) size = Number(linked);
  if (size === undefined || !Number.isFinite(size))
    throw new Blip2Error('E_HTTP', `${url}: the server did not say how large the file is`);
  return { url, size, sha256: sha256Of(first) };
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function existsWithSize(path: string, size: number): Promise<boolean> {
  try {
    return (await stat(path)).size === size;
  } catch {
    return false;
  }
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Brings `remote` to `dest`. Returns without a request when `dest` already exists
 * (it only ever appears by a verified rename). `onBytes(loaded)` reports progress.
 */
export async function download(
  remote: RemoteFile,
  dest: string,
  options: FetchOptions & { onBytes?: (loaded: number) => void } = {},
): Promise<void> {
  if (await existsWithSize(dest, remote.size)) {
    options.onBytes?.(remote.size);
    return;
  }
  await mkdir(dirname(dest), { recursive: true });
  const part = `${dest}.incomplete`;
  let have = await fileSize(part);
  if (have > remote.size) {
    await rm(part, { force: true });
    have = 0;
  }
  if (have < remote.size) {
    const { res } = await request(remote.url, { range: have > 0 ? `bytes=${have}-` : undefined }, options);
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel().catch(() => {});
      throw httpError(remote.url, res.status, res.statusText);
    }
    // a server that ignores Range sends the whole file again: start over
    if (res.status === 200) have = 0;
    const fh = await open(part, have > 0 ? 'a' : 'w');
    try {
      options.onBytes?.(have);
      const reader = res.body?.getReader();
      if (!reader) throw new Blip2Error('E_HTTP', `${remote.url}: empty response body`);
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          if (options.signal?.aborted)
            throw new Blip2Error(
              'E_ABORTED',
              `download of ${remote.url} was aborted at ${have} bytes; run again to resume`,
              { cause: e },
            );
          throw new Blip2Error(
            'E_HTTP',
            `${remote.url}: connection lost at ${have} of ${remote.size} bytes; run again to resume`,
            { cause: e },
          );
        }
        if (chunk.done) break;
        await fh.write(chunk.value);
        have += chunk.value.length;
        options.onBytes?.(have);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  const got = await fileSize(part);
  if (got !== remote.size) {
    // keep a short part to resume; a long one is corrupt
    if (got > remote.size) await rm(part, { force: true });
    throw new Blip2Error(
      'E_DOWNLOAD_SIZE',
      `${remote.url}: got ${got} bytes, expected ${remote.size}${got < remote.size ? '; run again to resume' : ''}`,
    );
  }
  if (remote.sha256) {
    const actual = await hashFile(part);
    if (actual !== remote.sha256) {
      await rm(part, { force: true });
      throw new Blip2Error(
        'E_DOWNLOAD_HASH',
        `${remote.url}: sha256 ${actual} does not match the server's ${remote.sha256}; the partial file was discarded`,
      );
    }
  }
  await rename(part, dest);
}
