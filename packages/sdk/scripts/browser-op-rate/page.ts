/**
 * Page script of browser-op-rate.mjs: one graph (a single matrix product) created on the
 * asked onnxruntime-web provider and run a few times on `rows` rows; the wall time of each
 * run, awaited to its output on the CPU, and the output's first values.
 */
import * as ort from 'onnxruntime-web';

ort.env.wasm.wasmPaths = `${location.origin}/ort/`;

export interface RateRequest {
  readonly url: string;
  readonly device: 'webgpu' | 'wasm';
  readonly rows: number;
  readonly k: number;
  readonly runs: number;
}

export async function timeProduct(
  req: RateRequest,
): Promise<{ createMs: number; runMs: number[]; finite: boolean; head: number[] }> {
  const bytes = new Uint8Array(await (await fetch(req.url)).arrayBuffer());
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: [req.device],
    graphOptimizationLevel: 'all',
  });
  const createMs = performance.now() - t0;
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: req.rows * req.k }, (_, i) => Math.sin(i)),
    [req.rows, req.k],
  );
  const runMs: number[] = [];
  let finite = true;
  // the first outputs, to compare providers' numbers (the same graph and input on each)
  let head: number[] = [];
  try {
    for (let i = 0; i < req.runs; i++) {
      const t = performance.now();
      const out = await session.run({ x });
      runMs.push(performance.now() - t);
      finite &&= (out.y.data as Float32Array).every(Number.isFinite);
      head = Array.from((out.y.data as Float32Array).subarray(0, 4));
    }
  } finally {
    await session.release();
  }
  return { createMs, runMs, finite, head };
}
