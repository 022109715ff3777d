/**
 * The run's output files: `--out` and the files beside it (`.progress.jsonl`, `.report.json`,
 * `.report.md`) are checked before any work, under a lock that names the live run, and written
 * without ever following a link (the SDK's `@blip2/sdk/files` rules, shared with the model cache).
 */
import { accessSync, constants, lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  checkWritableTarget,
  describeHolder,
  type FileLock,
  tryLock,
  writeFileAtomic as writeAtomic,
} from '@blip2/sdk/files';
import { VqaEvalError } from './errors.js';

/** The SDK's file errors (E_FILE) reach users as the app's own typed error, naming the file. */
function asEvalError(e: unknown): never {
  if (
    e instanceof Error &&
    typeof (e as { code?: unknown }).code === 'string' &&
    !(e instanceof VqaEvalError)
  ) {
    throw new VqaEvalError('E_OUT', e.message);
  }
  throw e;
}

/** Writes a file so that readers see the old content or the new, never half of it, never through a link. */
export function writeFileAtomic(path: string, text: string): void {
  try {
    writeAtomic(path, text);
  } catch (e) {
    asEvalError(e);
  }
}

/**
 * Before anything is loaded: the folder of `out` exists and is writable, no output is a link,
 * a folder or a device, and no live run holds `out`. Returns the lock, held until release().
 */
export function claimOutputs(out: string, related: readonly string[], purpose: string): FileLock {
  const dir = dirname(out);
  let st: ReturnType<typeof lstatSync> | undefined;
  try {
    st = lstatSync(dir);
  } catch {}
  if (!st) throw new VqaEvalError('E_OUT', `--out ${out}: the folder ${dir} does not exist`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new VqaEvalError('E_OUT', `--out ${out}: the folder ${dir} is not writable`);
  }
  try {
    if (checkWritableTarget(out, '--out')) accessSync(out, constants.W_OK);
    for (const p of related)
      if (checkWritableTarget(p, `output of --out ${out}`)) accessSync(p, constants.W_OK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EACCES')
      throw new VqaEvalError(
        'E_OUT',
        `--out ${out}: ${(e as NodeJS.ErrnoException).path ?? out} is not writable`,
      );
    asEvalError(e);
  }
  let got: ReturnType<typeof tryLock>;
  try {
    got = tryLock(`${out}.lock`, purpose);
  } catch (e) {
    asEvalError(e);
  }
  if ('holder' in got) {
    throw new VqaEvalError(
      'E_OUT_LOCKED',
      `--out ${out} is in use by a live run: ${describeHolder(got.holder)}. ` +
        `Wait for it to finish or stop it; if it is gone, delete ${out}.lock`,
    );
  }
  return got.lock;
}

/** The official results layout, one answer per line so that files diff well. */
export function formatResults(results: readonly { question_id: number; answer: string }[]): string {
  if (results.length === 0) return '[]\n';
  const lines = results.map((r) => JSON.stringify({ question_id: r.question_id, answer: r.answer }));
  return `[\n${lines.join(',\n')}\n]\n`;
}
