/**
 * Which questions a run answers, and in which batches. Deterministic by construction, so that a
 * resumed run, or shards run on different machines, form exactly the batches one uninterrupted
 * run would have formed (padding can change a model's answer, so batch membership matters):
 * 1. questions in file order (VQAv2 lists an image's questions together, so a batch shares images);
 * 2. `--limit N`: the first N;
 * 3. `--shard K/N`: the batches (of `--batch-size`) are split into N contiguous runs of whole
 *    batches; shard K (1-based) takes the K-th.
 */
import { VqaEvalError } from './errors.js';

export interface ShardSpec {
  /** 1-based. */
  index: number;
  count: number;
}

export function parseShard(text: string): ShardSpec {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new VqaEvalError('E_ARGS', `--shard "${text}": expected K/N with 1 <= K <= N, e.g. 1/4`);
  }
  return { index, count };
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function selectQuestions<T>(
  questions: readonly T[],
  opts: { limit?: number | undefined; shard?: ShardSpec | undefined; batchSize: number },
): T[] {
  const limited = opts.limit === undefined ? questions.slice() : questions.slice(0, opts.limit);
  if (!opts.shard) return limited;
  const batches = Math.ceil(limited.length / opts.batchSize);
  const first = Math.floor(((opts.shard.index - 1) * batches) / opts.shard.count);
  const end = Math.floor((opts.shard.index * batches) / opts.shard.count);
  return limited.slice(first * opts.batchSize, end * opts.batchSize);
}
