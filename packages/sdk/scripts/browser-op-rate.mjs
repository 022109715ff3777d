#!/usr/bin/env node
/**
 * One matrix product at real width on onnxruntime-web's providers in headless Chromium:
 * how fast each device multiplies, per form of the product, so a real-size browser run's
 * time can be split into what the graphs ask and what the device delivers. Forms:
 *   nbits   com.microsoft.MatMulNBits, 4 bits, zero points, blocks of --block (q4BlockSize)
 *   nbitssym  the same without zero points (symmetric blocks)
 *   gemm    float32 Gemm(transB=1) over the [N, K] weight (what fp32 `linear` emits)
 *   matmul  float32 MatMul over a [K, N] weight
 *   dq8     DequantizeLinear of a uint8 [K, N] weight + MatMul (q8 `linear` on WebGPU)
 *   dqmm    com.microsoft.DynamicQuantizeMatMul over a uint8 [K, N] weight (q8 `linear`; wasm only)
 *   adds    no product: 100 chained elementwise Adds over the [rows, K] input, so the line's
 *           time / 100 is what one small kernel costs the device (dispatch, not arithmetic)
 * Weights are random (the rate does not depend on them) and embedded in the graph.
 *
 *   pnpm build
 *   flock /tmp/bench.lock node packages/sdk/scripts/browser-op-rate.mjs \
 *     --shape 10240x2560 --forms nbits,gemm --rows 1,42,257 --device wasm,webgpu --runs 3
 *
 * --shape N x K of the weight (default 10240x2560: OPT-2.7b's fc1), comma-separated for several
 * --block   the nbits forms' block along K, 32 (default) or 128, where K is a multiple of it
 * Devices alternate innermost (wasm, webgpu, wasm, ...) so load drift hits both alike. Prints a
 * line per case: session creation, each run's ms, GFLOP/s (2 x rows x N x K / best later run) and
 * the output's first values (the same graph and input on every device: they must agree).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { GraphBuilder, MS_DOMAIN, q4BlockSize } from '@blip2/onnx';
import { float32 } from '@blip2/tensor';
import { launchChromium } from '@blip2/test-browser';
import { bundlePage, HEADERS, servePage } from './browser-page.mjs';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: '10240x2560' },
    forms: { type: 'string', default: 'nbits' },
    block: { type: 'string', default: '32' },
    rows: { type: 'string', default: '1,42' },
    device: { type: 'string', default: 'wasm,webgpu' },
    runs: { type: 'string', default: '3' },
  },
});
const shapes = values.shape.split(',').map((s) => s.split('x').map(Number));
const forms = values.forms.split(',');
const rowCounts = values.rows.split(',').map(Number);
const devices = values.device.split(',');
const runs = Number(values.runs);

/** Deterministic bytes (an LCG): random enough for a rate, no allocation of a float copy. */
function bytes(n, seed) {
  const a = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s >>> 24;
  }
  return a;
}
const floats = (n, seed, scale) => Float32Array.from(bytes(n, seed), (v) => (v - 128) * scale);

function product(form, n, k) {
  const g = new GraphBuilder(`${form}_${n}x${k}`, {});
  const x = g.input('x', 'float32', ['rows', k]);
  const block = q4BlockSize(k, Number(values.block));
  const nb = Math.ceil(k / block);
  let y;
  if (form === 'nbits' || form === 'nbitssym') {
    const b = g.constant({ dtype: 'uint8', dims: [n, nb, block / 2], data: bytes((n * nb * block) / 2, 1) });
    const scales = g.constant(float32([n, nb], floats(n * nb, 2, 1e-4)));
    const zp = g.constant({
      dtype: 'uint8',
      dims: [n * Math.ceil(nb / 2)],
      data: bytes(n * Math.ceil(nb / 2), 3),
    });
    const attrs = { K: k, N: n, bits: 4, block_size: block, accuracy_level: 4 };
    y = g.op1('MatMulNBits', form === 'nbitssym' ? [x, b, scales] : [x, b, scales, zp], attrs, MS_DOMAIN);
  } else if (form === 'gemm') {
    y = g.op1('Gemm', [x, g.constant(float32([n, k], floats(n * k, 4, 1e-3)))], { transB: 1 });
  } else if (form === 'matmul') {
    y = g.op1('MatMul', [x, g.constant(float32([k, n], floats(n * k, 4, 1e-3)))]);
  } else if (form === 'dq8') {
    const b = g.constant({ dtype: 'uint8', dims: [k, n], data: bytes(n * k, 5) });
    const scale = g.constant(float32([n], floats(n, 6, 1e-5)));
    const zp = g.constant({ dtype: 'uint8', dims: [n], data: new Uint8Array(n).fill(128) });
    y = g.op1('MatMul', [x, g.op1('DequantizeLinear', [b, scale, zp], { axis: 1 })]);
  } else if (form === 'dqmm') {
    const b = g.constant({ dtype: 'uint8', dims: [k, n], data: bytes(n * k, 5) });
    const scale = g.constant(float32([n], floats(n, 6, 1e-5)));
    y = g.op1('DynamicQuantizeMatMul', [x, b, scale], {}, MS_DOMAIN);
  } else if (form === 'adds') {
    y = x;
    for (let i = 0; i < 100; i++) y = g.op1('Add', [y, g.constant(float32([k], floats(k, 7 + i, 1e-3)))]);
  } else throw new Error(`unknown form ${form} (nbits, gemm, matmul, dq8, dqmm, adds)`);
  g.output(y, 'y', 'float32', ['rows', form === 'adds' ? k : n]);
  return g.build().bytes;
}

const page = await bundlePage('browser-op-rate', 'timeProduct');
const graphs = new Map();
for (const [n, k] of shapes) for (const f of forms) graphs.set(`/${f}_${n}x${k}.onnx`, product(f, n, k));

const server = await servePage(page, (path, _req, res) => {
  if (!graphs.has(path)) return false;
  res.writeHead(200, HEADERS).end(graphs.get(path));
});
const { context, close } = await launchChromium();
try {
  const tab = context.pages()[0] ?? (await context.newPage());
  await tab.goto(`${server.baseUrl}/`);
  await tab.waitForFunction(() => globalThis.ready === true, undefined, { timeout: 60_000 });
  console.log(
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  for (const [n, k] of shapes)
    for (const form of forms)
      for (const rows of rowCounts)
        for (const device of devices) {
          const r = await tab.evaluate((req) => globalThis.timeProduct(req), {
            url: `/${form}_${n}x${k}.onnx`,
            device,
            rows,
            k,
            runs,
          });
          const best = Math.min(...(r.runMs.length > 1 ? r.runMs.slice(1) : r.runMs));
          const rate =
            form === 'adds'
              ? `${(best / 100).toFixed(2)} ms per Add`
              : `${((2 * rows * n * k) / best / 1e6).toFixed(2)} GFLOP/s`;
          console.log(
            `${device} ${form} N=${n} K=${k} rows=${rows}: create ${r.createMs.toFixed(0)} ms; runs ${r.runMs.map((t) => t.toFixed(1)).join(', ')} ms; ${rate}${r.finite ? '' : ' (NON-FINITE output)'}; y[0..3] ${r.head.map((v) => v.toPrecision(5)).join(', ')}`,
          );
        }
  console.log(
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
} finally {
  await close();
  server.close();
}
