/** Joins the results files of `--shard K/N` runs into one, as a single run would have written it. */
import { loadQuestions, loadResults } from './data.js';
import { VqaEvalError } from './errors.js';
import { formatResults, writeFileAtomic } from './fs-util.js';
import { selectQuestions } from './select.js';
import { describeIdMismatch, type VqaResult } from './vqa-eval.js';

export interface MergeOptions {
  inputs: readonly string[];
  out?: string;
  /** When given, the merged ids must be exactly these questions (after `limit`). */
  questionsPath?: string;
  limit?: number;
}

export function mergeResults(opts: MergeOptions): VqaResult[] {
  if (opts.inputs.length === 0) throw new VqaEvalError('E_ARGS', 'merge: no results files given');
  const owner = new Map<number, string>();
  const merged: VqaResult[] = [];
  for (const path of opts.inputs) {
    for (const r of loadResults(path)) {
      const other = owner.get(r.question_id);
      if (other !== undefined) {
        throw new VqaEvalError(
          'E_MERGE_OVERLAP',
          `merge: question_id ${r.question_id} is answered in both ${other} and ${path} (were two shards given the same K?)`,
        );
      }
      owner.set(r.question_id, path);
      merged.push(r);
    }
  }
  if (opts.questionsPath) {
    const wanted = selectQuestions(loadQuestions(opts.questionsPath), { limit: opts.limit, batchSize: 1 });
    const mismatch = describeIdMismatch(
      wanted.map((q) => q.question_id),
      merged.map((r) => r.question_id),
    );
    if (mismatch) {
      throw new VqaEvalError(
        'E_MERGE_INCOMPLETE',
        `merge: the shards do not cover ${opts.questionsPath}${opts.limit === undefined ? '' : ` (--limit ${opts.limit})`}: ${mismatch}`,
      );
    }
  }
  merged.sort((a, b) => a.question_id - b.question_id);
  if (opts.out) writeFileAtomic(opts.out, formatResults(merged));
  return merged;
}
