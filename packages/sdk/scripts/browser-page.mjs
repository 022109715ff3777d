/**
 * What the browser benches (browser-op-rate.mjs, browser-real-size.mjs) share: their page
 * bundled with onnxruntime-web as @blip2/backend-web resolves it, and a 127.0.0.1 server for
 * it with the COOP/COEP headers that enable wasm threads. Each bench adds its own routes.
 */
import { createReadStream, existsSync, realpathSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as esbuild from 'esbuild';

const here = dirname(new URL(import.meta.url).pathname);

// onnxruntime-web is @blip2/backend-web's dependency: resolved, and bundled, from there
const webPkg = realpathSync(join(here, '../node_modules/@blip2/backend-web'));
const ORT_DIST = dirname(
  createRequire(join(webPkg, 'package.json')).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'),
);

export const HEADERS = {
  'Cache-Control': 'no-store',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/** `./<dir>/page.ts`'s export `name` as `globalThis[name]`, bundled for the browser. */
export async function bundlePage(dir, name) {
  const built = await esbuild.build({
    stdin: {
      contents: `import { ${name} } from './${dir}/page.ts';\nglobalThis.${name} = ${name};\nglobalThis.ready = true;\n`,
      resolveDir: here,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source'],
    nodePaths: [join(webPkg, 'node_modules')],
    write: false,
    logLevel: 'silent',
  });
  return built.outputFiles[0].contents;
}

/**
 * Serves `/` (a page loading `/page.js`), `/page.js` (`page`), `/ort/<file>` (onnxruntime-web's
 * dist) and whatever `route(path, req, res)` answers (it returns false for a 404).
 */
export async function servePage(page, route = () => false) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/')
      return res
        .writeHead(200, { ...HEADERS, 'Content-Type': 'text/html' })
        .end('<!doctype html><meta charset="utf-8"><script type="module" src="/page.js"></script>');
    if (path === '/page.js')
      return res.writeHead(200, { ...HEADERS, 'Content-Type': 'text/javascript' }).end(page);
    const name = path.slice(5);
    if (path.startsWith('/ort/') && /^[\w.-]+$/.test(name) && existsSync(join(ORT_DIST, name))) {
      const type = name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
      return createReadStream(join(ORT_DIST, name)).pipe(
        res.writeHead(200, { ...HEADERS, 'Content-Type': type }),
      );
    }
    if (route(path, req, res) === false) res.writeHead(404, HEADERS).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const close = () => {
    server.closeAllConnections();
    server.close();
  };
  return { baseUrl: `http://127.0.0.1:${server.address().port}`, close };
}
