/**
 * The `vqa-eval` command line: `run`, `score`, `merge`. `main` returns the exit code and writes
 * only through `io`, so tests drive it in-process; cli.ts is the executable wrapper.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { VQA_PROTOCOLS } from '@blip2/generation';
import { readTextArgument } from '@blip2/sdk/argv';
import { Blip2Error } from '@blip2/tensor';
import type { GenerationSettings, VqaAnswerer } from './answerer.js';
import { runCaptions } from './captions.js';
import {
  annotationsFor,
  DEFAULT_IMAGE_PATTERN,
  loadAnnotations,
  loadQuestions,
  loadResults,
} from './data.js';
import { VqaEvalError } from './errors.js';
import { type LoadAnswererOptions, loadAnswerer } from './load-answerer.js';
import { mergeResults } from './merge.js';
import { PY_SUM_MODES } from './python.js';
import { DEFAULT_BATCH_SIZE, runEvaluation } from './run.js';
import { parseShard, shardFromEnvironment } from './select.js';
import { scoreVqa, type VqaAccuracy } from './vqa-eval.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Where the progress bar draws (only when it is a TTY). */
  progressStream?: { isTTY?: boolean; write(text: string): unknown };
  /** Environment `--shard auto` reads (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Aborts a run; cli.ts wires it to SIGINT/SIGTERM. */
  signal?: AbortSignal;
}

const USAGE = `Usage:
  vqa-eval run --model M --questions Q.json [--annotations A.json] --images DIR
               [--image-pattern 'COCO_val2014_{image_id:012d}.jpg'] [--protocol lavis|paper]
               [--prompt 'Question: {} Short answer:' | --prompt-file F] [--question-preprocess lavis|none]
               [--num-beams N] [--length-penalty X] [--eos-token-ids ID,ID] [--max-new-tokens N]
               [--min-new-tokens N] [--padding-side left|right] [--max-prompt-tokens N|none]
               [--max-input-tokens N (T5: longest encoder input, default 2048)]
               [--batch-size ${DEFAULT_BATCH_SIZE}] [--limit N]
               [--shard K/N|auto] [--out results.json] [--resume] [--backend B] [--device D] [--json]
    --shard auto: K/N from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, JOB_COMPLETIONS) or a
    Slurm array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN).
    --protocol: the settings' defaults, per language-model family: lavis (default; LAVIS's
    code) or paper (the BLIP-2 paper's text); each flag after it overrides one setting.
    Without --annotations (test-dev) the results are written, not scored.
  vqa-eval captions --model M --captions C.json --images DIR [--image-pattern P] [--prompt TEXT | --prompt-file F]
               [--num-beams 1] [--max-new-tokens 20] [--min-new-tokens 0] [--length-penalty 1]
               [--batch-size ${DEFAULT_BATCH_SIZE}] [--limit N] [--out caption_results.json] [--resume]
               [--backend B] [--device D] [--json]
      caption every image of C.json ([{image_id, caption}] or COCO {annotations}): exact match and token F1
  vqa-eval score --questions Q.json --annotations A.json --results R.json [--json]
               [--sum left-to-right|compensated]
    --sum: how Python's sum adds floats; left-to-right (default) is Python 2 / CPython <= 3.11,
    which run the official scorer and LAVIS; compensated is CPython 3.12+.
  vqa-eval merge --out results.json [--questions Q.json [--limit N]] SHARD.json...

Testing hook: run --answerer-module PATH loads a module exporting
  createAnswerer({ model, backend, device }): Promise<VqaAnswerer>
instead of the SDK (deterministic answerers for tests of the mechanics; never a model accuracy).
`;

/** A module that `--answerer-module` can load. */
export interface AnswererModule {
  createAnswerer(opts: LoadAnswererOptions): Promise<VqaAnswerer>;
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest, io);
      case 'captions':
        return await captionsCommand(rest, io);
      case 'score':
        return scoreCommand(rest, io);
      case 'merge':
        return mergeCommand(rest, io);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.stdout(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new VqaEvalError(
          'E_ARGS',
          `unknown command "${command}" (expected run, captions, score or merge)`,
        );
    }
  } catch (e) {
    if (e instanceof VqaEvalError) {
      io.stderr(`vqa-eval: ${e.code}: ${e.message}\n`);
      if (e.code === 'E_ARGS') io.stderr(`\n${USAGE}`);
      return e.code === 'E_ABORTED' ? 130 : e.code === 'E_ARGS' ? 2 : 1;
    }
    // the SDK's and the other packages' typed errors (a broken checkpoint): the same one line
    if (Blip2Error.isInstance(e)) {
      io.stderr(`vqa-eval: ${e.code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

const NUMERIC = new Set([
  '--num-beams',
  '--max-new-tokens',
  '--min-new-tokens',
  '--max-prompt-tokens',
  '--max-input-tokens',
  '--length-penalty',
  '--batch-size',
  '--limit',
]);

function parse<const O extends NonNullable<ParseArgsConfig['options']>>(
  args: readonly string[],
  options: O,
  positionals = false,
) {
  // parseArgs reads "-1" after an option as another option; glue negative numbers to their flag.
  const glued: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    if (NUMERIC.has(a) && next !== undefined && /^-\d/.test(next)) {
      glued.push(`${a}=${next}`);
      i++;
    } else glued.push(a);
  }
  try {
    return parseArgs({ args: glued, options, allowPositionals: positionals, strict: true });
  } catch (e) {
    throw new VqaEvalError('E_ARGS', (e as Error).message, { cause: e });
  }
}

/**
 * `--prompt P` or `--prompt-file F` ('-': standard input; one trailing newline dropped), so a
 * long prompt need not go on the command line.
 */
function promptOf(values: Record<string, unknown>): { prompt?: string } {
  const file = values['prompt-file'];
  if (typeof file !== 'string') return typeof values.prompt === 'string' ? { prompt: values.prompt } : {};
  if (values.prompt !== undefined)
    throw new VqaEvalError('E_ARGS', 'give --prompt or --prompt-file, not both');
  const read = readTextArgument(file, 'prompt-file');
  if ('problem' in read) throw new VqaEvalError('E_ARGS', read.problem);
  return { prompt: read.text.replace(/\r?\n$/, '') };
}

function required(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new VqaEvalError('E_ARGS', `--${name} is required`);
  return v;
}

function number(values: Record<string, unknown>, name: string, opts: { integer: boolean; min?: number }) {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (
    typeof v !== 'string' ||
    v.trim() === '' ||
    !Number.isFinite(n) ||
    (opts.integer && !Number.isInteger(n))
  ) {
    throw new VqaEvalError(
      'E_ARGS',
      `--${name} "${String(v)}": expected ${opts.integer ? 'an integer' : 'a number'}`,
    );
  }
  if (opts.min !== undefined && n < opts.min)
    throw new VqaEvalError('E_ARGS', `--${name} ${n}: must be >= ${opts.min}`);
  return n;
}

/** The options `run` and `captions` share: the model, the images, decoding, batching, output. */
const MODEL_RUN_OPTIONS = {
  model: { type: 'string' },
  images: { type: 'string' },
  'image-pattern': { type: 'string' },
  prompt: { type: 'string' },
  'prompt-file': { type: 'string' },
  'num-beams': { type: 'string' },
  'max-new-tokens': { type: 'string' },
  'min-new-tokens': { type: 'string' },
  'length-penalty': { type: 'string' },
  'batch-size': { type: 'string' },
  limit: { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  backend: { type: 'string' },
  device: { type: 'string' },
  json: { type: 'boolean' },
  'answerer-module': { type: 'string' },
} as const;

/** The answerer `run` and `captions` load: `--answerer-module`'s, or the SDK's on `--backend`/`--device`. */
function answererOf(values: Record<string, unknown>, model: string): () => Promise<VqaAnswerer> {
  const loadOpts: LoadAnswererOptions = { model };
  if (typeof values.backend === 'string') loadOpts.backend = values.backend;
  if (typeof values.device === 'string') loadOpts.device = values.device;
  const modulePath = values['answerer-module'];
  return () =>
    typeof modulePath === 'string' ? loadAnswererModule(modulePath, loadOpts) : loadAnswerer(loadOpts);
}

async function runCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parse(args, {
    ...MODEL_RUN_OPTIONS,
    questions: { type: 'string' },
    annotations: { type: 'string' },
    protocol: { type: 'string' },
    'question-preprocess': { type: 'string' },
    'eos-token-ids': { type: 'string' },
    'padding-side': { type: 'string' },
    'max-prompt-tokens': { type: 'string' },
    'max-input-tokens': { type: 'string' },
    shard: { type: 'string' },
  });
  const model = required(values, 'model');
  const protocol = oneOf(values, 'protocol', VQA_PROTOCOLS) ?? 'lavis';
  const preprocess = oneOf(values, 'question-preprocess', ['lavis', 'none'] as const);
  const generation = generationFlags(values);
  const shard =
    values.shard === undefined
      ? undefined
      : values.shard === 'auto'
        ? shardFromEnvironment(io.env ?? process.env)
        : parseShard(values.shard);
  const out =
    values.out ?? (shard ? `vqa_results.shard-${shard.index}-of-${shard.count}.json` : 'vqa_results.json');

  const outcome = await runEvaluation({
    answerer: answererOf(values, model),
    questionsPath: required(values, 'questions'),
    ...(values.annotations !== undefined ? { annotationsPath: required(values, 'annotations') } : {}),
    imagesDir: required(values, 'images'),
    imagePattern: values['image-pattern'] ?? DEFAULT_IMAGE_PATTERN,
    protocol,
    ...promptOf(values),
    ...(preprocess !== undefined ? { questionPreprocess: preprocess } : {}),
    generation,
    batchSize: number(values, 'batch-size', { integer: true, min: 1 }) ?? DEFAULT_BATCH_SIZE,
    ...(values.limit !== undefined ? { limit: number(values, 'limit', { integer: true, min: 0 })! } : {}),
    ...(shard ? { shard } : {}),
    out,
    resume: values.resume === true,
    ...(io.signal ? { signal: io.signal } : {}),
    ...(io.progressStream ? { progressStream: io.progressStream } : {}),
  });
  const { accuracy, files } = outcome;
  if (values.json) {
    io.stdout(
      `${JSON.stringify({
        accuracy: accuracy
          ? {
              overall: accuracy.overall,
              perAnswerType: accuracy.perAnswerType,
              perQuestionType: accuracy.perQuestionType,
            }
          : null,
        results: files!.results,
        questions: outcome.questions,
        settings: outcome.settings,
        timings: outcome.timings,
      })}\n`,
    );
  } else {
    io.stdout(
      (accuracy
        ? `VQA accuracy ${accuracy.overall.toFixed(2)} over ${outcome.questions} questions (${formatTypes(accuracy.perAnswerType)})\n`
        : `${outcome.questions} questions answered, not scored (no --annotations)\n`) +
        `model ${outcome.model} on ${outcome.backend}: ${outcome.timings.questionsPerSecond.toFixed(2)} questions/s\n` +
        `results: ${files!.results}\n` +
        (files!.reportMarkdown ? `report: ${files!.reportMarkdown}\n` : ''),
    );
  }
  return 0;
}

/** The decoding flags of `run` and `captions`: only those given, over the command's defaults. */
function generationFlags(values: Record<string, unknown>): Partial<GenerationSettings> {
  const generation: Partial<GenerationSettings> = {};
  const set = <K extends keyof GenerationSettings>(key: K, v: GenerationSettings[K] | undefined) => {
    if (v !== undefined) generation[key] = v;
  };
  set('numBeams', number(values, 'num-beams', { integer: true, min: 1 }));
  set('maxNewTokens', number(values, 'max-new-tokens', { integer: true, min: 0 }));
  set('minNewTokens', number(values, 'min-new-tokens', { integer: true, min: 0 }));
  set('lengthPenalty', number(values, 'length-penalty', { integer: false }));
  set('eosTokenIds', tokenIds(values, 'eos-token-ids'));
  set('paddingSide', oneOf(values, 'padding-side', ['left', 'right'] as const));
  set(
    'maxPromptTokens',
    values['max-prompt-tokens'] === 'none'
      ? null
      : number(values, 'max-prompt-tokens', { integer: true, min: 1 }),
  );
  set('maxInputTokens', number(values, 'max-input-tokens', { integer: true, min: 1 }));
  return generation;
}

async function captionsCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { ...MODEL_RUN_OPTIONS, captions: { type: 'string' } });
  const model = required(values, 'model');
  const captionsPath = required(values, 'captions');
  const imagesDir = required(values, 'images');
  const generation = generationFlags(values);
  const batchSize = number(values, 'batch-size', { integer: true, min: 1 }) ?? DEFAULT_BATCH_SIZE;
  const limit = number(values, 'limit', { integer: true, min: 0 });
  const outcome = await runCaptions({
    answerer: answererOf(values, model),
    captionsPath,
    imagesDir,
    imagePattern: values['image-pattern'] ?? DEFAULT_IMAGE_PATTERN,
    ...promptOf(values),
    generation,
    batchSize,
    ...(limit !== undefined ? { limit } : {}),
    out: values.out ?? 'caption_results.json',
    resume: values.resume === true,
    ...(io.signal ? { signal: io.signal } : {}),
    ...(io.progressStream ? { progressStream: io.progressStream } : {}),
  });
  const { images, exact, exactMatch, f1 } = outcome.scores;
  if (values.json) {
    io.stdout(
      `${JSON.stringify({ scores: outcome.scores, results: outcome.files!.results, report: outcome.files!.report, timings: outcome.timings })}\n`,
    );
  } else {
    io.stdout(
      `captions exactly right ${exact}/${images} (${exactMatch.toFixed(2)}%), token F1 ${f1.toFixed(2)}\n` +
        `model ${outcome.model} on ${outcome.backend}: ${outcome.timings.imagesPerSecond.toFixed(2)} images/s\n` +
        `results: ${outcome.files!.results}\nreport: ${outcome.files!.report}\n`,
    );
  }
  return 0;
}

function oneOf<const T extends string>(
  values: Record<string, unknown>,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) {
    throw new VqaEvalError('E_ARGS', `--${name} "${String(v)}": expected ${allowed.join(' or ')}`);
  }
  return v as T;
}

/** `--eos-token-ids 50118,2`: one or more token ids. */
function tokenIds(values: Record<string, unknown>, name: string): number[] | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const ids = String(v)
    .split(',')
    .map((p) => p.trim());
  if (!ids.every((p) => /^\d+$/.test(p) && Number.isSafeInteger(Number(p)))) {
    throw new VqaEvalError(
      'E_ARGS',
      `--${name} "${String(v)}": expected token ids separated by commas, e.g. 50118,2`,
    );
  }
  return ids.map(Number);
}

async function loadAnswererModule(path: string, opts: LoadAnswererOptions): Promise<VqaAnswerer> {
  let mod: Partial<AnswererModule>;
  try {
    mod = (await import(pathToFileURL(resolve(path)).href)) as Partial<AnswererModule>;
  } catch (e) {
    throw new VqaEvalError(
      'E_ANSWERER',
      `--answerer-module ${path}: cannot import it: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (typeof mod.createAnswerer !== 'function') {
    throw new VqaEvalError(
      'E_ANSWERER',
      `--answerer-module ${path}: it does not export createAnswerer(opts)`,
    );
  }
  return mod.createAnswerer(opts);
}

function formatTypes(perType: Record<string, number>): string {
  return Object.entries(perType)
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
}

function scoreCommand(args: readonly string[], io: CliIo): number {
  const { values } = parse(args, {
    questions: { type: 'string' },
    annotations: { type: 'string' },
    results: { type: 'string' },
    json: { type: 'boolean' },
    sum: { type: 'string' },
  });
  const sum = oneOf(values, 'sum', PY_SUM_MODES) ?? 'left-to-right';
  const annotationsPath = required(values, 'annotations');
  const resultsPath = required(values, 'results');
  let annotations = loadAnnotations(annotationsPath);
  if (values.questions !== undefined) {
    annotations = annotationsFor(loadQuestions(values.questions), annotations, annotationsPath);
  }
  const accuracy = scoreVqa(annotations, loadResults(resultsPath), resultsPath, sum);
  io.stdout(values.json ? `${JSON.stringify(accuracy)}\n` : formatAccuracy(accuracy));
  return 0;
}

export function formatAccuracy(a: VqaAccuracy): string {
  const lines = [
    `Overall Accuracy is: ${a.overall.toFixed(2)}`,
    '',
    'Per Answer Type Accuracy is the following:',
  ];
  for (const [k, v] of Object.entries(a.perAnswerType)) lines.push(`${k} : ${v.toFixed(2)}`);
  lines.push('', 'Per Question Type Accuracy is the following:');
  for (const [k, v] of Object.entries(a.perQuestionType)) lines.push(`${k} : ${v.toFixed(2)}`);
  return `${lines.join('\n')}\n`;
}

function mergeCommand(args: readonly string[], io: CliIo): number {
  const { values, positionals } = parse(
    args,
    { out: { type: 'string' }, questions: { type: 'string' }, limit: { type: 'string' } },
    true,
  );
  const out = required(values, 'out');
  const limit = number(values, 'limit', { integer: true, min: 0 });
  const merged = mergeResults({
    inputs: positionals,
    out,
    ...(values.questions !== undefined ? { questionsPath: values.questions } : {}),
    ...(limit !== undefined ? { limit } : {}),
  });
  io.stdout(`merged ${merged.length} answers from ${positionals.length} files into ${out}\n`);
  return 0;
}
