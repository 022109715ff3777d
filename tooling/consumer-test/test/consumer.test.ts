/**
 * The release path as a user meets it: `pnpm release:pack` writes one tarball per
 * public package, and projects in fresh temp folders install them with plain npm
 * (registry packages come from npm's cache after the first run). A Node project
 * captions with the shipped shapes models (ESM, CommonJS and the `blip2` bin), tsc
 * checks a TypeScript file against the published .d.ts; a browser project, which must
 * not get onnxruntime-node or sharp, is bundled with esbuild and runs on wasm in
 * Chromium with onnxruntime-web's files served from a path of the app's choosing.
 */
import { execFile } from 'node:child_process';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { promisify } from 'node:util';
import { fixtures } from '@blip2/fixtures';
import { Blip2ForConditionalGeneration } from '@blip2/sdk';
import { launchChromium } from '@blip2/test-browser';
import * as esbuild from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..', '..');
const project = join(import.meta.dirname, '..', 'project');
const image = join(fixtures.shapesVal, 'images', 'COCO_val2014_000000000001.jpg');
const QUESTIONS = ['What color is the circle?', 'How many shapes are there?'];
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
// onnxruntime-node's postinstall would fetch CUDA binaries on machines with nvcc
const env = {
  ...process.env,
  ONNXRUNTIME_NODE_INSTALL: 'skip',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
};

let temp: string;
let tarballs: string[];
let nodeApp: string;
let browserApp: string;
let expected: { caption: string; answers: string[] };

async function npmInstall(dir: string, specs: string[]): Promise<void> {
  await writeFile(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  await run('npm', ['install', '--prefer-offline', '--no-package-lock', '--loglevel=error', ...specs], {
    cwd: dir,
    env,
    maxBuffer: 1 << 24,
  });
}

beforeAll(async () => {
  temp = await mkdtemp(join(tmpdir(), 'blip2-consumer-'));
  const out = join(temp, 'tarballs');
  await run(process.execPath, [join(root, 'scripts', 'release-pack.mjs'), '--no-build', '--out', out], {
    cwd: root,
  });
  tarballs = readdirSync(out)
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(out, f));
  nodeApp = join(temp, 'node-app');
  browserApp = join(temp, 'browser-app');
  await cp(project, nodeApp, { recursive: true });
  await cp(project, browserApp, { recursive: true });
  // the browser app installs @blip2/sdk and its dependencies only: no backend-node, no sharp
  await Promise.all([
    npmInstall(nodeApp, [...tarballs, 'sharp@0.35.5', '@types/node@20']),
    npmInstall(
      browserApp,
      tarballs.filter((t) => !t.includes('backend-node')),
    ),
  ]);
  // the answers the workspace's own SDK gives
  const captioner = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesCaptioner);
  const caption = await captioner.caption(image);
  await captioner.dispose();
  const vqa = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesOpt);
  const answers = await vqa.ask(image, QUESTIONS);
  await vqa.dispose();
  expected = { caption, answers };
});

afterAll(async () => {
  if (temp) await rm(temp, { recursive: true, force: true });
});

describe('pnpm release:pack', () => {
  it('packs exactly the packages `pnpm changeset publish` would publish, with workspace:* replaced', () => {
    const workspace = ['packages', 'apps', 'tooling'].flatMap((d) =>
      readdirSync(join(root, d)).map((p) => join(root, d, p, 'package.json')),
    );
    const manifests = workspace.filter(existsSync).map((p) => JSON.parse(readFileSync(p, 'utf8')));
    const published = manifests.filter((m) => !m.private).map((m) => m.name as string);
    // the public ones are the libraries under packages/; apps and tooling stay private
    expect(published.sort()).toEqual(
      readdirSync(join(root, 'packages'))
        .map((p) => JSON.parse(readFileSync(join(root, 'packages', p, 'package.json'), 'utf8')).name)
        .sort(),
    );
    expect(tarballs).toHaveLength(published.length);
    const ignored: string[] = JSON.parse(
      readFileSync(join(root, '.changeset', 'config.json'), 'utf8'),
    ).ignore;
    for (const name of ignored) expect(manifests.find((m) => m.name === name)?.private, name).toBe(true);
    const sdk = JSON.parse(
      readFileSync(join(nodeApp, 'node_modules', '@blip2', 'sdk', 'package.json'), 'utf8'),
    );
    expect(JSON.stringify(sdk)).not.toContain('workspace:');
    expect(sdk.peerDependenciesMeta['@blip2/backend-node'].optional).toBe(true);
  });
});

describe('a Node project: npm install <tarballs> @blip2/backend-node sharp', () => {
  it('captions and answers with the shipped shapes models, as the workspace SDK does (ESM)', async () => {
    const { stdout } = await run(
      process.execPath,
      ['caption.mjs', fixtures.shapesCaptioner, fixtures.shapesOpt, image],
      { cwd: nodeApp },
    );
    const got = JSON.parse(stdout);
    expect(got).toEqual(expected);
    expect(got.caption.length).toBeGreaterThan(0);
  });

  it('CommonJS require and the blip2 bin give the same', async () => {
    const cjs = await run(process.execPath, ['caption.cjs', fixtures.shapesCaptioner, image], {
      cwd: nodeApp,
    });
    expect(JSON.parse(cjs.stdout).caption).toBe(expected.caption);
    const bin = await run(
      join(nodeApp, 'node_modules', '.bin', 'blip2'),
      [
        'ask',
        '--model',
        fixtures.shapesOpt,
        '--image',
        image,
        ...QUESTIONS.flatMap((q) => ['--question', q]),
      ],
      { cwd: nodeApp },
    );
    expect(bin.stdout).toBe(QUESTIONS.map((q, i) => `${image}\t${q}\t${expected.answers[i]}\n`).join(''));
  });

  it('tsc checks a TypeScript file against the published .d.ts (no lib dom)', async () => {
    // check.ts must pass; bad.ts holds the one wrong use, which must be the only error
    const r = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: nodeApp }).catch((e) => e);
    const errors = String(r.stdout).trim().split('\n');
    expect(errors, r.stdout).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^bad\.ts\(5,9\): error TS2322: Type 'string\[\]' is not assignable to type 'string'/,
    );
  });
});

describe('a browser project: npm install <tarballs> without @blip2/backend-node', () => {
  it('downloads neither onnxruntime-node nor sharp', () => {
    const modules = join(browserApp, 'node_modules');
    expect(existsSync(join(modules, 'onnxruntime-web'))).toBe(true);
    expect(existsSync(join(modules, 'onnxruntime-node'))).toBe(false);
    expect(existsSync(join(modules, 'sharp'))).toBe(false);
    expect(existsSync(join(modules, '@blip2', 'backend-node'))).toBe(false);
  });

  it('in Node, the missing optional peers are typed errors that say what to install', async () => {
    const script = `import { Blip2ForConditionalGeneration } from '@blip2/sdk';
const show = (e) => console.log(JSON.stringify({ code: e.code, message: e.message }));
await Blip2ForConditionalGeneration.fromPretrained(process.argv[2]).catch(show);
const m = await Blip2ForConditionalGeneration.fromPretrained(process.argv[2], { backend: 'web' });
await m.caption(process.argv[3]).catch(show);
await m.dispose();`;
    await writeFile(join(browserApp, 'peers.mjs'), script);
    const r = await run(process.execPath, ['peers.mjs', fixtures.shapesOpt, image], { cwd: browserApp });
    const [backend, decode] = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(backend.code).toBe('E_BACKEND');
    expect(backend.message).toContain('npm install @blip2/backend-node sharp');
    expect(decode.code).toBe('E_DEPENDENCY');
    expect(decode.message).toContain('npm install sharp');
    const bin = await run(join(browserApp, 'node_modules', '.bin', 'blip2'), ['doctor'], {
      cwd: browserApp,
    }).catch((e) => e);
    expect(bin.code).toBe(1);
    expect(bin.stderr).toBe(`blip2: ${backend.message}\n`);
  });

  it('type-checks with lib dom (ImageInput takes an HTMLImageElement and a Blob)', async () => {
    const r = await run(process.execPath, [tsc, '-p', 'tsconfig.browser.json'], { cwd: browserApp }).catch(
      (e) => e,
    );
    expect(r.stdout, r.stdout).toBe('');
  });

  it('bundles with esbuild and runs on wasm in Chromium, onnxruntime-web files served at /static/onnx/', async () => {
    const built = await esbuild.build({
      entryPoints: [join(browserApp, 'page.ts')],
      absWorkingDir: browserApp,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    const bundle = built.outputFiles[0].contents;
    const ortDist = join(browserApp, 'node_modules', 'onnxruntime-web', 'dist');
    const files = new Map<string, string | Uint8Array>([
      ['/', new TextEncoder().encode('<!doctype html><script type="module" src="/app.js"></script>')],
      ['/app.js', bundle],
      ['/image.jpg', image],
    ]);
    for (const [dir, name] of [
      [fixtures.shapesCaptioner, 'captioner'],
      [fixtures.shapesOpt, 'vqa'],
    ])
      for (const f of readdirSync(dir)) files.set(`/models/${name}/${f}`, join(dir, f));
    for (const f of readdirSync(ortDist)) files.set(`/static/onnx/${f}`, join(ortDist, f));
    const requests: string[] = [];
    const server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      requests.push(path);
      const file = files.get(path);
      const headers = {
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
        'Content-Type': TYPES[extname(path)] ?? (path === '/' ? 'text/html' : 'application/octet-stream'),
      };
      if (file === undefined) res.writeHead(404, headers).end();
      else if (typeof file !== 'string') res.writeHead(200, headers).end(file);
      else {
        res.writeHead(200, { ...headers, 'Content-Length': String(statSync(file).size) });
        createReadStream(file).pipe(res);
      }
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { context, close } = await launchChromium();
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const logs: string[] = [];
      page.on('pageerror', (e) => logs.push(e.message));
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      await page.waitForFunction(() => typeof (globalThis as { run?: unknown }).run === 'function');
      const got = await page.evaluate(() => (globalThis as unknown as { run(): Promise<unknown> }).run());
      expect(got, logs.join('\n')).toEqual(expected);
      // onnxruntime-web came from where the app serves it, and only the files docs/browser.md says to copy
      const ort = requests.filter((r) => r.startsWith('/static/onnx/'));
      expect(ort.some((r) => r.endsWith('.wasm'))).toBe(true);
      for (const r of ort) expect(r).toMatch(/^\/static\/onnx\/ort-wasm-simd-threaded[\w.-]*$/);
    } finally {
      await close();
      await new Promise<void>((ok) => (server as Server).close(() => ok()));
    }
  });
});

const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.jpg': 'image/jpeg',
};
