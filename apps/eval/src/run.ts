/**
 * One VQAv2 evaluation run: load and check the data (every image must exist before the model is
 * touched), resolve the protocol's settings for the model, answer the selected questions batch by
 * batch while logging each batch to disk, then write the official results file and, when there are
 * annotations to score against, score it and write the report.
 */
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { type QuestionPreprocess, VQA_PROTOCOLS, type VqaProtocol } from '@blip2/generation';
import type { GenerationSettings, VqaAnswerer } from './answerer.js';
import {
  annotationsFor,
  DEFAULT_IMAGE_PATTERN,
  loadAnnotations,
  loadQuestions,
  resolveImages,
  type VqaQuestion,
} from './data.js';
import { VqaEvalError } from './errors.js';
import { claimOutputs, formatResults, writeFileAtomic } from './fs-util.js';
import { compilePrompt, postprocessAnswer, preprocessQuestion } from './lavis.js';
import { type BarStream, ProgressBar } from './progress-bar.js';
import { type CheckedSettings, ProgressLog } from './progress-log.js';
import { type EvalReport, pickExamples, reportMarkdown } from './report.js';
import { chunk, type ShardSpec, selectQuestions } from './select.js';
import { scoreVqa, type VqaAccuracy, type VqaResult } from './vqa-eval.js';

export interface RunOptions {
  /** The model, or a function that loads it (called only after the data and images check out; then closed here). */
  answerer: VqaAnswerer | (() => Promise<VqaAnswerer>);
  questionsPath: string;
  /** Without annotations (test-dev has none public) the results are written but not scored. */
  annotationsPath?: string;
  imagesDir: string;
  imagePattern?: string;
  /** The zero-shot protocol whose settings are the defaults (default 'lavis'). */
  protocol?: VqaProtocol;
  /** Overrides the protocol's prompt. */
  prompt?: string;
  /** Overrides the protocol's question preprocessing. */
  questionPreprocess?: QuestionPreprocess;
  /** Overrides the protocol's generation settings, one by one. */
  generation?: Partial<GenerationSettings>;
  batchSize?: number;
  limit?: number;
  shard?: ShardSpec;
  /** Results path. Without it nothing is written (no progress log, no report): results are only returned. */
  out?: string;
  resume?: boolean;
  signal?: AbortSignal;
  /** Where the progress bar goes (drawn only if it is a TTY). Default process.stderr. */
  progressStream?: BarStream;
}

export interface RunTimings {
  /** Loading the answerer, when runEvaluation loaded it. */
  loadSeconds: number;
  /** Time inside `answerer.answer`. */
  answerSeconds: number;
  /** The whole answering loop of this process. */
  loopSeconds: number;
  /** Questions answered by this process (not counting resumed ones). */
  answered: number;
  /** Questions answered per second of loop time. */
  questionsPerSecond: number;
  /** Answers taken from the progress log of an earlier run. */
  resumed: number;
}

export interface RunOutcome {
  /** Official results, sorted by question id. */
  results: VqaResult[];
  /** Absent when the run had no annotations. */
  accuracy?: VqaAccuracy;
  questions: number;
  model: string;
  backend: string;
  settings: CheckedSettings & { batchSize: number };
  timings: RunTimings;
  /** Files written (when `out` was given; the reports only when scored). */
  files?: { results: string; reportJson?: string; reportMarkdown?: string };
}

export const DEFAULT_BATCH_SIZE = 16;

export const progressPathFor = (out: string) => `${out}.progress.jsonl`;
export const reportPathsFor = (out: string) => ({ json: `${out}.report.json`, markdown: `${out}.report.md` });

export async function runEvaluation(opts: RunOptions): Promise<RunOutcome> {
  // The outputs are claimed first: a run that cannot write its answers, or that would share
  // them with a live run, stops before reading data or loading a model.
  const out = opts.out === undefined ? undefined : resolve(opts.out);
  const lock = out
    ? claimOutputs(
        out,
        [progressPathFor(out), reportPathsFor(out).json, reportPathsFor(out).markdown],
        `vqa-eval run${opts.resume ? ' --resume' : ''}`,
      )
    : undefined;
  try {
    return await runClaimed(opts, out);
  } finally {
    lock?.release();
  }
}

async function runClaimed(opts: RunOptions, out: string | undefined): Promise<RunOutcome> {
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new VqaEvalError('E_ARGS', `--batch-size ${batchSize}: must be a positive integer`);
  }
  if (opts.limit !== undefined && (!Number.isSafeInteger(opts.limit) || opts.limit < 0)) {
    throw new VqaEvalError('E_ARGS', `--limit ${opts.limit}: must be a non-negative integer`);
  }
  const protocol = opts.protocol ?? 'lavis';
  if (!VQA_PROTOCOLS.includes(protocol)) {
    throw new VqaEvalError('E_ARGS', `--protocol "${protocol}": expected ${VQA_PROTOCOLS.join(' or ')}`);
  }
  const imagePattern = opts.imagePattern ?? DEFAULT_IMAGE_PATTERN;
  if (opts.prompt !== undefined) compilePrompt(opts.prompt); // a bad template fails before the model loads

  const all = loadQuestions(opts.questionsPath);
  const selected = selectQuestions(all, { limit: opts.limit, shard: opts.shard, batchSize });
  const annotations =
    opts.annotationsPath === undefined
      ? undefined
      : annotationsFor(selected, loadAnnotations(opts.annotationsPath), opts.annotationsPath);
  const imagePaths = resolveImages(selected, opts.imagesDir, imagePattern);

  const loadStart = performance.now();
  const owned = typeof opts.answerer === 'function';
  const answerer = typeof opts.answerer === 'function' ? await opts.answerer() : opts.answerer;
  const loadSeconds = owned ? (performance.now() - loadStart) / 1000 : 0;
  try {
    const preset = answerer.vqaSettings(protocol);
    const prompt = opts.prompt ?? preset.prompt;
    const questionPreprocess = opts.questionPreprocess ?? preset.questionPreprocess;
    const generation: GenerationSettings = {
      numBeams: preset.numBeams,
      lengthPenalty: preset.lengthPenalty,
      eosTokenIds: [...preset.eosTokenIds],
      maxNewTokens: preset.maxNewTokens,
      minNewTokens: preset.minNewTokens,
      paddingSide: preset.paddingSide,
      maxPromptTokens: preset.maxPromptTokens,
      ...opts.generation,
    };
    const promptOf = compilePrompt(prompt);
    const settings: CheckedSettings = {
      model: answerer.model,
      protocol,
      prompt,
      questionPreprocess,
      ...generation,
      imagePattern,
      limit: opts.limit ?? null,
      shard: opts.shard ? `${opts.shard.index}/${opts.shard.count}` : null,
      questions: { count: selected.length, sha256: fingerprint(selected) },
    };

    const log = out
      ? ProgressLog.open(
          progressPathFor(out),
          settings,
          { backend: answerer.backend, batchSize, startedAt: new Date().toISOString() },
          opts.resume === true,
        )
      : undefined;
    const answers = new Map<number, string>(log?.previous ?? []);
    const selectedIds = new Set(selected.map((q) => q.question_id));
    for (const id of answers.keys()) {
      if (!selectedIds.has(id)) {
        throw new VqaEvalError(
          'E_PROGRESS_CORRUPT',
          `${log!.path}: answers question_id ${id}, which this run does not ask`,
        );
      }
    }
    const resumed = answers.size;
    const todo = selected.filter((q) => !answers.has(q.question_id));
    const bar = new ProgressBar(selected.length, resumed, opts.progressStream);
    let answerSeconds = 0;
    const loopStart = performance.now();
    try {
      for (const batch of chunk(todo, batchSize)) {
        throwIfAborted(opts.signal, answers.size, selected.length, log);
        const items = batch.map((q) => ({
          imagePath: imagePaths.get(q.question_id)!,
          prompt: promptOf(preprocessQuestion(q.question, questionPreprocess)),
        }));
        const t0 = performance.now();
        let raw: string[];
        try {
          raw = await answerer.answer(items, generation, opts.signal);
        } catch (e) {
          throwIfAborted(opts.signal, answers.size, selected.length, log);
          throw answererFailed(e, batch, answers.size, selected.length);
        }
        answerSeconds += (performance.now() - t0) / 1000;
        if (!Array.isArray(raw) || raw.length !== batch.length || raw.some((a) => typeof a !== 'string')) {
          throw new VqaEvalError(
            'E_ANSWERER',
            `answerer "${answerer.model}" returned ${Array.isArray(raw) ? `${raw.length} answers` : typeof raw} ` +
              `for a batch of ${batch.length} questions (question_id ${batch[0]!.question_id}..${batch.at(-1)!.question_id})`,
          );
        }
        const results = batch.map((q, i) => ({
          question_id: q.question_id,
          answer: postprocessAnswer(raw[i]!),
        }));
        log?.append(results);
        for (const r of results) answers.set(r.question_id, r.answer);
        bar.advance(batch.length);
      }
    } finally {
      bar.finish();
      log?.close();
    }
    const loopSeconds = (performance.now() - loopStart) / 1000;

    const results = selected
      .map((q) => ({ question_id: q.question_id, answer: answers.get(q.question_id)! }))
      .sort((a, b) => a.question_id - b.question_id);
    const accuracy = annotations && scoreVqa(annotations, results, out ?? 'results');
    const answered = answers.size - resumed;
    const timings: RunTimings = {
      loadSeconds,
      answerSeconds,
      loopSeconds,
      answered,
      questionsPerSecond: loopSeconds > 0 ? answered / loopSeconds : 0,
      resumed,
    };
    const outcome: RunOutcome = {
      results,
      ...(accuracy ? { accuracy } : {}),
      questions: selected.length,
      model: answerer.model,
      backend: answerer.backend,
      settings: { ...settings, batchSize },
      timings,
    };
    if (out) {
      writeFileAtomic(out, formatResults(results));
      outcome.files = { results: out };
    }
    if (out && accuracy && annotations) {
      const reportPaths = reportPathsFor(out);
      const report: EvalReport = {
        model: answerer.model,
        backend: answerer.backend,
        settings: { ...settings, batchSize },
        questions: selected.length,
        accuracy: {
          overall: accuracy.overall,
          perAnswerType: accuracy.perAnswerType,
          perQuestionType: accuracy.perQuestionType,
        },
        timings: { ...timings },
        examples: pickExamples(
          results,
          accuracy,
          new Map(selected.map((q) => [q.question_id, q])),
          annotations,
          imagePaths,
        ),
      };
      writeFileAtomic(reportPaths.json, `${JSON.stringify(report, null, 2)}\n`);
      writeFileAtomic(reportPaths.markdown, reportMarkdown(report));
      outcome.files = { results: out, reportJson: reportPaths.json, reportMarkdown: reportPaths.markdown };
    }
    // The results file now holds everything the log did.
    if (out && existsSync(progressPathFor(out))) rmSync(progressPathFor(out));
    return outcome;
  } finally {
    if (owned) await answerer.close();
  }
}

/**
 * The answerer's refusal of a batch (a question too long for the model, a broken image) as
 * E_ANSWERER naming the questions, its own code kept in the message and as the cause; the
 * answers before it are in the progress log, so --resume continues once the input is fixed.
 */
function answererFailed(
  e: unknown,
  batch: readonly { question_id: number }[],
  done: number,
  total: number,
): VqaEvalError {
  if (e instanceof VqaEvalError) return e;
  const code = (e as { code?: unknown })?.code;
  const ids =
    batch.length === 1
      ? `question_id ${batch[0]!.question_id}`
      : `the batch of question_id ${batch[0]!.question_id}..${batch.at(-1)!.question_id}`;
  return new VqaEvalError(
    'E_ANSWERER',
    `${ids}: ${typeof code === 'string' ? `${code}: ` : ''}${(e as Error)?.message ?? String(e)} (${done} of ${total} answers kept; fix the input and run again with --resume)`,
    { cause: e },
  );
}

function throwIfAborted(
  signal: AbortSignal | undefined,
  done: number,
  total: number,
  log?: ProgressLog,
): void {
  if (!signal?.aborted) return;
  throw new VqaEvalError(
    'E_ABORTED',
    `interrupted after ${done} of ${total} questions` +
      (log ? `; the answers so far are in ${log.path}: run the same command with --resume to continue` : ''),
  );
}

/** Identifies the selected questions, so a resume cannot silently mix two different question sets. */
function fingerprint(questions: readonly VqaQuestion[]): string {
  const h = createHash('sha256');
  for (const q of questions) h.update(`${q.question_id}\t${q.image_id}\t${q.question}\n`);
  return h.digest('hex');
}
