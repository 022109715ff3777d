/**
 * A real browser for tests: a node:http server on 127.0.0.1 serves a page, an
 * esbuild bundle of a page script, onnxruntime-web's dist files (at ORT_PATH) and
 * any files the test names, with the cross-origin isolation headers wasm threads
 * need; Debian's Chromium is driven headless through playwright-core.
 *
 * Other packages' browser tests import this file:
 *   await withBrowserPage({ entry: '/abs/page.ts', files: { '/weights/model.safetensors': absPath } },
 *     async (page, baseUrl, server) => page.evaluate(() => globalThis.run()));
 * The page script registers functions on globalThis; the test calls them with page.evaluate.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join } from 'node:path';
import { CHROMIUM, launchChromium } from '@blip2/test-browser';
import * as esbuild from 'esbuild';
import type { Page } from 'playwright-core';

/** URL prefix of onnxruntime-web's dist/ (pass it as `wasmPaths`). */
export const ORT_PATH = '/ort/';
export { CHROMIUM } from '@blip2/test-browser';

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export interface BrowserPageOptions {
  /** Absolute path of the page script (TypeScript; workspace packages resolve to their sources). */
  readonly entry: string;
  /** URL path -> absolute file path or bytes. */
  readonly files?: Readonly<Record<string, string | Uint8Array>>;
  /** Send COOP/COEP so the page is cross-origin isolated (default true). */
  readonly crossOriginIsolated?: boolean;
  /** How long the page script may take to load (default 60 s). */
  readonly readyTimeoutMs?: number;
}

export interface HarnessServer {
  readonly baseUrl: string;
  /** Every request path served, in order (lets a test count downloads). */
  readonly requests: string[];
  /** The page's console messages and uncaught errors, as '[type] text'. */
  readonly logs: string[];
}

const require_ = createRequire(import.meta.url);
const ORT_DIST = dirname(require_.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.map': 'application/json',
};

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>blip2-ts test</title></head>
<body><script type="module" src="/page.js"></script></body></html>`;

async function bundle(entry: string): Promise<Uint8Array> {
  // The flag is set only after the entry module (top-level awaits included) has run. The
  // namespace is kept because a bare import of a file in a `sideEffects: false` package
  // would be dropped by esbuild.
  const result = await esbuild.build({
    stdin: {
      contents: `import * as page from ${JSON.stringify(entry)};\nglobalThis.__harnessPage = page;\nglobalThis.__harnessReady = true;\n`,
      resolveDir: dirname(entry),
      loader: 'ts',
      sourcefile: 'harness-entry.ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source'],
    sourcemap: 'inline',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0].contents;
}

function serve(files: Map<string, string | Uint8Array>, isolated: boolean, requests: string[]) {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
    if (isolated) {
      headers['Cross-Origin-Opener-Policy'] = 'same-origin';
      headers['Cross-Origin-Embedder-Policy'] = 'require-corp';
    }
    let source = files.get(path);
    if (source === undefined && path.startsWith(ORT_PATH)) {
      const name = path.slice(ORT_PATH.length);
      if (/^[\w.-]+$/.test(name) && existsSync(join(ORT_DIST, name))) source = join(ORT_DIST, name);
    }
    if (source === undefined) {
      res.writeHead(404, headers).end(`not found: ${path}`);
      return;
    }
    const type = path === '/' ? TYPES['.html'] : (TYPES[extname(path)] ?? 'application/octet-stream');
    if (typeof source === 'string') {
      res.writeHead(200, {
        ...headers,
        'Content-Type': type,
        'Content-Length': String(statSync(source).size),
      });
      createReadStream(source).pipe(res);
    } else {
      res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': String(source.byteLength) });
      res.end(source);
    }
  });
}

/** Serves `options`, opens the page in headless Chromium, and runs `fn` once the page script has loaded. */
export async function withBrowserPage<T>(
  options: BrowserPageOptions,
  fn: (page: Page, baseUrl: string, server: HarnessServer) => Promise<T>,
): Promise<T> {
  if (!chromiumAvailable()) throw new Error(`Chromium not found at ${CHROMIUM} (set BLIP2_CHROMIUM)`);
  const files = new Map<string, string | Uint8Array>(Object.entries(options.files ?? {}));
  for (const [url, src] of files) {
    if (typeof src === 'string' && !existsSync(src))
      throw new Error(`withBrowserPage: file for ${url} does not exist: ${src}`);
  }
  files.set('/', new TextEncoder().encode(PAGE));
  files.set('/index.html', new TextEncoder().encode(PAGE));
  files.set('/page.js', await bundle(options.entry));

  const requests: string[] = [];
  const logs: string[] = [];
  const server = serve(files, options.crossOriginIsolated ?? true, requests);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const { context, close } = await launchChromium();
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
      await page.goto(`${baseUrl}/`);
      try {
        await page.waitForFunction(
          () => (globalThis as { __harnessReady?: boolean }).__harnessReady === true,
          undefined,
          {
            timeout: options.readyTimeoutMs ?? 60_000,
          },
        );
      } catch (e) {
        throw new Error(
          `page script ${options.entry} did not load: ${(e as Error).message}\n${logs.join('\n')}`,
        );
      }
      return await fn(page, baseUrl, { baseUrl, requests, logs });
    } finally {
      await close();
    }
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
