/**
 * Which questions a run answers, and in which batches. Deterministic by construction, so that a
 * resumed run, or shards run on different machines, form exactly the batches one uninterrupted
 * run would have formed (padding can change a model's answer, so batch membership matters):
 * 1. questions in file order (VQAv2 lists an image's questions together, so a batch shares images);
 * 2. `--limit N`: the first N;
 * 3. `--shard K/N`: the batches (of `--batch-size`) are split into N contiguous runs of whole
 *    batches; shard K (1-based) takes the K-th. `--shard auto` reads K and N from the job engine.
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

/** The variables `--shard auto` reads. */
export const SHARD_ENV = {
  /** Kubernetes Indexed Job: set by Kubernetes in every pod, 0-based. */
  k8sIndex: 'JOB_COMPLETION_INDEX',
  /** Kubernetes does not expose `spec.completions` to the pod: the manifest sets this to it. */
  k8sCount: 'JOB_COMPLETIONS',
  slurmId: 'SLURM_ARRAY_TASK_ID',
  slurmCount: 'SLURM_ARRAY_TASK_COUNT',
  slurmMin: 'SLURM_ARRAY_TASK_MIN',
  slurmMax: 'SLURM_ARRAY_TASK_MAX',
} as const;

/**
 * `--shard auto`: K/N from the job engine running this process. A Kubernetes Indexed Job gives
 * `JOB_COMPLETION_INDEX` (0-based) and the manifest passes its completions as `JOB_COMPLETIONS`;
 * a Slurm job array gives `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT`, the ids counted from
 * `SLURM_ARRAY_TASK_MIN` (`--array=0-3` and `--array=1-4` both make shards 1..4). An array with
 * gaps or a step (`--array=0-6:2`) is refused: its ids would not name contiguous shards.
 */
export function shardFromEnvironment(env: Readonly<Record<string, string | undefined>>): ShardSpec {
  const int = (name: string): number => {
    const v = env[name];
    if (v === undefined || !/^\d+$/.test(v.trim())) {
      throw new VqaEvalError(
        'E_ARGS',
        `--shard auto: ${name} is ${v === undefined ? 'not set' : `"${v}"`}, expected a non-negative integer`,
      );
    }
    return Number(v);
  };
  const checked = (index0: number, count: number, from: string): ShardSpec => {
    if (count < 1 || index0 >= count) {
      throw new VqaEvalError(
        'E_ARGS',
        `--shard auto: ${from} gives shard index ${index0} of ${count} (0-based)`,
      );
    }
    return { index: index0 + 1, count };
  };
  if (env[SHARD_ENV.k8sIndex] !== undefined) {
    if (env[SHARD_ENV.k8sCount] === undefined) {
      throw new VqaEvalError(
        'E_ARGS',
        `--shard auto: ${SHARD_ENV.k8sIndex} is set (a Kubernetes Indexed Job) but ${SHARD_ENV.k8sCount} is not: set it to the Job's spec.completions in the pod's env`,
      );
    }
    return checked(
      int(SHARD_ENV.k8sIndex),
      int(SHARD_ENV.k8sCount),
      `${SHARD_ENV.k8sIndex}/${SHARD_ENV.k8sCount}`,
    );
  }
  if (env[SHARD_ENV.slurmId] !== undefined) {
    const id = int(SHARD_ENV.slurmId);
    const count = int(SHARD_ENV.slurmCount);
    const min = env[SHARD_ENV.slurmMin] === undefined ? 0 : int(SHARD_ENV.slurmMin);
    if (env[SHARD_ENV.slurmMax] !== undefined && int(SHARD_ENV.slurmMax) - min + 1 !== count) {
      throw new VqaEvalError(
        'E_ARGS',
        `--shard auto: the Slurm array ${min}-${int(SHARD_ENV.slurmMax)} has ${count} tasks, not one per id: use a contiguous --array without a step`,
      );
    }
    return checked(
      id - min,
      count,
      `${SHARD_ENV.slurmId} ${id} - ${SHARD_ENV.slurmMin} ${min} / ${SHARD_ENV.slurmCount}`,
    );
  }
  throw new VqaEvalError(
    'E_ARGS',
    `--shard auto: neither ${SHARD_ENV.k8sIndex} (Kubernetes Indexed Job) nor ${SHARD_ENV.slurmId} (Slurm array) is set`,
  );
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
