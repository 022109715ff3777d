/**
 * `<out>.progress.jsonl`: an append-only log that makes a run survive Ctrl-C, a crash or a kill.
 * Line 1 is a header with the settings that decide the answers; every finished batch appends one
 * line with its answers and is fsync'd before the next batch starts, so at most the batch in
 * flight is lost. A line cut short by a kill mid-write is dropped (and cut off the file) on resume,
 * and a write that fails half way (a full disk) is cut off at once, so every line in the file is
 * whole. The file is never opened through a link; the run's lock on `--out` keeps it to one writer.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, readFileSync } from 'node:fs';
import { checkWritableTarget, openNoFollow, writeAll } from '@blip2/sdk/files';
import { VqaEvalError } from './errors.js';
import type { VqaResult } from './vqa-eval.js';

export const PROGRESS_VERSION = 1;

/** What `--resume` insists on: change any of these and the answers would not be one run's. */
export interface CheckedSettings {
  model: string;
  /** The VQA protocol the settings below started from (each may have been overridden). */
  protocol?: string;
  prompt: string;
  questionPreprocess: string;
  numBeams: number;
  lengthPenalty: number;
  eosTokenIds?: number[];
  maxNewTokens: number;
  minNewTokens: number;
  paddingSide?: string;
  maxPromptTokens?: number | null;
  maxInputTokens?: number;
  imagePattern: string;
  limit: number | null;
  shard: string | null;
  /** Count and a hash of the selected question ids and texts, in order. */
  questions: { count: number; sha256: string };
}

interface HeaderLine {
  type: 'header';
  version: number;
  settings: CheckedSettings;
  /** Informational only: a run may resume on another backend or batch size. */
  info: Record<string, unknown>;
}

interface AnswersLine {
  type: 'answers';
  results: VqaResult[];
}

export class ProgressLog {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
    /** Answers recorded before this process started (resume). */
    readonly previous: ReadonlyMap<number, string>,
  ) {}

  /**
   * Opens the log for a run with `settings`. Without `resume` an existing log is an error (it
   * holds work someone may want); with `resume` its settings must match.
   */
  static open(
    path: string,
    settings: CheckedSettings,
    info: Record<string, unknown>,
    resume: boolean,
  ): ProgressLog {
    const previous = new Map<number, string>();
    let exists: boolean;
    try {
      exists = checkWritableTarget(path, 'progress log');
    } catch (e) {
      throw new VqaEvalError('E_OUT', (e as Error).message, { cause: e });
    }
    if (exists) {
      if (!resume) {
        throw new VqaEvalError(
          'E_PROGRESS_EXISTS',
          `${path} exists: a previous run was interrupted. Pass --resume to continue it, or delete the file to start over`,
        );
      }
      const { header, results, validBytes } = readProgress(path);
      if (header) {
        checkSettings(path, header.settings, settings);
        for (const r of results) previous.set(r.question_id, r.answer);
        const fd = openWriter(path, 'append');
        ftruncateSync(fd, validBytes);
        return new ProgressLog(path, fd, previous);
      }
    }
    // A fresh log (or one that died before its header reached the disk).
    const fd = openWriter(path, 'truncate');
    const header: HeaderLine = { type: 'header', version: PROGRESS_VERSION, settings, info };
    writeLine(path, fd, header);
    return new ProgressLog(path, fd, previous);
  }

  append(results: readonly VqaResult[]): void {
    if (this.fd === undefined) throw new Error('ProgressLog.append after close');
    const line: AnswersLine = { type: 'answers', results: [...results] };
    writeLine(this.path, this.fd, line);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function openWriter(path: string, mode: 'append' | 'truncate'): number {
  try {
    return openNoFollow(path, mode);
  } catch (e) {
    throw new VqaEvalError('E_OUT', (e as Error).message, { cause: e });
  }
}

/** Appends one whole line and fsyncs it; a failed write is cut back off, leaving the file as it was. */
function writeLine(path: string, fd: number, value: unknown): void {
  const before = fstatSync(fd).size;
  try {
    writeAll(fd, `${JSON.stringify(value)}\n`);
    fsyncSync(fd);
  } catch (e) {
    try {
      ftruncateSync(fd, before);
    } catch {}
    throw new VqaEvalError('E_OUT', `${path}: cannot append to the progress log: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Reads a progress file: its header (undefined if none made it to disk) and every recorded answer. */
export function readProgress(path: string): {
  header: HeaderLine | undefined;
  results: VqaResult[];
  validBytes: number;
} {
  const buf = readFileSync(path);
  const end = buf.lastIndexOf(0x0a) + 1; // bytes after the last newline are a cut-off write
  const lines = buf.subarray(0, end).toString('utf8').split('\n');
  lines.pop();
  let header: HeaderLine | undefined;
  const results: VqaResult[] = [];
  lines.forEach((text, i) => {
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      throw new VqaEvalError(
        'E_PROGRESS_CORRUPT',
        `${path}: line ${i + 1} is not JSON; delete the file to start over`,
      );
    }
    const l = (line ?? {}) as { type?: unknown; version?: unknown; settings?: unknown; results?: unknown };
    if (i === 0) {
      if (l.type !== 'header' || l.version !== PROGRESS_VERSION || typeof l.settings !== 'object') {
        throw new VqaEvalError(
          'E_PROGRESS_CORRUPT',
          `${path}: line 1 is not a version ${PROGRESS_VERSION} progress header; delete the file to start over`,
        );
      }
      header = line as HeaderLine;
      return;
    }
    if (l.type !== 'answers' || !Array.isArray(l.results)) {
      throw new VqaEvalError('E_PROGRESS_CORRUPT', `${path}: line ${i + 1} is not an answers line`);
    }
    for (const r of l.results as Partial<VqaResult>[]) {
      if (typeof r?.question_id !== 'number' || typeof r?.answer !== 'string') {
        throw new VqaEvalError('E_PROGRESS_CORRUPT', `${path}: line ${i + 1} has a malformed result`);
      }
      results.push({ question_id: r.question_id, answer: r.answer });
    }
  });
  return { header, results, validBytes: end };
}

function checkSettings(path: string, recorded: CheckedSettings, now: CheckedSettings): void {
  const differences: string[] = [];
  const keys = new Set([...Object.keys(recorded), ...Object.keys(now)]) as Set<keyof CheckedSettings>;
  for (const key of keys) {
    const was = JSON.stringify(recorded[key]);
    const is = JSON.stringify(now[key]);
    if (was !== is) differences.push(`${key}: recorded ${was}, now ${is}`);
  }
  if (differences.length > 0) {
    throw new VqaEvalError(
      'E_RESUME_MISMATCH',
      `cannot --resume ${path}: it was started with different settings (${differences.join('; ')}). ` +
        'Rerun with the recorded settings, or delete the file to start over',
    );
  }
}
