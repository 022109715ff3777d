// A real HTTP server on 127.0.0.1 for the model-source tests: serves a folder in
// the URL layout and in the hub layout (/{org}/{name}/resolve/{rev}/{file}, with a
// redirect to a "CDN" path and X-Linked-Etag/Size as the hub sends), honours Range,
// and can cut a response halfway, serve corrupted bytes, change a file between requests, hang or
// crawl on request. Every file has a strong ETag and a Last-Modified and If-Range is honoured, as
// real servers do; `validators = false` makes a server that sends neither.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface TestServer {
  readonly url: string;
  readonly requests: { path: string; range?: string; auth?: string; ifRange?: string }[];
  /** cut the next full download of `file` after `bytes` bytes */
  cutAfter: Map<string, number>;
  /** serve these files with flipped bytes */
  corrupt: Set<string>;
  /** require this bearer token */
  token?: string;
  /** replace a file's content (a new version: new ETag, Last-Modified and sha256) */
  setFile(name: string, body: Buffer): void;
  /** the commit the hub layout names in X-Repo-Commit (undefined: none) */
  commit?: string;
  /** send ETag / Last-Modified and honour If-Range (default true) */
  validators: boolean;
  /** never answer requests for these files */
  hang: Set<string>;
  /** send these files' bodies at this many bytes per second */
  slow: Map<string, number>;
  close(): Promise<void>;
}

export async function serveModel(dir: string): Promise<TestServer> {
  const files = new Map<string, Buffer>();
  for (const f of readdirSync(dir, { withFileTypes: true }))
    if (f.isFile()) files.set(f.name, readFileSync(join(dir, f.name)));
  const versions = new Map<string, number>();
  const state: Omit<TestServer, 'url' | 'close'> = {
    requests: [],
    cutAfter: new Map(),
    corrupt: new Set(),
    validators: true,
    hang: new Set(),
    slow: new Map(),
    setFile(name, body) {
      files.set(name, body);
      versions.set(name, (versions.get(name) ?? 0) + 1);
    },
  };
  const etagOf = (body: Buffer) => `"${createHash('sha1').update(body).digest('hex')}"`;
  const lastModifiedOf = (name: string) =>
    new Date(Date.UTC(2024, 0, 1 + (versions.get(name) ?? 0))).toUTCString();
  const hanging: import('node:http').ServerResponse[] = [];

  let cdnOrigin = '';
  const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    state.requests.push({
      path,
      range: req.headers.range,
      auth: req.headers.authorization,
      ifRange: req.headers['if-range'] as string | undefined,
    });
    if (state.token && req.headers.authorization !== `Bearer ${state.token}` && !path.startsWith('/cdn/')) {
      res.writeHead(401).end('unauthorized');
      return;
    }
    let name: string | undefined;
    let m = /^\/org\/tiny\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m) {
      const body = files.get(m[2]);
      if (!body) {
        res.writeHead(404).end('not found');
        return;
      }
      if (state.hang.has(m[2])) {
        hanging.push(res);
        return;
      }
      const commit = state.commit ? { 'X-Repo-Commit': state.commit } : {};
      // the hub redirects LFS files to a CDN and names their sha256 on the first hop
      if (m[2].endsWith('.safetensors')) {
        res.writeHead(302, {
          Location: `${cdnOrigin}/cdn/${m[2]}`,
          'X-Linked-Etag': `"${createHash('sha256').update(body).digest('hex')}"`,
          'X-Linked-Size': String(body.length),
          ...commit,
        });
        res.end();
        return;
      }
      name = m[2];
      if (state.commit) res.setHeader('X-Repo-Commit', state.commit);
    } else {
      m = /^\/(?:cdn|plain)\/(.+)$/.exec(path);
      if (m) name = m[1];
    }
    const body = name ? files.get(name) : undefined;
    if (!name || !body) {
      res.writeHead(404).end('not found');
      return;
    }
    if (state.hang.has(name)) {
      hanging.push(res);
      return;
    }
    let data = body;
    if (state.corrupt.has(name)) {
      data = Buffer.from(body);
      data[data.length - 1] ^= 0xff;
    }
    const validators: Record<string, string> = state.validators
      ? { ETag: etagOf(data), 'Last-Modified': lastModifiedOf(name) }
      : {};
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    // If-Range: the range only if the validator still names this version, else the whole file
    const ifRange = req.headers['if-range'];
    const rangeApplies =
      range &&
      (!ifRange ||
        (state.validators && (ifRange === validators.ETag || ifRange === validators['Last-Modified'])));
    let start = 0;
    let end = data.length - 1;
    if (range && rangeApplies) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(end, Number(range[2]));
      res.writeHead(206, {
        'Content-Range': `bytes ${start}-${end}/${data.length}`,
        'Content-Length': String(end - start + 1),
        ...validators,
      });
    } else res.writeHead(200, { 'Content-Length': String(data.length), ...validators });
    const slice = data.subarray(start, end + 1);
    const cut = state.cutAfter.get(name);
    if (cut !== undefined && slice.length > 1) {
      state.cutAfter.delete(name);
      res.write(slice.subarray(0, cut));
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    const rate = state.slow.get(name);
    if (rate !== undefined && slice.length > 1) {
      let sent = 0;
      const step = Math.max(1, Math.floor(rate / 10));
      const timer = setInterval(() => {
        if (res.destroyed || sent >= slice.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(slice.subarray(sent, sent + step));
        sent += step;
      }, 100);
      res.on('close', () => clearInterval(timer));
      return;
    }
    res.end(slice);
  };
  // the "CDN" is another origin (another port), as the hub's is
  const server: Server = createServer(handler);
  const cdn: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => cdn.listen(0, '127.0.0.1', r));
  cdnOrigin = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`;
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const r of hanging) r.socket?.destroy();
      server.closeAllConnections();
      cdn.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => cdn.close(() => r()));
    },
  });
}
