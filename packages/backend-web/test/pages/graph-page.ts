/**
 * Page script for browser.test.ts: loads graphs (bytes from URLs, weights by URL)
 * on one backend of the requested device and returns their outputs as plain arrays.
 */
import { type BuiltGraph, float32, type GraphIO } from '@blip2/tensor';
import { createWebBackend, doctor, type WebDevice, type WeightProgress } from '../../src/index.js';

export interface GraphRequest {
  readonly graphUrl: string;
  readonly name: string;
  readonly inputs: readonly GraphIO[];
  readonly outputs: readonly GraphIO[];
  readonly externalData: BuiltGraph['externalData'];
  readonly feeds: Record<string, { dims: number[]; data: number[] }>;
}

export interface RunResult {
  readonly backend: string;
  readonly outputs: Record<string, { dims: number[]; data: number[] }>[];
  readonly progress: WeightProgress[];
  readonly warnings: string[];
}

async function runGraphs(device: WebDevice, graphs: readonly GraphRequest[]): Promise<RunResult> {
  const progress: WeightProgress[] = [];
  const warnings: string[] = [];
  const backend = await createWebBackend({
    device,
    wasmPaths: `${location.origin}/ort/`,
    onProgress: (p) => progress.push(p),
    onWarning: (m) => warnings.push(m),
  });
  const outputs = [];
  for (const req of graphs) {
    const bytes = new Uint8Array(await (await fetch(req.graphUrl)).arrayBuffer());
    const graph: BuiltGraph = {
      name: req.name,
      bytes,
      inputs: req.inputs,
      outputs: req.outputs,
      externalData: req.externalData,
    };
    const session = await backend.load(graph);
    try {
      const feeds = Object.fromEntries(
        Object.entries(req.feeds).map(([k, v]) => [k, float32(v.dims, v.data)]),
      );
      const out = await session.run(feeds);
      outputs.push(
        Object.fromEntries(
          Object.entries(out).map(([k, t]) => [
            k,
            { dims: [...t.dims], data: Array.from(t.data as Float32Array) },
          ]),
        ),
      );
    } finally {
      await session.release();
    }
  }
  return { backend: backend.name, outputs, progress, warnings };
}

const g = globalThis as unknown as { runGraphs: typeof runGraphs; webDoctor: typeof doctor };
g.runGraphs = runGraphs;
g.webDoctor = doctor;
