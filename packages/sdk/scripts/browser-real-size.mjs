#!/usr/bin/env node
/**
 * Real size in a browser (issue 14): serves an exported checkpoint folder on
 * 127.0.0.1, loads it in headless Debian Chromium through `@blip2/sdk/browser`,
 * captions a 224x224 image with a few greedy tokens, and prints what it cost:
 * bytes the server sent, peak resident memory of Chromium's processes (sampled from
 * /proc from outside, by process type), the wasm heap and
 * `performance.measureUserAgentSpecificMemory` seen from inside, load time, the first
 * token (image side + prefill) and the time per later token.
 *
 * A bench, not a test (gigabytes of weights; run it on a quiet machine, one at a time):
 *
 *   pnpm build
 *   flock /tmp/bench.lock node packages/sdk/scripts/browser-real-size.mjs \
 *     --model path/to/blip2-opt-2.7b-q4 --device wasm,webgpu --tokens 4 --timeout 20
 *
 * --model     a folder written by `blip2 export --dtype ...` (or any checkpoint folder)
 * --device    wasm, webgpu or both, comma-separated, run one after the other in fresh browsers
 * --tokens    new tokens per caption (default 4; EOS is masked until then)
 * --timeout   minutes per device before the run is abandoned (default 20)
 * --dtype     passed to fromPretrained (quantize at load), for a float32 folder
 * --image-side  'skip': no image, no query tokens; tokens from a one-token text prompt through the
 *             language model alone (decode figures where the image side cannot finish in the bound)
 * Prints one JSON line per device at the end (`result: {...}`).
 */
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium } from '@blip2/test-browser';
import { bundlePage, HEADERS, servePage } from './browser-page.mjs';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    device: { type: 'string', default: 'wasm,webgpu' },
    tokens: { type: 'string', default: '4' },
    timeout: { type: 'string', default: '20' },
    dtype: { type: 'string' },
    'image-side': { type: 'string', default: 'run' },
  },
});
if (!values.model) {
  console.error(
    'usage: browser-real-size.mjs --model DIR [--device wasm,webgpu] [--tokens 4] [--timeout 20]',
  );
  process.exit(2);
}
const modelDir = values.model;
const devices = values.device.split(',');
const tokens = Number(values.tokens);
const timeoutMs = Number(values.timeout) * 60_000;

const page = await bundlePage('browser-real-size', 'run');
const TYPES = { '.json': 'application/json' };

/** Bytes the server wrote per model file in the current run (the download, as the server logged it). */
let sent = new Map();
const modelFiles = new Set(readdirSync(modelDir).filter((f) => statSync(join(modelDir, f)).isFile()));

const server = await servePage(page, (path, req, res) => {
  if (!path.startsWith('/model/') || !modelFiles.has(path.slice(7))) return false;
  const name = path.slice(7);
  const file = join(modelDir, name);
  let size;
  try {
    size = statSync(file).size;
  } catch {
    return false;
  }
  const type = TYPES[extname(file)] ?? 'application/octet-stream';
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const end = range?.[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
  res.writeHead(range ? 206 : 200, {
    ...HEADERS,
    'Content-Type': type,
    'Accept-Ranges': 'bytes',
    'Content-Length': String(end - start + 1),
    ...(range ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
  });
  const stream = createReadStream(file, { start, end });
  stream.on('data', (chunk) => sent.set(name, (sent.get(name) ?? 0) + chunk.length));
  stream.pipe(res);
});
const { baseUrl } = server;

/** This process's descendants (Chromium's browser, renderer, GPU and utility processes) with their RSS. */
function chromiumProcesses() {
  const parent = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {}
  }
  const mine = new Set([String(process.pid)]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parent)
      if (!mine.has(pid) && mine.has(ppid)) {
        mine.add(pid);
        grew = true;
      }
  }
  mine.delete(String(process.pid));
  const out = [];
  for (const pid of mine) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chrom')) continue;
      const type = /--type=([\w-]+)/.exec(cmd)?.[1] ?? 'browser';
      const kind =
        type === 'utility' ? `utility:${/--utility-sub-type=([\w.]+)/.exec(cmd)?.[1] ?? '?'}` : type;
      out.push({ pid, kind, rss });
    } catch {}
  }
  return out;
}

const GiB = (n) => `${(n / 2 ** 30).toFixed(2)} GiB`;

async function runDevice(device) {
  sent = new Map();
  const peak = { total: 0, byKind: {} };
  const sample = () => {
    const procs = chromiumProcesses();
    const total = procs.reduce((n, p) => n + p.rss, 0);
    peak.total = Math.max(peak.total, total);
    for (const p of procs) peak.byKind[p.kind] = Math.max(peak.byKind[p.kind] ?? 0, p.rss);
  };
  const sampler = setInterval(sample, 200);
  const { context, close } = await launchChromium();
  const started = Date.now();
  let timer;
  try {
    const tab = context.pages()[0] ?? (await context.newPage());
    tab.on('console', (m) => console.log(`  ${m.text()}`));
    tab.on('pageerror', (e) => console.log(`  [pageerror] ${e.message}`));
    tab.on('crash', () => console.log('  [renderer crashed]'));
    await tab.goto(`${baseUrl}/`);
    await tab.waitForFunction(() => globalThis.ready === true, undefined, { timeout: 60_000 });
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${device}: no result after ${values.timeout} min`)),
        timeoutMs,
      );
    });
    const request = {
      modelUrl: `${baseUrl}/model/`,
      device,
      tokens,
      ...(values.dtype ? { dtype: values.dtype } : {}),
      imageSide: values['image-side'] !== 'skip',
    };
    const result = await Promise.race([tab.evaluate((r) => globalThis.run(r), request), timeout]);
    sample();
    return {
      device,
      ok: true,
      ...result,
      wallMs: Date.now() - started,
      served: Object.fromEntries(sent),
      servedBytes: [...sent.values()].reduce((a, b) => a + b, 0),
      peakRss: peak,
    };
  } catch (e) {
    sample();
    return {
      device,
      ok: false,
      error: String(e?.message ?? e).split('\n')[0],
      wallMs: Date.now() - started,
      served: Object.fromEntries(sent),
      servedBytes: [...sent.values()].reduce((a, b) => a + b, 0),
      peakRss: peak,
    };
  } finally {
    clearTimeout(timer);
    clearInterval(sampler);
    await close().catch(() => {});
  }
}

const results = [];
for (const device of devices) {
  console.log(`${device}: loading ${modelDir}`);
  const r = await runDevice(device);
  results.push(r);
  const step = r.stepMs?.length ? (r.stepMs.reduce((a, b) => a + b, 0) / r.stepMs.length).toFixed(0) : '-';
  console.log(
    `${device}: ${r.ok ? 'ok' : `FAILED (${r.error})`}; served ${GiB(r.servedBytes)}; peak RSS all Chromium processes ${GiB(r.peakRss.total)} (${Object.entries(
      r.peakRss.byKind,
    )
      .map(([k, v]) => `${k} ${GiB(v)}`)
      .join(', ')})` +
      (r.ok
        ? `; load ${(r.loadMs / 1000).toFixed(1)} s; first token ${(r.firstTokenMs / 1000).toFixed(1)} s; ${step} ms per later token; wasm heap ${GiB(r.heapBytesAfterGenerate)}; runs ${Object.entries(
            r.graphRuns,
          )
            .map(([g, x]) => `${g} ${x.runs} x ${(x.ms / x.runs / 1000).toFixed(2)} s`)
            .join(', ')}`
        : ''),
  );
  console.log(`result: ${JSON.stringify(r)}`);
}
server.close();
process.exit(results.every((r) => r.ok) ? 0 : 1);
