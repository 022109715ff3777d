/**
 * Static folders the playground needs but Vite does not own: the shipped shapes-vqa
 * checkpoints, a few sample images, and onnxruntime-web's .wasm/.mjs. The dev server
 * serves them from where they live (with Range, which the SDK uses to read the
 * safetensors headers, and the page's isolation headers); `vite build` copies them
 * into the output, and `vite preview` serves those copies with the same handler.
 *
 * Why preview does not leave them to its own static server: sirv (vite 7) reads
 * `Range: bytes=0-0` as the whole file (`parseInt('0') || size - 1`) and vite's
 * compression middleware then gzips that 206. Chromium caches the answer and, once the
 * build is old enough to be heuristically fresh, serves the still-compressed bytes for
 * the full download of model.safetensors ("has 4001690 bytes but the graph expects
 * 4323400"). Any other static server works if it answers Range requests exactly.
 *
 * Only the listed files are reachable under a mount, so a request can never walk out
 * of its folder.
 */
import { copyFileSync, createReadStream, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { extname, join, resolve } from 'node:path';
import { Blip2Error } from '@blip2/tensor';
import type { Plugin } from 'vite';

/** A folder served (and copied) under a URL prefix. */
export interface Mount {
  /** URL path prefix, starting and ending with '/' (e.g. '/models/shapes-blip2-opt/'). */
  readonly url: string;
  /** Absolute folder on disk. */
  readonly dir: string;
  /** The file names to expose (default: every file directly in `dir`). */
  readonly files?: readonly string[];
}

export type AssetErrorCode = 'E_ASSET_MOUNT' | 'E_ASSET_MISSING';

/** A mount that names a folder or a file that is not there: the build or dev server would serve 404s. */
export class AssetError extends Blip2Error<AssetErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.AssetError');
  constructor(code: AssetErrorCode, message: string) {
    super(code, message);
    this.name = 'AssetError';
  }
}

const CONTENT_TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.mjs': 'text/javascript',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
};

interface ResolvedMount {
  readonly url: string;
  readonly dir: string;
  readonly files: ReadonlySet<string>;
}

function resolveMount(mount: Mount): ResolvedMount {
  if (!/^\/(?:[\w.-]+\/)*$/.test(mount.url)) {
    throw new AssetError(
      'E_ASSET_MOUNT',
      `mount url ${JSON.stringify(mount.url)} must be a path that starts and ends with '/'`,
    );
  }
  const dir = resolve(mount.dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new AssetError('E_ASSET_MISSING', `folder for ${mount.url} does not exist: ${dir}`);
  }
  const names = mount.files ?? readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile());
  for (const name of names) {
    if (!/^[\w.-]+$/.test(name) || name.startsWith('..')) {
      throw new AssetError(
        'E_ASSET_MOUNT',
        `file name ${JSON.stringify(name)} under ${mount.url} is not a plain name`,
      );
    }
    if (!existsSync(join(dir, name))) {
      throw new AssetError(
        'E_ASSET_MISSING',
        `file for ${mount.url}${name} does not exist: ${join(dir, name)}`,
      );
    }
  }
  return { url: mount.url, dir, files: new Set(names) };
}

/** Serves a file, honouring a single `bytes=start-end` range (what HTTP readers of safetensors send). */
function sendFile(req: IncomingMessage, res: ServerResponse, path: string, extra: OutgoingHttpHeaders) {
  const size = statSync(path).size;
  const headers: OutgoingHttpHeaders = {
    ...extra,
    'Accept-Ranges': 'bytes',
    'Content-Type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream',
    'Cache-Control': 'no-cache',
  };
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = size - 1;
  if (range && (range[1] || range[2])) {
    // 'bytes=-N' is the last N bytes
    start = range[1] ? Number(range[1]) : Math.max(0, size - Number(range[2]));
    end = range[1] && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
    if (start > end || start >= size) {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}` }).end();
      return;
    }
    res.writeHead(206, {
      ...headers,
      'Content-Range': `bytes ${start}-${end}/${size}`,
      'Content-Length': end - start + 1,
    });
  } else {
    res.writeHead(200, { ...headers, 'Content-Length': size });
  }
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  createReadStream(path, { start, end }).pipe(res);
}

/** The Vite plugin: `mounts` served by the dev server and copied into the build output. */
export function staticMounts(mounts: readonly Mount[]): Plugin {
  // Checked when the config loads, so a missing fixture fails `vite build` and `vite` at once.
  const resolved = mounts.map(resolveMount);
  return {
    name: 'blip2-playground:static-mounts',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        if (req.method !== 'GET' && req.method !== 'HEAD') return next();
        const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
        const mount = resolved.find((m) => path.startsWith(m.url));
        if (!mount) return next();
        const headers = server.config.server.headers ?? {};
        const name = path.slice(mount.url.length);
        if (!mount.files.has(name)) {
          // a real 404, not the HTML fallback: the SDK then names the missing file
          res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end(`not found: ${path}`);
          return;
        }
        sendFile(req, res, join(mount.dir, name), headers);
      });
    },
    configurePreviewServer(server) {
      // Registered before vite's compression and sirv: the built copies of the mounts are
      // answered here, byte ranges exact and never content-encoded.
      const outDir = resolve(server.config.root, server.config.build.outDir);
      server.middlewares.use((req, res, next) => {
        if (req.method !== 'GET' && req.method !== 'HEAD') return next();
        const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
        const mount = resolved.find((m) => path.startsWith(m.url));
        const name = mount ? path.slice(mount.url.length) : '';
        if (!mount?.files.has(name)) return next();
        const file = join(outDir, ...mount.url.split('/').filter(Boolean), name);
        if (!existsSync(file)) return next();
        sendFile(req, res, file, server.config.preview.headers ?? {});
      });
    },
    writeBundle(options) {
      const outDir = options.dir;
      if (!outDir) return;
      for (const mount of resolved) {
        const target = join(outDir, ...mount.url.split('/').filter(Boolean));
        mkdirSync(target, { recursive: true });
        for (const name of mount.files) copyFileSync(join(mount.dir, name), join(target, name));
      }
    },
  };
}
