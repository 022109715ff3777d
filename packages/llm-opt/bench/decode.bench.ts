/**
 * Real-size benchmark of BLIP-2's language side: blip2-opt-2.7b's OPT decoder
 * (shapes from manifests.json, `language_model.*`) on onnxruntime-node CPU, random
 * float32 weights written to a temporary .safetensors file and used in place. One run
 * prints graph build, session creation, memory, prefill of a BLIP-2 prompt (32 query
 * embeddings + 10 text tokens), per-token steps, and `generate` with greedy search and
 * with LAVIS' beam recipe, splitting each generation between the adapter's session runs
 * and the TypeScript search around them.
 *
 *   pnpm bench                              # from packages/llm-opt (writes ~11 GB to the temp dir)
 *   BENCH_STEPS=20 BENCH_NEW_TOKENS=20 pnpm bench
 *   BENCH_LAYERS=2 pnpm bench               # a quick smoke run: real widths, first 2 layers only
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { type OPTConfig, parseBlip2Config } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import {
  type GenerationOptions,
  generate,
  type LanguageModelAdapter,
  prependQueryEmbeds,
  type StepOutput,
} from '@blip2/generation';
import type { WeightLookup } from '@blip2/onnx';
import { openWeightsFromFile, writeSafetensorsFile } from '@blip2/safetensors/node';
import { float32, int64, logSoftmax, type Tensor, topk } from '@blip2/tensor';
import { expect, it } from 'vitest';
import { buildOpt, OptAdapter, type OptCache } from '../src/index.js';

const VARIANT = process.env.BENCH_VARIANT ?? 'blip2-opt-2.7b';
/** timed steps at batch 1 (after one warm-up step) */
const STEPS = Number(process.env.BENCH_STEPS ?? 10);
const NEW_TOKENS = Number(process.env.BENCH_NEW_TOKENS ?? 10);
const LAYERS = process.env.BENCH_LAYERS ? Number(process.env.BENCH_LAYERS) : undefined;
const TEXT_TOKENS = 10;
const BEAMS = 5;
/** OPT's `</s>`, which LAVIS' OPT generation stops on */
const EOS = 2;

const LANGUAGE_MODEL = /^language_model\./;
/** published BLIP-2 OPT checkpoints store float32; std 0.02 is OPT's `init_std` */
const WEIGHT_STD = 0.02;

/**
 * Writes random float32 weights of the given shapes as one safetensors file, streamed
 * (no 11 GB buffer in this process), and returns the lookup `buildOpt` takes.
 * Values are uniform with standard deviation 0.02 (as fast as a xorshift and, for
 * timing, as good as a normal law); layer-norm gains are 1.
 */
async function writeRandomCheckpoint(
  path: string,
  shapes: [string, number[]][],
): Promise<{ lookup: WeightLookup; bytes: number }> {
  let s = 0x9e3779b9;
  const halfWidth = WEIGHT_STD * Math.sqrt(12); // uniform on [-w/2, w/2] has std w / sqrt(12)
  const bytes = await writeSafetensorsFile(
    path,
    shapes.map(([name, shape]) => {
      const isGain = /layer_norm\.weight$/.test(name);
      return {
        name,
        dtype: 'F32' as const,
        shape,
        fill(values: Float32Array) {
          if (isGain) values.fill(1);
          else {
            for (let i = 0; i < values.length; i++) {
              s ^= s << 13;
              s ^= s >>> 17;
              s ^= s << 5;
              values[i] = ((s >>> 0) / 4294967296 - 0.5) * halfWidth;
            }
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

interface Call {
  readonly kind: 'embed' | 'prefill' | 'step' | 'reorderCache';
  readonly rows: number;
  readonly start: number;
  readonly end: number;
}

/**
 * The adapter with every call timed: what generation spends in session runs (and in the
 * adapter's cache handling) against what it spends in its own TypeScript between them.
 */
class TimedAdapter implements LanguageModelAdapter<OptCache> {
  readonly kind = 'decoder-only' as const;
  readonly vocabSize: number;
  readonly maxPositions: number;
  calls: Call[] = [];

  constructor(private readonly inner: OptAdapter) {
    this.vocabSize = inner.vocabSize;
    this.maxPositions = inner.maxPositions;
  }

  private async timed<T>(kind: Call['kind'], rows: number, f: () => Promise<T>): Promise<T> {
    const start = now();
    const out = await f();
    this.calls.push({ kind, rows, start, end: now() });
    return out;
  }

  embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    return this.timed('embed', inputIds.dims[0], () => this.inner.embed(inputIds));
  }
  prefill(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>): Promise<StepOutput<OptCache>> {
    return this.timed('prefill', inputsEmbeds.dims[0], () => this.inner.prefill(inputsEmbeds, attentionMask));
  }
  step(tokenIds: Tensor<'int64'>, cache: OptCache): Promise<StepOutput<OptCache>> {
    return this.timed('step', tokenIds.dims[0], () => this.inner.step(tokenIds, cache));
  }
  reorderCache(cache: OptCache, rows: readonly number[]): Promise<OptCache> {
    return this.timed('reorderCache', rows.length, () => this.inner.reorderCache(cache, rows));
  }
  releaseCache(cache: OptCache): Promise<void> {
    return this.inner.releaseCache(cache);
  }
}

/**
 * Resident memory from /proc/self/status, and the proportional set size of file pages
 * from smaps_rollup: each session maps the weights it uses, so RSS counts a page once
 * per mapping, while the page cache holds it once (PSS divides it between its mappings).
 */
function memory(): { rss: number; anon: number; file: number; peak: number; pssFile: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const kb = (text: string, key: string) =>
    Number(new RegExp(`${key}:\\s+(\\d+)`).exec(text)?.[1] ?? Number.NaN) * 1024;
  return {
    rss: kb(status, 'VmRSS'),
    anon: kb(status, 'RssAnon'),
    file: kb(status, 'RssFile'),
    peak: kb(status, 'VmHWM'),
    pssFile: kb(rollup, 'Pss_File'),
  };
}

const GB = 1e9;
const MB = 1e6;
const fmt = (x: number, d = 2) => x.toFixed(d);
const now = () => performance.now();
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
const memLine = (m: ReturnType<typeof memory>) =>
  `${fmt(m.rss / GB)} GB (anon ${fmt(m.anon / GB)}, file-mapped ${fmt(m.file / GB)}, file PSS ${fmt(m.pssFile / GB)})`;

/** Index of the largest value of the last position's logits in row `row`. */
function lastArgmax(logits: Tensor<'float32'>, row: number): number {
  const [, t, v] = logits.dims;
  const base = (row * t + t - 1) * v;
  let best = 0;
  for (let i = 1; i < v; i++) if (logits.data[base + i] > logits.data[base + best]) best = i;
  return best;
}

/** Float32 bytes of one cache (keys + values of every layer) for `rows` x `length` tokens. */
function cacheBytes(config: OPTConfig, rows: number, length: number): number {
  return 2 * config.numHiddenLayers * rows * length * config.hiddenSize * 4;
}

/** Splits the adapter's calls of one `generate` into session time per kind and TypeScript time between calls. */
function breakdown(calls: readonly Call[], total: number) {
  const of = (kind: Call['kind']) => calls.filter((c) => c.kind === kind).map((c) => c.end - c.start);
  const adapter = sum(calls.map((c) => c.end - c.start));
  // between one adapter call's end and the next one's start, only generation's own code runs
  const gaps = calls.slice(1).map((c, i) => c.start - calls[i].end);
  return {
    prefill: of('prefill'),
    step: of('step'),
    reorder: of('reorderCache'),
    adapter,
    search: total - adapter,
    gaps,
  };
}

it(`language model of ${VARIANT} at real size: prefill, step, generate (float32, CPU)`, async () => {
  const manifest = (
    JSON.parse(readFileSync(fixtures.manifests, 'utf8')) as Record<
      string,
      { config: unknown; weights: Record<string, number[]> }
    >
  )[VARIANT];
  const blip2 = parseBlip2Config(manifest.config, `manifests.json#${VARIANT}`);
  if (blip2.textConfig.modelType !== 'opt') throw new Error(`${VARIANT} is not an OPT variant`);
  const layers = LAYERS ?? blip2.textConfig.numHiddenLayers;
  const config: OPTConfig = { ...blip2.textConfig, numHiddenLayers: layers };
  const shapes = Object.entries(manifest.weights).filter(
    ([n]) => LANGUAGE_MODEL.test(n) && Number(/\.layers\.(\d+)\./.exec(n)?.[1] ?? 0) < layers,
  );
  const count = (re: RegExp) =>
    shapes.filter(([n, s]) => re.test(n) && s.length === 2).reduce((a, [, s]) => a + s[0] * s[1], 0);
  // what one token's forward pass multiplies: every matrix of the layers, and lm_head
  const matrixParams = count(/\.layers\.\d+\./) + count(/lm_head\.weight$/);
  const stepBytes = 4 * matrixParams; // float32 bytes each step must read
  const dir = mkdtempSync(join(tmpdir(), 'blip2-bench-'));
  const log = (s: string) => console.log(s);
  const backendThreads = availableParallelism();
  try {
    if (LAYERS)
      log(`BENCH_LAYERS=${LAYERS}: a smoke run over the first ${LAYERS} layers, not the real model`);
    log(`machine: ${cpus().length} x ${cpus()[0]?.model}; load average at start ${load()}`);
    let t = now();
    const { lookup, bytes } = await writeRandomCheckpoint(join(dir, 'model.safetensors'), shapes);
    const params = shapes.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
    log(
      `${VARIANT} language model: ${(params / 1e6).toFixed(1)} M params (${(matrixParams / 1e6).toFixed(1)} M in the matrices a token passes), ` +
        `F32 file ${fmt(bytes / GB)} GB written in ${fmt((now() - t) / 1000, 1)} s`,
    );

    const memStart = memory();
    t = now();
    const graphs = buildOpt(config, lookup);
    log(
      `graph build: ${fmt(now() - t, 1)} ms (embed ${fmt(graphs.embed.bytes.length / 1e3, 1)} kB, prefill ${fmt(graphs.prefill.bytes.length / 1e3, 1)} kB, step ${fmt(graphs.step.bytes.length / 1e3, 1)} kB, stepBatched ${fmt(graphs.stepBatched.bytes.length / 1e3, 1)} kB)`,
    );
    const backend = createNodeBackend();
    t = now();
    const opt = await OptAdapter.load(config, graphs, backend);
    log(`session creation (embed, prefill, step together): ${fmt(now() - t, 1)} ms; ${backendThreads} CPUs`);
    {
      // what the adapter pays on the first step of several rows (it loads stepBatched lazily)
      t = now();
      const batched = await backend.load(graphs.stepBatched, {
        keepOnDevice: OptAdapter.cacheOutputs(config.numHiddenLayers),
      });
      log(`stepBatched session creation alone: ${fmt(now() - t, 1)} ms`);
      await batched.release();
    }
    const memSession = memory();
    log(`RSS before sessions ${memLine(memStart)}; after creation ${memLine(memSession)}`);

    // ---- a BLIP-2 prompt: 32 query embeddings, then 10 text tokens -------------------------
    const Q = blip2.numQueryTokens;
    const D = config.wordEmbedProjDim;
    let seed = 12345;
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const queryEmbeds = float32(
      [1, Q, D],
      Float32Array.from({ length: Q * D }, () => (rand() - 0.5) * 0.2),
    );
    const textIds = int64(
      [1, TEXT_TOKENS],
      Array.from({ length: TEXT_TOKENS }, () => 3 + Math.floor(rand() * (config.vocabSize - 3))),
    );
    t = now();
    const textEmbeds = await opt.embed(textIds);
    const tEmbed = now() - t;
    const prompt = prependQueryEmbeds(
      queryEmbeds,
      textEmbeds,
      int64([1, TEXT_TOKENS], new Array(TEXT_TOKENS).fill(1)),
    );
    const T = Q + TEXT_TOKENS;
    log(`embed of ${TEXT_TOKENS} text tokens: ${fmt(tEmbed, 1)} ms; prompt [1, ${T}, ${D}]`);

    // ---- prefill: the first run pages the weights in; then the median of 2 --------------
    const prefillTimes: number[] = [];
    let prefilled: StepOutput<OptCache> | undefined;
    for (let r = 0; r < 3; r++) {
      t = now();
      prefilled = await opt.prefill(prompt.inputsEmbeds, prompt.attentionMask);
      prefillTimes.push(now() - t);
    }
    if (!prefilled) throw new Error('unreachable');
    expect(prefilled.logits.data.every(Number.isFinite)).toBe(true);
    const prefillFlop = 2 * T * matrixParams + config.numHiddenLayers * 2 * 2 * T * T * config.hiddenSize;
    const tPrefill = median(prefillTimes.slice(1));
    log(
      `prefill [1, ${T}]: first ${fmt(prefillTimes[0], 0)} ms (maps the weights), then ${prefillTimes
        .slice(1)
        .map((x) => fmt(x, 0))
        .join(', ')} ms -> ${fmt(tPrefill, 0)} ms, ${fmt(prefillFlop / (tPrefill / 1000) / GB, 1)} GFLOP/s ` +
        `(${fmt(prefillFlop / GB, 1)} GFLOP), ${fmt(tPrefill / T, 1)} ms per prompt token`,
    );
    const memPrefill = memory();
    log(`RSS after prefill ${memLine(memPrefill)}`);

    // ---- step at batch 1: one warm-up (pages the step session's mapping in), then STEPS ----
    const stepTimes: number[] = [];
    let cache = prefilled.cache;
    let token = lastArgmax(prefilled.logits, 0);
    for (let r = 0; r <= STEPS; r++) {
      t = now();
      const out = await opt.step(int64([1, 1], [token]), cache);
      stepTimes.push(now() - t);
      cache = out.cache;
      token = lastArgmax(out.logits, 0);
    }
    const tStep = median(stepTimes.slice(1));
    log(
      `step, batch 1, past ${T}..${T + STEPS}: first ${fmt(stepTimes[0], 0)} ms, median of ${STEPS} ${fmt(tStep, 0)} ms ` +
        `(min ${fmt(Math.min(...stepTimes.slice(1)), 0)}, max ${fmt(Math.max(...stepTimes.slice(1)), 0)}); ` +
        `${fmt(stepBytes / GB, 2)} GB of matrices per step -> ${fmt(stepBytes / (tStep / 1000) / GB, 1)} GB/s, ` +
        `${fmt((2 * matrixParams) / (tStep / 1000) / GB, 1)} GFLOP/s; cache ${fmt(cacheBytes(config, 1, T + STEPS) / MB, 1)} MB`,
    );
    await opt.releaseCache(cache);

    // ---- generate: greedy, then LAVIS' beam recipe ---------------------------------------
    const timed = new TimedAdapter(opt);
    const runs: [string, GenerationOptions][] = [
      ['greedy', { maxNewTokens: NEW_TOKENS, eosTokenId: EOS }],
      [
        `beam ${BEAMS} (LAVIS: length penalty -1, min 1, max ${NEW_TOKENS} new)`,
        { numBeams: BEAMS, lengthPenalty: -1, minNewTokens: 1, maxNewTokens: NEW_TOKENS, eosTokenId: EOS },
      ],
    ];
    for (const [label, options] of runs) {
      timed.calls = [];
      t = now();
      const out = await generate(timed, prompt, options);
      const total = now() - t;
      // rows that ended early are padded with EOS: count up to the first one
      const firstEos = out.sequences[0].indexOf(EOS);
      const tokens = firstEos < 0 ? out.sequences[0].length : firstEos + 1;
      const b = breakdown(timed.calls, total);
      const stepRows = timed.calls.find((c) => c.kind === 'step')?.rows ?? 0;
      log(
        `generate ${label}: ${tokens} new tokens in ${fmt(total / 1000, 2)} s = ${fmt(total / tokens, 0)} ms/token ` +
          `(${fmt((total - sum(b.prefill)) / Math.max(1, b.step.length), 0)} ms per step after the prefill)`,
      );
      log(
        `  adapter ${fmt(b.adapter, 0)} ms = prefill ${fmt(sum(b.prefill), 0)} + ${b.step.length} steps at batch ${stepRows} ` +
          `${fmt(sum(b.step), 0)} (median ${fmt(median(b.step), 0)}, first ${fmt(b.step[0] ?? 0, 0)}, min ${fmt(Math.min(...b.step), 0)}, max ${fmt(Math.max(...b.step), 0)}) + ${b.reorder.length} reorderCache ${fmt(sum(b.reorder), 1)} ` +
          `(median ${fmt(b.reorder.length ? median(b.reorder) : 0, 1)}, cache up to ${fmt(cacheBytes(config, stepRows, T + NEW_TOKENS) / MB, 0)} MB); ` +
          `TypeScript search ${fmt(b.search, 1)} ms (${fmt((100 * b.search) / total, 2)}%), between calls median ${fmt(median(b.gaps), 2)} ms, max ${fmt(Math.max(...b.gaps), 2)} ms`,
      );
      log(`  TypeScript between calls (ms): ${b.gaps.map((x) => fmt(x, 1)).join(' ')}`);
      if (out.sequencesScores) log(`  best sequence score ${fmt(out.sequencesScores[0], 3)}`);
    }

    // ---- the TypeScript side alone: what a beam step does to 5 x vocab scores --------------
    {
      const v = config.vocabSize;
      const scores = Float32Array.from({ length: BEAMS * v }, () => (rand() - 0.5) * 8);
      const k = 2 * BEAMS;
      const times: number[] = [];
      const lsTimes: number[] = [];
      for (let r = 0; r < 12; r++) {
        const t0 = now();
        const flat = new Float32Array(BEAMS * v);
        for (let b = 0; b < BEAMS; b++) flat.set(logSoftmax(scores.subarray(b * v, (b + 1) * v)), b * v);
        const t1 = now();
        const best = topk(flat, k);
        const t2 = now();
        expect(best.indices.length).toBe(k);
        if (r < 2) continue; // JIT warm-up
        lsTimes.push(t1 - t0);
        times.push(t2 - t0);
      }
      log(
        `TypeScript alone (@blip2/tensor logSoftmax + topk ${k} over ${BEAMS} x ${v}): ${fmt(median(times), 2)} ms ` +
          `(logSoftmax ${fmt(median(lsTimes), 2)} ms, topk ${fmt(median(times) - median(lsTimes), 2)} ms), median of ${times.length}`,
      );
    }

    const memEnd = memory();
    log(
      `RSS after the runs ${memLine(memEnd)}; peak (VmHWM) ${fmt(memEnd.peak / GB)} GB; weights ${fmt(bytes / GB)} GB`,
    );
    // a reference for "memory-bound": what one core's memcpy moves on this machine
    {
      const src = new Float32Array(64 << 20).fill(1);
      const dst = new Float32Array(src.length);
      const times: number[] = [];
      for (let r = 0; r < 5; r++) {
        const t0 = now();
        dst.set(src);
        times.push(now() - t0);
      }
      log(
        `memcpy of ${fmt(src.byteLength / MB, 0)} MB: ${fmt((2 * src.byteLength) / (median(times) / 1000) / GB, 1)} GB/s (read + write, one thread)`,
      );
    }

    log(`load average at end ${load()} (other processes share the cores when above ~0)`);
    await opt.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
