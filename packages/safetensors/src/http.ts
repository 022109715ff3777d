/**
 * Byte ranges over HTTP (browsers and Node 18+ `fetch`): each read is one
 * `Range: bytes=a-b` request answered with 206. A server that ignores Range and
 * answers 200 with the whole file is served from one full download when the file
 * is small enough to hold, and refused with E_HTTP_RANGE otherwise.
 */
import { SafetensorsError } from './errors.js';
import type { ByteReader } from './reader.js';

export interface HttpByteReaderOptions {
  /** extra request headers, e.g. `{ Authorization: 'Bearer hf_...' }` */
  readonly headers?: Readonly<Record<string, string>>;
  /** a fetch implementation (default: the global one) */
  readonly fetch?: typeof fetch;
  /** largest file downloaded whole when the server ignores Range (default 256 MiB) */
  readonly maxWholeFileBytes?: number;
}

const DEFAULT_MAX_WHOLE_FILE = 256 * 1024 * 1024;

export class HttpByteReader implements ByteReader {
  readonly uri: string;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly fetchFn: typeof fetch;
  private readonly maxWholeFileBytes: number;
  private knownSize: number | undefined;
  /** the whole file, once a server has ignored a Range request */
  private whole: Uint8Array | undefined;

  constructor(url: string | URL, options: HttpByteReaderOptions = {}) {
    this.uri = String(url);
    this.headers = options.headers ?? {};
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.maxWholeFileBytes = options.maxWholeFileBytes ?? DEFAULT_MAX_WHOLE_FILE;
  }

  private async request(range: string): Promise<Response> {
    let res: Response;
    try {
      // 'no-store': a browser must not keep a Range answer in its HTTP cache. A server that
      // answers a Range with the whole file, content-encoded (vite preview: sirv reads
      // 'bytes=0-0' as the whole file, then compresses the 206), leaves an entry that
      // Chromium later serves, still encoded, for the full download of the same URL.
      res = await this.fetchFn(this.uri, { headers: { ...this.headers, Range: range }, cache: 'no-store' });
    } catch (e) {
      throw new SafetensorsError('E_HTTP', this.uri, `request failed (${(e as Error).message})`, {
        cause: e,
      });
    }
    if (res.status === 200 || res.status === 206) return res;
    await res.body?.cancel().catch(() => {});
    if (res.status === 404 || res.status === 410)
      throw new SafetensorsError('E_NOT_FOUND', this.uri, `HTTP ${res.status}`);
    if (res.status === 401 || res.status === 403) {
      throw new SafetensorsError(
        'E_HTTP_UNAUTHORIZED',
        this.uri,
        `HTTP ${res.status}: access denied (a gated or private file needs an Authorization header)`,
      );
    }
    if (res.status === 416) {
      throw new SafetensorsError('E_HTTP_RANGE', this.uri, `HTTP 416: range ${range} not satisfiable`);
    }
    throw new SafetensorsError('E_HTTP', this.uri, `HTTP ${res.status} ${res.statusText}`);
  }

  /** Reads a 200 response's whole body, refusing one larger than the cap. */
  private async takeWhole(res: Response): Promise<Uint8Array> {
    const declared = Number(res.headers.get('content-length') ?? Number.NaN);
    const refuse = (n: number) =>
      new SafetensorsError(
        'E_HTTP_RANGE',
        this.uri,
        `the server ignores Range requests and the file (${n} bytes) exceeds maxWholeFileBytes (${this.maxWholeFileBytes})`,
      );
    if (declared > this.maxWholeFileBytes) {
      await res.body?.cancel().catch(() => {});
      throw refuse(declared);
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > this.maxWholeFileBytes) {
        await reader.cancel().catch(() => {});
        throw refuse(total);
      }
      chunks.push(value);
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    this.whole = out;
    this.knownSize = total;
    return out;
  }

  /** `Content-Range: bytes a-b/total` */
  private contentRange(res: Response): { start: number; end: number; total: number | undefined } {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    if (!m) {
      throw new SafetensorsError(
        'E_HTTP_RANGE',
        this.uri,
        `206 without a valid Content-Range (${res.headers.get('content-range')})`,
      );
    }
    return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
  }

  async size(): Promise<number> {
    if (this.knownSize !== undefined) return this.knownSize;
    const res = await this.request('bytes=0-0');
    if (res.status === 200) return (await this.takeWhole(res)).length;
    const { total } = this.contentRange(res);
    await res.body?.cancel().catch(() => {});
    if (total === undefined)
      throw new SafetensorsError('E_HTTP_RANGE', this.uri, 'the server does not tell the file size');
    this.knownSize = total;
    return total;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const size = await this.size();
    if (
      !(
        Number.isSafeInteger(offset) &&
        Number.isSafeInteger(length) &&
        offset >= 0 &&
        length >= 0 &&
        offset + length <= size
      )
    ) {
      throw new SafetensorsError(
        'E_IO',
        this.uri,
        `read of ${length} bytes at ${offset} is outside the ${size}-byte file`,
      );
    }
    if (this.whole) return this.whole.subarray(offset, offset + length);
    if (length === 0) return new Uint8Array(0);
    const res = await this.request(`bytes=${offset}-${offset + length - 1}`);
    if (res.status === 200) return (await this.takeWhole(res)).subarray(offset, offset + length);
    const range = this.contentRange(res);
    const body = new Uint8Array(await res.arrayBuffer());
    if (range.start !== offset || range.end !== offset + length - 1 || body.length !== length) {
      throw new SafetensorsError(
        'E_HTTP_RANGE',
        this.uri,
        `asked for bytes ${offset}-${offset + length - 1}, got ${range.start}-${range.end} (${body.length} bytes)`,
      );
    }
    return body;
  }
}
