// A checkpoint server on another origin than the test page, as a CDN or the
// Hugging Face hub is: CORS headers (Range and Authorization allowed,
// Content-Range exposed), Range requests answered with 206, the folder layout
// under /model/ and the hub layout /{org}/{name}/resolve/{revision}/{file}, an
// optional bearer token for the hub layout, and a log of every request.
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface ModelRequest {
  readonly method: string;
  readonly path: string;
  readonly range?: string;
  readonly auth?: string;
}

export interface ModelServer {
  readonly url: string;
  readonly requests: ModelRequest[];
  /** bearer token the hub layout requires (none: open) */
  token?: string;
  close(): Promise<void>;
}

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Headers': 'Range, Authorization',
  'Access-Control-Expose-Headers': 'Content-Range, Content-Length, Accept-Ranges',
  'Cross-Origin-Resource-Policy': 'cross-origin',
  'Cache-Control': 'no-store',
};

/** Serves the regular files of `dir` (not its subfolders). */
export async function serveCheckpoint(dir: string): Promise<ModelServer> {
  const files = new Map<string, Buffer>();
  for (const f of readdirSync(dir, { withFileTypes: true }))
    if (f.isFile()) files.set(f.name, readFileSync(join(dir, f.name)));

  const state: { requests: ModelRequest[]; token?: string } = { requests: [] };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...CORS, 'Access-Control-Allow-Methods': 'GET, HEAD' }).end();
      return;
    }
    state.requests.push({
      method: req.method ?? 'GET',
      path,
      range: req.headers.range,
      auth: req.headers.authorization,
    });
    let name: string | undefined;
    const hub = /^\/org\/tiny\/resolve\/[^/]+\/(.+)$/.exec(path);
    if (hub) {
      if (state.token && req.headers.authorization !== `Bearer ${state.token}`) {
        res.writeHead(401, CORS).end('unauthorized');
        return;
      }
      name = hub[1];
    } else name = /^\/model\/([^/]+)$/.exec(path)?.[1];
    const body = name === undefined ? undefined : files.get(name);
    if (!body) {
      res.writeHead(404, CORS).end('not found');
      return;
    }
    const type = name?.endsWith('.json') ? 'application/json' : 'application/octet-stream';
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
      if (start >= body.length) {
        res.writeHead(416, { ...CORS, 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, {
        ...CORS,
        'Content-Type': type,
        'Content-Range': `bytes ${start}-${end}/${body.length}`,
        'Content-Length': String(end - start + 1),
      });
      res.end(body.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, {
      ...CORS,
      'Content-Type': type,
      'Accept-Ranges': 'bytes',
      'Content-Length': String(body.length),
    });
    res.end(body);
  };
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
}
