/**
 * `blip2 bench`'s measurements: every figure of one model folder, each beside the
 * machine's limit for it (measured in the same run, ./limits.ts) and, when the peer
 * ran, what PyTorch takes for the same shapes (./peer.ts).
 *
 * Memory-bound figures (decode steps) are limited by onnxruntime's time for one row
 * through every matrix the step multiplies, with the step's own kernels (the cache read
 * at the rate those products reach); compute-bound ones (image side, prefill) by their
 * multiply-adds over onnxruntime's own single-MatMul rate at the figure's main shape.
 * End-to-end figures are limited by the sum of their parts' limits. What a language-model
 * figure multiplies and reads is counted from the graphs it ran (./costs.ts), so every
 * registered family is measured alike.
 */

import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createNodeBackend, doctor, type NodeDevice } from '@blip2/backend-node';
import type { Blip2Config } from '@blip2/configs';
import type { StepOutput } from '@blip2/generation';
import {
  parseQuantizationManifest,
  QUANTIZATION_FILE,
  type QuantizationManifest,
  type WeightLookup,
  withPackedWeights,
} from '@blip2/onnx';
import type { WeightIndex } from '@blip2/safetensors';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { type BuiltGraph, float32, int64 } from '@blip2/tensor';
import { numPatches } from '@blip2/vision-encoder';
import { parseDTypeFlag } from '../core/dtype.js';
import { Blip2ForConditionalGeneration, vqaGenerationOptions } from '../core/models.js';
import { SdkError } from '../errors.js';
import { bytesRead, type GraphCosts, graphCosts, prefillWork, recordingBackend, sumCosts } from './costs.js';
import {
  linearRate,
  matmulRate,
  median,
  memory,
  noise,
  now,
  readBandwidth,
  sessionFloor,
  stepProductsTime,
} from './limits.js';

export interface Figure {
  /** stable id (the peer's figures use the same) */
  readonly key: string;
  readonly name: string;
  readonly dtype: string;
  readonly value: number;
  readonly unit: string;
  /** the machine's floor for this figure, in `unit` */
  readonly limit: number;
  /** value / limit (1 = at the limit) */
  readonly ratio: number;
  /** how the limit was derived */
  readonly limitFrom: string;
  /** the issue's target for `ratio` (or for `value`, for the unitless 'x' figures), when it sets one: at most this */
  readonly target?: number;
  /** the target is a floor (a speed-up of at least `target`), not a ceiling */
  readonly targetAtLeast?: true;
  /** PyTorch eager on the same shapes, per its dtype, in `unit` */
  readonly peer?: Readonly<Record<string, number>>;
  /** the peer dtypes whose figure is a lower bound: a repetition ran past the budget and was stopped */
  readonly peerLowerBound?: Readonly<Record<string, true>>;
  /** the 1-minute load average when the figure was taken (the machine is shared) */
  readonly load: number;
}

/** Figures a run may skip (`--figures`), to keep a real-size run to minutes; creation, memory and disk are always taken. */
export const FIGURE_GROUPS = ['image', 'prefill', 'steps', 'beam', 'answer', 'caption'] as const;
export type FigureGroup = (typeof FIGURE_GROUPS)[number];

export interface Machine {
  readonly cpu: string;
  /** the vector-instruction flags /proc/cpuinfo lists (which kernels MLAS can pick: AVX2, AVX-512, VNNI, AMX) */
  readonly cpuFlags: readonly string[];
  readonly cores: number;
  readonly memoryGB: number;
  readonly node: string;
  readonly onnxruntime: string;
  readonly device: string;
  readonly loadAverageStart: number;
  readonly loadAverageEnd?: number;
  /** the limits measured in this run */
  readonly readBandwidthGBs: number;
  /** one row through every matrix a decode step multiplies, with its kernels (the decode limit), first measure */
  readonly stepProductsMs: number;
  /** the rate those products read the weights at */
  readonly stepProductsGBs: number;
  readonly sessionFloorMs: number;
}

export interface BenchSettings {
  readonly dir: string;
  /** `q4`, or one per module as the CLI's --dtype (`vision=q8,qformer=q8,language_model=q4`) */
  readonly dtype: string;
  /** which figures to take (default: all) */
  readonly figures?: ReadonlySet<FigureGroup>;
  /** where a plain checkpoint is quantized for a dtype other than fp32 (default: the SDK's cache) */
  readonly cacheDir?: string;
  readonly device: NodeDevice;
  /** timed repeats per figure (after a warm-up) */
  readonly repeats: number;
  /** decode positions (default 20 and 200) */
  readonly positions: readonly number[];
  readonly beams: number;
  /** images per image-side batch (default 1 and 8) */
  readonly batches: readonly number[];
  readonly captionTokens: number;
  /** an image file for the end-to-end figures */
  readonly image: string;
  readonly log: (message: string) => void;
}

/** Shapes and counts the peer needs to run the same work (what ./peer.py reads). */
export interface Workload {
  readonly promptLength: number;
  readonly positions: readonly number[];
  readonly beams: number;
  readonly batches: readonly number[];
  readonly answerTokens: number;
  readonly captionTokens: number;
  /** the figures asked (all when absent): the peer measures the same */
  readonly figures?: readonly FigureGroup[];
}

/**
 * The logical [out, in] names (as `lookup` shows them to the builder) of the weights
 * the products multiply: a packed weight by its checkpoint name, not its blocks.
 */
function productWeights(costs: GraphCosts, manifest: QuantizationManifest | undefined): string[] {
  const packedFrom = new Map(Object.entries(manifest?.weights ?? {}).map(([name, e]) => [e.data, name]));
  return costs.products.map((p) => packedFrom.get(p.weight) ?? p.weight);
}

/** The SIMD flags of the first CPU in /proc/cpuinfo (none where there is no such file). */
function vectorFlags(): string[] {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    return flags
      .trim()
      .split(/\s+/)
      .filter((f) => /^(sse4_2|avx|avx2|fma|f16c|avx512.*|avx_vnni.*|amx.*)$/.test(f));
  } catch {
    return [];
  }
}

/** Float 2-D tensors among `names`: what a ReduceSum can read to measure the bandwidth. */
function floatMatrices(weights: WeightIndex, names: readonly string[]): string[] {
  return names.filter((n) => {
    const info = weights.get(n);
    return info.shape.length === 2 && (info.dtype === 'F32' || info.dtype === 'F16');
  });
}

/** Multiply-adds x 2 of one image through the vision model, and through the Q-Former + projection. */
export function imageSideFlop(config: Blip2Config, textWidth: number): number {
  const v = config.visionConfig;
  const T = 1 + numPatches(v);
  const { hiddenSize: D, intermediateSize: I } = v;
  const perLayer = 2 * T * D * 3 * D + 2 * 2 * T * T * D + 2 * T * D * D + 2 * 2 * T * D * I;
  let flop = 2 * numPatches(v) * D * 3 * v.patchSize ** 2 + v.numHiddenLayers * perLayer;
  const q = config.qformerConfig;
  const Q = config.numQueryTokens;
  const Dq = q.hiddenSize;
  flop += 2 * Q * Dq * textWidth;
  for (let i = 0; i < q.numHiddenLayers; i++) {
    flop += 4 * 2 * Q * Dq * Dq + 2 * 2 * Q * Q * Dq + 2 * 2 * Q * Dq * q.intermediateSize;
    if (i % q.crossAttentionFrequency === 0)
      flop += 2 * 2 * Q * Dq * Dq + 2 * 2 * T * D * Dq + 2 * 2 * Q * T * Dq;
  }
  return flop;
}

const MB = 1e6;

/** Bytes per element of the float dtypes a checkpoint stores (for its size in float32). */
const FLOAT_BYTES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2 };

/** A rate at which this run read weights, bytes/s, and what read them. */
export interface ReadRate {
  readonly rate: number;
  readonly from: string;
  /** a `ReduceSum` over mapped float matrices, or one row through the step's products with its kernels */
  readonly kind: 'reduceSum' | 'stepProducts';
}

/** One dtype's run: its figures, and what the figures across dtypes (./cross.ts) need of it. */
export interface BenchRun {
  readonly machine: Machine;
  readonly figures: Figure[];
  readonly workload: Workload;
  /** bytes one batch-1 decode step reads */
  readonly stepBytes: number;
  /** float32 cache bytes a step reads per position per row */
  readonly cacheBytesPerPosition: number;
  /** every reading of a read rate in this run: the ReduceSum, each step-products limit */
  readonly readRates: readonly ReadRate[];
}

export async function runBench(settings: BenchSettings): Promise<BenchRun> {
  const { log, dtype, repeats } = settings;
  const loadStart = loadavg()[0];
  // the model's sessions report their runs: which graphs a figure ran is known, not assumed
  const recorder = recordingBackend(createNodeBackend({ device: settings.device }));
  const backend = recorder.backend;
  const weights = await openWeightsFromDir(settings.dir);
  let loaded: WeightIndex | undefined;
  const figures: Figure[] = [];
  const wanted = (group: FigureGroup) => settings.figures?.has(group) ?? true;
  const add = (f: Omit<Figure, 'ratio' | 'dtype' | 'load'>) => {
    const figure = { ...f, dtype, ratio: f.value / f.limit, load: loadavg()[0] };
    figures.push(figure);
    log(
      `${f.name}: ${f.value.toFixed(2)} ${f.unit} (limit ${f.limit.toFixed(2)}, ${figure.ratio.toFixed(2)}x)`,
    );
  };

  try {
    // ---- limits that do not depend on the model's shapes -------------------------------
    log('measuring the session floor and the read bandwidth of the mapped weights');
    const floor = await sessionFloor(backend);
    const memBefore = memory();

    // ---- session creation and memory --------------------------------------------------
    let t = now();
    const model = await Blip2ForConditionalGeneration.fromPretrained(settings.dir, {
      backend,
      // a plain checkpoint in another dtype is quantized into the cache once, then reused
      ...(dtype === 'fp32' ? {} : { dtype: parseDTypeFlag(dtype) }),
      ...(settings.cacheDir ? { cacheDir: settings.cacheDir } : {}),
      onWarning: log,
    });
    const tCreate = now() - t;
    const memCreated = memory();
    const config = model.config;
    const graphs = [...model.graphs.values()];
    const sessionCount = graphs.length;
    add({
      key: 'creation',
      name: 'session creation',
      value: tCreate,
      unit: 'ms',
      limit: floor * sessionCount,
      limitFrom: `${sessionCount} sessions x ${floor.toFixed(1)} ms (a one-node session)`,
    });
    const graphBytes = graphs.reduce((a, g) => a + g.bytes.length, 0);
    add({
      key: 'memoryCreation',
      name: 'memory added at creation',
      value: (memCreated.anon + memCreated.pssFile - memBefore.anon - memBefore.pssFile) / MB,
      unit: 'MB',
      limit: graphBytes / MB,
      limitFrom: 'the graphs protobuf bytes (weights stay mapped, not copied)',
    });

    // what the sessions read: the checkpoint itself, or its quantized copy in the cache
    const loadedDir = dirname(model.weightFiles[0].uri);
    if (loadedDir !== dirname(weights.files[0].uri)) loaded = await openWeightsFromDir(loadedDir);
    const read = loaded ?? weights;
    const diskBytes = read.files.reduce((a, f) => a + f.size, 0);
    const float32Bytes = [...weights.tensors.values()].reduce((a, info) => {
      const width = FLOAT_BYTES[info.dtype];
      return a + (width ? (info.byteLength / width) * 4 : info.byteLength);
    }, 0);
    add({
      key: 'disk',
      name: 'weights on disk',
      value: diskBytes / MB,
      unit: 'MB',
      limit: float32Bytes / MB,
      limitFrom: `the checkpoint in float32 (ratio: the fraction of it${loaded ? `; ${loadedDir}` : ''})`,
    });

    // the checkpoint's names over what the sessions read, packed weights included
    const manifestFile = join(dirname(read.files[0].uri), QUANTIZATION_FILE);
    const manifest = existsSync(manifestFile)
      ? parseQuantizationManifest(JSON.parse(readFileSync(manifestFile, 'utf8')), manifestFile)
      : undefined;
    const lookup: WeightLookup = manifest ? withPackedWeights(read, manifest) : read;

    // ---- what the language model's figures run ------------------------------------------
    const lm = model.languageModel;
    const Q = config.numQueryTokens;
    const promptLength = Q + 10;
    // the language model's width: what the projection writes (its [out, in] weight)
    const D = lookup.get('language_projection.weight').shape[0];
    const embeds = (rows: number, length: number) =>
      float32(
        [rows, length, D],
        noise(rows * length * D).map((x) => x * 0.2),
      );
    const ones = (rows: number, length: number) => int64([rows, length], new Array(rows * length).fill(1));
    const token = (rows: number) =>
      int64(
        [rows, 1],
        Array.from({ length: rows }, (_, i) => 3 + i),
      );
    // one short prefill and one step, to see which graphs each runs: their products and
    // bytes are the figures' models (./costs.ts), whatever the family
    let probeCache: unknown;
    const probeLength = lm.kind === 'decoder-only' ? 2 : promptLength;
    const prefillGraphs = await recorder.graphsRunBy(async () => {
      probeCache = (await lm.prefill(embeds(1, probeLength), ones(1, probeLength))).cache;
    });
    const stepGraphs = await recorder.graphsRunBy(async () => {
      await lm.releaseCache?.((await lm.step(token(1), probeCache)).cache);
    });
    await lm.releaseCache?.(probeCache);
    const stepCost = sumCosts(stepGraphs.map(graphCosts));
    const stepBytes = bytesRead(stepCost, 1);
    const products = productWeights(stepCost, manifest);
    const graphNames = (gs: readonly BuiltGraph[]) => gs.map((g) => g.name).join(' + ');
    add({
      key: 'stepBytes',
      name: 'bytes read per decode step, batch 1',
      value: stepBytes / MB,
      unit: 'MB',
      limit: (stepCost.wholeFloat32Bytes + stepCost.gatheredRowBytes) / MB,
      limitFrom: `the same tensors in float32 (ratio: the fraction of it); ${graphNames(stepGraphs)}: ${products.length} products, a row of each gathered table`,
    });
    /** float32 keys and values the step attends over: `rows` rows of `length` positions */
    const cacheBytes = (rows: number, length: number) => stepCost.cacheBytesPerPosition * rows * length;

    // a quantized checkpoint's step reads packed weights; its float tables show the same bandwidth
    const floats = floatMatrices(
      read,
      products.filter((n) => read.has(n)),
    );
    const bandwidthNames = floats.length ? floats : floatMatrices(read, [...read.tensors.keys()]);
    const firstBandwidth = await readBandwidth(backend, read, bandwidthNames);
    const bandwidths: ReadRate[] = [
      {
        rate: firstBandwidth,
        from: `${dtype}: ReduceSum over ${bandwidthNames.length} mapped float matrices`,
        kind: 'reduceSum',
      },
    ];
    // the decode limit: one row through the step's matrices with the step's kernels,
    // measured again before each decode figure: on a shared machine the load moves within a run
    let productsMs = 0;
    let productsRate = 0;
    const measureProducts = async () => {
      productsMs = await stepProductsTime(backend, lookup, products);
      productsRate = stepBytes / (productsMs / 1000);
      bandwidths.push({
        rate: productsRate,
        from: `${dtype}: one row through the step's ${products.length} matrices with its kernels`,
        kind: 'stepProducts',
      });
    };
    await measureProducts();
    const firstProducts = { ms: productsMs, rate: productsRate };
    log(
      `read bandwidth (ReduceSum): ${(firstBandwidth / 1e9).toFixed(1)} GB/s; one row through the step's ${products.length} matrices: ${productsMs.toFixed(0)} ms for ${(stepBytes / 1e9).toFixed(2)} GB (${(productsRate / 1e9).toFixed(1)} GB/s)`,
    );

    // ---- image side -------------------------------------------------------------------
    const S = config.visionConfig.imageSize;
    const imageFlop = imageSideFlop(config, D);
    const T = 1 + numPatches(config.visionConfig);
    const imageLimits: Record<number, number> = {};
    // the rate of one product in the dtype the model runs: its own MLP weight, as stored
    const visionFc1 = 'vision_model.encoder.layers.0.mlp.fc1.weight';
    const rateOf = (name: string, rows: number, k: number, n: number) =>
      lookup.has(name) ? linearRate(backend, lookup, name, rows) : matmulRate(backend, rows, k, n);
    for (const batch of settings.batches) {
      const rate = await rateOf(
        visionFc1,
        batch * T,
        config.visionConfig.hiddenSize,
        config.visionConfig.intermediateSize,
      );
      const pixels = float32([batch, 3, S, S], noise(batch * 3 * S * S));
      imageLimits[batch] = (imageFlop / rate) * 1000;
      if (!wanted('image')) continue;
      const times: number[] = [];
      // a large batch is long and its rate steady: one run; batch 1 gets a warm-up and repeats
      const runs = batch === 1 ? repeats + 1 : 1;
      for (let r = 0; r < runs; r++) {
        log(`image side, batch ${batch}: run ${r + 1}/${runs}`);
        t = now();
        await model.getLanguageModelInputs(pixels);
        if (batch === 1 && r === 0) continue;
        times.push(now() - t);
      }
      add({
        key: `image${batch}`,
        name: `image side per image, batch ${batch}`,
        value: median(times) / batch,
        unit: 'ms',
        limit: imageLimits[batch],
        limitFrom: `${(imageFlop / 1e9).toFixed(1)} GFLOP at ${(rate / 1e9).toFixed(0)} GFLOP/s (one linear [${batch * T}, ${config.visionConfig.hiddenSize}] x [${config.visionConfig.hiddenSize}, ${config.visionConfig.intermediateSize}] over ${visionFc1} as stored)`,
        target: 1 / 0.7,
      });
    }

    // ---- language model: prefill, steps at chosen positions, beam steps ----------------
    const prefill = prefillWork(
      prefillGraphs,
      stepCost.cacheBytesPerPosition,
      promptLength,
      config.textConfig.vocabSize,
    );
    const { flop: prefillFlop, main } = prefill;
    const mainName = productWeights({ ...stepCost, products: [main] }, manifest)[0];
    const prefillRate = await rateOf(mainName, promptLength, main.k, main.n);
    const prefillLimit = (prefillFlop / prefillRate) * 1000;

    let prefilled: StepOutput<unknown> | undefined;
    if (lm.kind === 'decoder-only' && wanted('prefill')) {
      const times: number[] = [];
      for (let r = 0; r <= repeats; r++) {
        log(`prefill [1, ${promptLength}]: run ${r + 1}/${repeats + 1}`);
        if (prefilled) await lm.releaseCache?.(prefilled.cache);
        t = now();
        prefilled = await lm.prefill(embeds(1, promptLength), ones(1, promptLength));
        if (r > 0) times.push(now() - t);
      }
      add({
        key: 'prefill',
        name: `prefill, ${promptLength} positions`,
        value: median(times),
        unit: 'ms',
        limit: prefillLimit,
        limitFrom: `${(prefillFlop / 1e9).toFixed(1)} GFLOP (${graphNames(prefillGraphs)}: ${prefill.products} products, the LM head at ${prefill.headRows === 1 ? 'the last position only' : 'every position'}) at ${(prefillRate / 1e9).toFixed(0)} GFLOP/s (one linear [${promptLength}, ${main.k}] x [${main.k}, ${main.n}] over ${mainName} as stored)`,
        target: 1 / 0.7,
      });
    }
    if (prefilled) await lm.releaseCache?.(prefilled.cache);

    // the products at batch 1, and the cache read at the rate they read the weights
    const stepLimit = (rows: number, position: number) =>
      productsMs + (cacheBytes(rows, position) / productsRate) * 1000;
    const productsFrom = () =>
      `one row through the step's ${products.length} matrices (${(stepBytes / 1e9).toFixed(2)} GB) with its kernels: ${productsMs.toFixed(0)} ms, ${(productsRate / 1e9).toFixed(1)} GB/s`;
    /** ms per step at `position` with `rows` rows (beam search: the cache reordered after each step, as generation does) */
    const stepAt = async (rows: number, position: number): Promise<number> => {
      let cache: unknown;
      if (lm.kind === 'decoder-only') {
        cache = (await lm.prefill(embeds(rows, position), ones(rows, position))).cache;
      } else {
        cache = (await lm.prefill(embeds(rows, promptLength), ones(rows, promptLength))).cache;
        for (let p = 1; p < position; p++) {
          const next = (await lm.step(token(rows), cache)).cache;
          await lm.releaseCache?.(cache);
          cache = next;
        }
      }
      const order = Array.from({ length: rows }, (_, i) => Math.max(0, i - 1));
      // as beam search does before its first step (it expands the prompt to the beams): the
      // warm-up step below then is the first after a reorder, and loads what such steps run
      if (rows > 1) cache = await lm.reorderCache(cache, order);
      const times: number[] = [];
      for (let r = 0; r <= repeats; r++) {
        t = now();
        let next = (await lm.step(token(rows), cache)).cache;
        if (rows > 1) next = await lm.reorderCache(next, order);
        if (r > 0) times.push(now() - t);
        await lm.releaseCache?.(cache);
        cache = next;
      }
      await lm.releaseCache?.(cache);
      return median(times);
    };

    const greedyAt: Record<number, number> = {};
    for (const position of wanted('steps') ? settings.positions : []) {
      log(`decode step, batch 1, position ${position}`);
      await measureProducts();
      greedyAt[position] = await stepAt(1, position);
      add({
        key: `step${position}`,
        name: `decode step, batch 1, position ${position}`,
        value: greedyAt[position],
        unit: 'ms',
        limit: stepLimit(1, position),
        limitFrom: `${productsFrom()}; + ${(cacheBytes(1, position) / MB).toFixed(0)} MB of cache at that rate`,
        target: 1.15,
      });
    }
    const [first, last] = [settings.positions[0], settings.positions[settings.positions.length - 1]];
    if (wanted('steps') && last !== first) {
      add({
        key: 'positionRatio',
        name: `decode step, position ${last} / position ${first}`,
        value: greedyAt[last] / greedyAt[first],
        unit: 'x',
        limit: stepLimit(1, last) / stepLimit(1, first),
        limitFrom: 'the ratio of the two steps limits (the cache grows, the weights do not)',
        target: 1.3,
      });
    }
    if (wanted('beam')) {
      log(`${settings.beams}-beam step at position ${promptLength}, and the greedy step there`);
      await measureProducts();
      // the same products at the beams' rows, with the kernels a step of that many rows runs
      const beamProductsMs = await stepProductsTime(backend, lookup, products, settings.beams);
      const beamLimit = beamProductsMs + (cacheBytes(settings.beams, promptLength) / productsRate) * 1000;
      const greedyPrompt = await stepAt(1, promptLength);
      const beamStep = await stepAt(settings.beams, promptLength);
      add({
        key: 'beam',
        name: `${settings.beams}-beam step (step + cache reorder), position ${promptLength}`,
        value: beamStep,
        unit: 'ms',
        limit: beamLimit,
        limitFrom: `${settings.beams} rows through the step's ${products.length} matrices with its kernels for ${settings.beams} rows: ${beamProductsMs.toFixed(0)} ms (${productsMs.toFixed(0)} ms for one row); + ${settings.beams} rows of cache at ${(productsRate / 1e9).toFixed(1)} GB/s`,
      });
      add({
        key: 'beamRatio',
        name: `${settings.beams}-beam step / greedy step, position ${promptLength}`,
        value: beamStep / greedyPrompt,
        unit: 'x',
        limit: beamLimit / stepLimit(1, promptLength),
        limitFrom: `the ratio of their limits: what onnxruntime's products cost at ${settings.beams} rows beside one`,
        target: 1.3,
      });
    }

    // ---- end to end: what a user runs ---------------------------------------------------
    const processor = model.processor;
    const question = 'what is in the picture?';
    const endToEnd = async (label: string, run: () => Promise<{ sequences: number[][] }>) => {
      const times: number[] = [];
      let tokens = 0;
      for (let r = 0; r < Math.max(1, repeats - 1); r++) {
        log(`${label}: run ${r + 1}`);
        t = now();
        const out = await run();
        times.push(now() - t);
        tokens = out.sequences[0].length;
      }
      return { ms: median(times), tokens };
    };
    // LAVIS generates 1 to 10 tokens; the peer composes its answer from this count
    let answerNew = 1;
    if (wanted('answer')) {
      const answer = await endToEnd('answer (LAVIS recipe)', async () => {
        const { pixelValues } = await processor.process({ images: [settings.image] });
        const vqa = model.vqaSettings('paper');
        const text = processor.encodeText([vqa.prompt.replace('{}', question)]);
        if (!pixelValues) throw new SdkError('E_IMAGE', `${settings.image}: no image`);
        return model.generate({ pixelValues, ...text }, vqaGenerationOptions(vqa));
      });
      // decoder-only sequences hold the new tokens; encoder-decoder ones start with the decoder start token
      answerNew = answer.tokens - (lm.kind === 'decoder-only' ? 0 : 1);
      add({
        key: 'answer',
        name: `answer, LAVIS recipe (${settings.beams} beams, ${answerNew} new tokens), end to end`,
        value: answer.ms,
        unit: 'ms',
        limit:
          imageLimits[1] +
          prefillLimit +
          Math.max(0, answerNew - 1) * stepLimit(settings.beams, promptLength),
        limitFrom: 'image side + one prefill (beams share it) + the beam steps, at their limits',
      });
    }
    if (wanted('caption')) {
      const caption = await endToEnd(`caption (${settings.captionTokens} tokens, greedy)`, async () => {
        const { pixelValues } = await processor.process({ images: [settings.image] });
        if (!pixelValues) throw new SdkError('E_IMAGE', `${settings.image}: no image`);
        return model.generate(
          { pixelValues },
          { maxNewTokens: settings.captionTokens, minNewTokens: settings.captionTokens, numBeams: 1 },
        );
      });
      add({
        key: 'caption',
        name: `caption, ${settings.captionTokens} tokens greedy, end to end`,
        value: caption.ms,
        unit: 'ms',
        limit:
          imageLimits[1] +
          prefillLimit +
          (settings.captionTokens - 1) * stepLimit(1, Q + settings.captionTokens),
        limitFrom: 'image side + prefill + the steps, at their limits',
      });
    }

    const memEnd = memory();
    add({
      key: 'memoryEnd',
      name: 'memory after the runs (anonymous + file pages proportional share)',
      value: (memEnd.anon + memEnd.pssFile) / MB,
      unit: 'MB',
      limit: diskBytes / MB,
      limitFrom: 'the weight files, each page in memory once',
    });
    await model.dispose();

    const report = doctor();
    const machine: Machine = {
      cpu: cpus()[0]?.model ?? 'unknown',
      cpuFlags: vectorFlags(),
      cores: cpus().length,
      memoryGB: Math.round(totalmem() / 1e9),
      node: report.node,
      onnxruntime: report.onnxruntime,
      device: backend.name,
      loadAverageStart: loadStart,
      loadAverageEnd: loadavg()[0],
      readBandwidthGBs: firstBandwidth / 1e9,
      stepProductsMs: firstProducts.ms,
      stepProductsGBs: firstProducts.rate / 1e9,
      sessionFloorMs: floor,
    };
    return {
      machine,
      figures,
      stepBytes,
      cacheBytesPerPosition: stepCost.cacheBytesPerPosition,
      readRates: bandwidths,
      workload: {
        promptLength,
        positions: settings.positions,
        beams: settings.beams,
        batches: settings.batches,
        answerTokens: answerNew,
        captionTokens: settings.captionTokens,
        ...(settings.figures ? { figures: [...settings.figures] } : {}),
      },
    };
  } finally {
    await loaded?.close();
    await weights.close();
  }
}
