/**
 * Why a beam step costs twice a greedy step: OPT-2.7b's feed-forward matrices
 * ([10240, 2560] and [2560, 10240], float32, used in place from a safetensors file)
 * as `linear` builds them by default (Gemm transB=1 over the stored [out, in] weight)
 * against `linear`'s `weightFirst` form, y^T = W x^T, at M = 1..42 rows (a
 * step of M beams, or a prompt of M tokens). Both read the weight where it lies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { GraphBuilder, linear } from '@blip2/onnx';
import { openWeightsFromFile, writeSafetensorsFile } from '@blip2/safetensors/node';
import { float32 } from '@blip2/tensor';
import { it } from 'vitest';

it('linear over mapped OPT-2.7b weights at 1..42 rows', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip2-lin-'));
  const shapes: [string, number, number][] = [
    ['fc1', 10240, 2560],
    ['fc2', 2560, 10240],
  ];
  const path = join(dir, 'w.safetensors');
  await writeSafetensorsFile(
    path,
    shapes.map(([name, o, i], k) => ({
      name,
      dtype: 'F32' as const,
      shape: [o, i],
      // the values of one file-long sin sequence, as the weights follow each other
      fill(values: Float32Array, start: number) {
        const base = k === 0 ? 0 : shapes[0][1] * shapes[0][2];
        for (let j = 0; j < values.length; j++) values[j] = Math.sin(base + start + j) * 0.03;
      },
    })),
  );
  const lookup = await openWeightsFromFile(path);
  const backend = createNodeBackend();
  // four layers' worth of fc1 + fc2 over the same two weights: 839 MB read per run, more than any cache
  for (const variant of ['gemm-transB', 'W-as-A'] as const) {
    const g = new GraphBuilder(variant, { weights: lookup });
    let x = g.input('x', 'float32', ['m', 1, 2560]);
    for (let r = 0; r < 4; r++) {
      for (const [n] of shapes) {
        const w = g.weight(n);
        // W-as-A: y^T = W x^T, the weight the streamed A operand, the few rows of x the packed B
        x = linear(x, w, null, { weightFirst: variant === 'W-as-A' });
      }
    }
    g.output(x, 'y', 'float32', ['m', 1, 2560]);
    const s = await backend.load(g.build());
    const line: string[] = [];
    // M rows: 1 = greedy step, 5 = a step of 5 beams, 42 = a BLIP-2 prompt (32 queries + 10 tokens)
    for (const m of [1, 2, 5, 8, 16, 42]) {
      const input = float32(
        [m, 1, 2560],
        Float32Array.from({ length: m * 2560 }, (_, k) => Math.cos(k)),
      );
      const ts: number[] = [];
      for (let r = 0; r < 8; r++) {
        const t0 = performance.now();
        await s.run({ x: input });
        ts.push(performance.now() - t0);
      }
      ts.sort((a, b) => a - b);
      const med = (ts[3] + ts[4]) / 2;
      line.push(
        `M=${m}: ${med.toFixed(1)} ms (${((8 * 4 * 10240 * 2560) / (med / 1000) / 1e9).toFixed(1)} GB/s, ${((m * 8 * 2 * 10240 * 2560) / (med / 1000) / 1e9).toFixed(0)} GFLOP/s)`,
      );
    }
    console.log(`${variant} (8 linears, 839 MB of weights): ${line.join('; ')}`);
    await s.release();
  }
  await lookup.close();
  rmSync(dir, { recursive: true, force: true });
});
