/**
 * Captioning beside VQA: caption every image of a captions file and score the captions against
 * the true ones, so that a change that breaks captioning shows up in numbers.
 *
 * - exact match: the generated caption equals a true caption character for character (after
 *   trimming), the measure of "captions exactly right" the shapes captioner was made with;
 * - token F1, SQuAD-style bag of tokens: both captions are lowercased, every character that is
 *   not a letter or a digit becomes a space, and they are split on whitespace (no article removal:
 *   "a" counts objects here). With `c` the tokens the two multisets share (min of the counts),
 *   precision `c / |generated|`, recall `c / |true|`, F1 their harmonic mean (0 when `c` is 0;
 *   1 when both are empty). An image with several true captions takes the best one; the run
 *   reports the mean over images, x100.
 *
 * Runs share `vqa-eval run`'s machinery: the same batches, progress bar, progress log (`--resume`
 * after an interruption, each image logged as one entry whose id is its image id) and atomic
 * results file (`[{image_id, caption}]`, the COCO captioning results layout).
 */
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { GenerationSettings, VqaAnswerer } from './answerer.js';
import { compileImagePattern, DEFAULT_IMAGE_PATTERN, readJson } from './data.js';
import { VqaEvalError } from './errors.js';
import { claimOutputs, writeFileAtomic } from './fs-util.js';
import { type BarStream, ProgressBar } from './progress-bar.js';
import { type CheckedSettings, ProgressLog } from './progress-log.js';
import { progressPathFor } from './run.js';
import { chunk } from './select.js';

/** Captioning's decoding defaults: greedy, up to 20 new tokens (transformers' default length). */
export const CAPTION_GENERATION: Readonly<GenerationSettings> = Object.freeze({
  numBeams: 1,
  maxNewTokens: 20,
  minNewTokens: 0,
  lengthPenalty: 1,
});

export interface CaptionResult {
  image_id: number;
  caption: string;
}

/**
 * The true captions, by image id in file order: `[{image_id, caption}]` (the shapes val layout) or
 * COCO's `{annotations: [{image_id, caption}]}`, where an image may have several.
 */
export function loadCaptions(path: string): Map<number, string[]> {
  const root = readJson(path);
  const list = Array.isArray(root) ? root : (root as { annotations?: unknown } | null)?.annotations;
  if (!Array.isArray(list)) {
    throw new VqaEvalError(
      'E_FIELD',
      `${path}: must be an array of {image_id, caption} or an object with "annotations" (COCO captions)`,
    );
  }
  const out = new Map<number, string[]>();
  list.forEach((entry, i) => {
    const e = (entry ?? {}) as { image_id?: unknown; caption?: unknown };
    if (typeof e.image_id !== 'number' || !Number.isSafeInteger(e.image_id))
      throw new VqaEvalError(
        'E_FIELD',
        `${path}: [${i}].image_id must be an integer (got ${JSON.stringify(e.image_id)})`,
      );
    if (typeof e.caption !== 'string')
      throw new VqaEvalError(
        'E_FIELD',
        `${path}: [${i}].caption must be a string (got ${JSON.stringify(e.caption)})`,
      );
    const refs = out.get(e.image_id) ?? [];
    refs.push(e.caption);
    out.set(e.image_id, refs);
  });
  return out;
}

/** The F1 tokens: lowercased, non-alphanumerics as spaces, split on whitespace. */
export function captionTokens(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .split(' ')
    .filter((t) => t !== '');
}

/** Bag-of-tokens F1 of one generated caption against one true caption, in [0, 1]. */
export function tokenF1(generated: string, truth: string): number {
  const g = captionTokens(generated);
  const t = captionTokens(truth);
  if (g.length === 0 || t.length === 0) return g.length === t.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const tok of t) counts.set(tok, (counts.get(tok) ?? 0) + 1);
  let common = 0;
  for (const tok of g) {
    const n = counts.get(tok) ?? 0;
    if (n > 0) {
      common++;
      counts.set(tok, n - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / g.length;
  const recall = common / t.length;
  return (2 * precision * recall) / (precision + recall);
}

export interface CaptionScores {
  images: number;
  /** images whose caption equals a true one exactly */
  exact: number;
  /** exact / images x100 */
  exactMatch: number;
  /** mean best token F1 x100 */
  f1: number;
}

export function scoreCaptions(
  results: readonly CaptionResult[],
  truth: ReadonlyMap<number, string[]>,
): CaptionScores {
  let exact = 0;
  let f1 = 0;
  for (const r of results) {
    const refs = truth.get(r.image_id);
    if (!refs) throw new VqaEvalError('E_RESULTS_MISMATCH', `image_id ${r.image_id} has no true caption`);
    const caption = r.caption.trim();
    if (refs.some((t) => t.trim() === caption)) exact++;
    f1 += Math.max(...refs.map((t) => tokenF1(caption, t)));
  }
  const n = results.length;
  return { images: n, exact, exactMatch: n ? (100 * exact) / n : 0, f1: n ? (100 * f1) / n : 0 };
}

export interface CaptionRunOptions {
  /** The model, or a function that loads it (called after the data and images check out; then closed here). */
  answerer: VqaAnswerer | (() => Promise<VqaAnswerer>);
  captionsPath: string;
  imagesDir: string;
  imagePattern?: string;
  /** Text the captions continue; default none (the model captions from the image alone). */
  prompt?: string;
  generation?: Partial<GenerationSettings>;
  batchSize?: number;
  limit?: number;
  /** Results path; without it nothing is written. */
  out?: string;
  resume?: boolean;
  signal?: AbortSignal;
  progressStream?: BarStream;
}

export interface CaptionRunOutcome {
  results: CaptionResult[];
  scores: CaptionScores;
  model: string;
  backend: string;
  settings: CheckedSettings & { batchSize: number };
  timings: {
    loadSeconds: number;
    loopSeconds: number;
    captioned: number;
    imagesPerSecond: number;
    resumed: number;
  };
  files?: { results: string; report: string };
}

export async function runCaptions(opts: CaptionRunOptions): Promise<CaptionRunOutcome> {
  // as `run`: the outputs are claimed first, so a run that cannot write them, or that would
  // share them with a live run, stops before reading data or loading a model
  const out = opts.out === undefined ? undefined : resolve(opts.out);
  const lock = out
    ? claimOutputs(
        out,
        [progressPathFor(out), reportPathFor(out)],
        `vqa-eval captions${opts.resume ? ' --resume' : ''}`,
      )
    : undefined;
  try {
    return await runClaimed(opts, out);
  } finally {
    lock?.release();
  }
}

const reportPathFor = (out: string) => `${out}.report.json`;

async function runClaimed(opts: CaptionRunOptions, out: string | undefined): Promise<CaptionRunOutcome> {
  const batchSize = opts.batchSize ?? 16;
  const generation: GenerationSettings = { ...CAPTION_GENERATION, ...opts.generation };
  const imagePattern = opts.imagePattern ?? DEFAULT_IMAGE_PATTERN;
  const truth = loadCaptions(opts.captionsPath);
  const ids = [...truth.keys()].slice(0, opts.limit);
  const nameOf = compileImagePattern(imagePattern);
  const paths = new Map(
    ids.map((id) => [id, join(opts.imagesDir, nameOf({ image_id: id, question_id: id, question: '' }))]),
  );
  const missing = [...paths.values()].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new VqaEvalError(
      'E_IMAGE_MISSING',
      `${missing.length} image(s) of ${opts.captionsPath} not found (--images ${opts.imagesDir}, --image-pattern ${imagePattern}): ` +
        missing.slice(0, 10).join('; ') +
        (missing.length > 10 ? '; ...' : ''),
    );
  }

  const loadStart = performance.now();
  const owned = typeof opts.answerer === 'function';
  const answerer = typeof opts.answerer === 'function' ? await opts.answerer() : opts.answerer;
  const loadSeconds = owned ? (performance.now() - loadStart) / 1000 : 0;
  try {
    if (typeof answerer.caption !== 'function') {
      throw new VqaEvalError(
        'E_ANSWERER',
        `answerer "${answerer.model}" has no caption(imagePaths, settings)`,
      );
    }
    const settings: CheckedSettings = {
      model: answerer.model,
      prompt: opts.prompt ?? '',
      questionPreprocess: 'none',
      ...generation,
      imagePattern,
      limit: opts.limit ?? null,
      shard: null,
      questions: {
        count: ids.length,
        sha256: createHash('sha256').update(ids.join('\n')).digest('hex'),
      },
    };
    const log = out
      ? ProgressLog.open(
          progressPathFor(out),
          settings,
          { task: 'captions', backend: answerer.backend, batchSize, startedAt: new Date().toISOString() },
          opts.resume === true,
        )
      : undefined;
    const captions = new Map<number, string>(log?.previous ?? []);
    const resumed = captions.size;
    const bar = new ProgressBar(ids.length, resumed, opts.progressStream);
    const loopStart = performance.now();
    try {
      for (const batch of chunk(
        ids.filter((id) => !captions.has(id)),
        batchSize,
      )) {
        if (opts.signal?.aborted) {
          throw new VqaEvalError(
            'E_ABORTED',
            `interrupted after ${captions.size} of ${ids.length} images` +
              (log
                ? `; the captions so far are in ${log.path}: run the same command with --resume to continue`
                : ''),
          );
        }
        const texts = await answerer.caption(
          batch.map((id) => paths.get(id)!),
          generation,
          opts.prompt,
        );
        if (
          !Array.isArray(texts) ||
          texts.length !== batch.length ||
          texts.some((t) => typeof t !== 'string')
        ) {
          throw new VqaEvalError(
            'E_ANSWERER',
            `answerer "${answerer.model}" returned ${Array.isArray(texts) ? texts.length : typeof texts} captions for ${batch.length} images`,
          );
        }
        // logged in the VQA results' shape: the "question" of a captions run is its image
        log?.append(batch.map((id, i) => ({ question_id: id, answer: texts[i]! })));
        for (const [i, id] of batch.entries()) captions.set(id, texts[i]!);
        bar.advance(batch.length);
      }
    } finally {
      bar.finish();
      log?.close();
    }
    const loopSeconds = (performance.now() - loopStart) / 1000;
    const results = ids.map((id) => ({ image_id: id, caption: captions.get(id)! }));
    const scores = scoreCaptions(results, truth);
    const captioned = ids.length - resumed;
    const outcome: CaptionRunOutcome = {
      results,
      scores,
      model: answerer.model,
      backend: answerer.backend,
      settings: { ...settings, batchSize },
      timings: {
        loadSeconds,
        loopSeconds,
        captioned,
        imagesPerSecond: loopSeconds > 0 ? captioned / loopSeconds : 0,
        resumed,
      },
    };
    if (out) {
      const report = reportPathFor(out);
      const lines = results.map((r) => JSON.stringify(r));
      writeFileAtomic(out, lines.length ? `[\n${lines.join(',\n')}\n]\n` : '[]\n');
      const examples = results
        .filter((r) => !truth.get(r.image_id)!.includes(r.caption.trim()))
        .slice(0, 10)
        .map((r) => ({ ...r, truth: truth.get(r.image_id) }));
      const { results: _, ...summary } = outcome;
      writeFileAtomic(report, `${JSON.stringify({ ...summary, wrongExamples: examples }, null, 2)}\n`);
      if (existsSync(progressPathFor(out))) rmSync(progressPathFor(out));
      outcome.files = { results: out, report };
    }
    return outcome;
  } finally {
    if (owned) await answerer.close();
  }
}
