/**
 * Real-size benchmark of BLIP-2's image side (ViT-g + Q-Former + language_projection)
 * on onnxruntime-node CPU: blip2-opt-2.7b's shapes from manifests.json, random weights
 * written to a temporary .safetensors file, graphs built over it in place.
 *
 *   pnpm bench                      # float32 weights (4.4 GB file)
 *   BENCH_DTYPE=F16 pnpm bench      # float16 weights (2.2 GB file; Cast nodes to float32)
 *   BENCH_VARIANT=blip2-flan-t5-xl BENCH_RUNS=3 pnpm bench
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { type Blip2Config, parseBlip2Config } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import type { WeightLookup } from '@blip2/onnx';
import { openWeightsFromFile, writeSafetensorsFile } from '@blip2/safetensors/node';
import { float32 } from '@blip2/tensor';
import { buildVisionModel, numPatches } from '@blip2/vision-encoder';
import { expect, it } from 'vitest';
import { buildQFormer } from '../src/index.js';

const VARIANT = process.env.BENCH_VARIANT ?? 'blip2-opt-2.7b';
const DTYPE = (process.env.BENCH_DTYPE ?? 'F32') as 'F32' | 'F16';
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const BATCHES = (process.env.BENCH_BATCHES ?? '1,8').split(',').map(Number);

const IMAGE_SIDE = /^(vision_model\.|qformer\.|query_tokens$|language_projection\.)/;

/**
 * Writes random weights of the given shapes as one safetensors file (streamed: no
 * file-sized buffer); returns the lookup the builders take. Layer-norm gains are near
 * 1 and everything else small, so activations stay in a normal range.
 */
async function writeRandomCheckpoint(
  path: string,
  shapes: [string, number[]][],
  dtype: 'F32' | 'F16',
): Promise<{ lookup: WeightLookup; bytes: number }> {
  let s = 0x9e3779b9;
  const bytes = await writeSafetensorsFile(
    path,
    shapes.map(([name, shape]) => {
      const isGain = /(norm|LayerNorm)[^.]*\.weight$/.test(name);
      return {
        name,
        dtype,
        shape,
        fill(values: Float32Array) {
          for (let i = 0; i < values.length; i++) {
            s ^= s << 13;
            s ^= s >>> 17;
            s ^= s << 5;
            const u = (s >>> 0) / 4294967296 - 0.5;
            values[i] = isGain ? 1 + 0.1 * u : 0.04 * u;
          }
        },
      };
    }),
  );
  const lookup = await openWeightsFromFile(path);
  // the builders need only the headers, which stay in memory
  await lookup.close();
  return { lookup, bytes };
}

/** Multiply-adds x2 of one image through the vision model, and through the Q-Former + projection. */
function flopsPerImage(config: Blip2Config, textWidth: number): { vision: number; qformer: number } {
  const v = config.visionConfig;
  const T = 1 + numPatches(v);
  const { hiddenSize: D, intermediateSize: I } = v;
  const perLayer = 2 * T * D * 3 * D + 2 * 2 * T * T * D + 2 * T * D * D + 2 * 2 * T * D * I;
  const vision = 2 * numPatches(v) * D * 3 * v.patchSize ** 2 + v.numHiddenLayers * perLayer;
  const q = config.qformerConfig;
  const Q = config.numQueryTokens;
  const Dq = q.hiddenSize;
  let qformer = 2 * Q * Dq * textWidth;
  for (let i = 0; i < q.numHiddenLayers; i++) {
    qformer += 4 * 2 * Q * Dq * Dq + 2 * 2 * Q * Q * Dq + 2 * 2 * Q * Dq * q.intermediateSize;
    if (i % q.crossAttentionFrequency === 0)
      qformer += 2 * 2 * Q * Dq * Dq + 2 * 2 * T * D * Dq + 2 * 2 * Q * T * Dq;
  }
  return { vision, qformer };
}

function memory(): { rss: number; anon: number; file: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: process.memoryUsage().rss, anon: kb('RssAnon'), file: kb('RssFile') };
}

const GB = 1e9;
const fmt = (x: number, d = 2) => x.toFixed(d);
const now = () => performance.now();

it(`image side of ${VARIANT} at real size, ${DTYPE} weights, CPU`, async () => {
  const manifest = (
    JSON.parse(readFileSync(fixtures.manifests, 'utf8')) as Record<
      string,
      { config: unknown; weights: Record<string, number[]> }
    >
  )[VARIANT];
  const config = parseBlip2Config(manifest.config, `manifests.json#${VARIANT}`);
  const shapes = Object.entries(manifest.weights).filter(([n]) => IMAGE_SIDE.test(n));
  const dir = mkdtempSync(join(tmpdir(), 'blip2-bench-'));
  const lines: string[] = [];
  const log = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  try {
    let t = now();
    const { lookup, bytes } = await writeRandomCheckpoint(join(dir, 'model.safetensors'), shapes, DTYPE);
    const params = shapes.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
    log(
      `machine: ${cpus().length} x ${cpus()[0]?.model}, load average before runs ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
    log(
      `${VARIANT} image side: ${(params / 1e6).toFixed(1)} M params, ${DTYPE} file ${fmt(bytes / GB)} GB (written in ${fmt((now() - t) / 1000, 1)} s)`,
    );

    const memStart = memory();
    t = now();
    const visionGraph = buildVisionModel(config.visionConfig, lookup);
    const qformerGraph = buildQFormer(config.qformerConfig, lookup, {
      numQueryTokens: config.numQueryTokens,
    });
    log(
      `build: ${fmt(now() - t, 1)} ms (graph bytes: vision ${fmt(visionGraph.bytes.length / 1e3, 1)} kB, qformer ${fmt(qformerGraph.bytes.length / 1e3, 1)} kB)`,
    );

    const backend = createNodeBackend();
    t = now();
    const vision = await backend.load(visionGraph);
    const tVision = now() - t;
    t = now();
    const qformer = await backend.load(qformerGraph);
    log(`session creation: vision ${fmt(tVision, 1)} ms, qformer ${fmt(now() - t, 1)} ms`);
    const memSession = memory();

    const textWidth = qformerGraph.outputs[1].dims[2] as number;
    const flops = flopsPerImage(config, textWidth);
    const S = config.visionConfig.imageSize;
    for (const batch of BATCHES) {
      const pixels = float32(
        [batch, 3, S, S],
        Float32Array.from({ length: batch * 3 * S * S }, (_, i) => Math.sin(i) * 1.5),
      );
      const times = { vision: [] as number[], qformer: [] as number[] };
      // batch 1 starts with a warm-up run; larger batches run once (each takes minutes on 2 cores)
      const runs = batch === 1 ? RUNS + 1 : 1;
      let query: Float32Array | undefined;
      for (let r = 0; r < runs; r++) {
        t = now();
        const { last_hidden_state } = await vision.run({ pixel_values: pixels }, ['last_hidden_state']);
        const tv = now() - t;
        t = now();
        const out = await qformer.run({ image_embeds: last_hidden_state });
        const tq = now() - t;
        query = out.query_embeds.data as Float32Array;
        if (batch === 1 && r === 0) continue;
        times.vision.push(tv);
        times.qformer.push(tq);
      }
      expect(query?.every(Number.isFinite)).toBe(true);
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const tv = median(times.vision);
      const tq = median(times.qformer);
      log(
        `batch ${batch}: vision ${fmt(tv / 1000)} s (${fmt(tv / batch / 1000)} s/image, ${fmt((flops.vision * batch) / (tv / 1000) / GB, 1)} GFLOP/s), ` +
          `qformer+projection ${fmt(tq, 1)} ms (${fmt(tq / batch, 1)} ms/image, ${fmt((flops.qformer * batch) / (tq / 1000) / GB, 1)} GFLOP/s), ` +
          `runs ${times.vision.length}`,
      );
    }
    const memEnd = memory();
    log(
      `load average after runs ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')} (other processes share the cores when above ~0)`,
    );
    log(
      `work per image: vision ${fmt(flops.vision / GB, 1)} GFLOP, qformer+projection ${fmt(flops.qformer / GB, 2)} GFLOP`,
    );
    log(
      `memory: weights ${fmt(bytes / GB)} GB; RSS before sessions ${fmt(memStart.rss / GB)} GB, after creation ${fmt(memSession.rss / GB)} GB ` +
        `(anon ${fmt(memSession.anon / GB)}, file-mapped ${fmt(memSession.file / GB)}), after runs ${fmt(memEnd.rss / GB)} GB ` +
        `(anon ${fmt(memEnd.anon / GB)}, file-mapped ${fmt(memEnd.file / GB)})`,
    );
    await vision.release();
    await qformer.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
