/**
 * What greedy search, sampling and beam search share: the context they run in and
 * the two ways of choosing a token from a row of scores.
 */
import { GenerationError } from './errors.js';
import type { LogitsProcessor } from './logits-process.js';
import type { ResolvedOptions, TokenEvent } from './options.js';
import type { Rng } from './rng.js';
import type { ModelRunner } from './runner.js';

export interface SearchContext {
  readonly runner: ModelRunner<unknown>;
  readonly options: ResolvedOptions;
  readonly processors: readonly LogitsProcessor[];
  /** per input row, the ids the processors see before generating (prompt ids, or [decoderStartTokenId]) */
  readonly prompts: readonly (readonly number[])[];
  readonly emit: (event: TokenEvent) => void;
}

export interface SearchResult {
  /** whole sequences (prompt ids + new tokens), one per output row, all of one length */
  readonly sequences: number[][];
  readonly sequencesScores?: number[];
}

/** A token drawn from softmax(scores) (torch.multinomial with one sample); -inf scores are never drawn. */
export function sampleRow(scores: Float32Array, rng: Rng): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < scores.length; i++) if (scores[i] > max) max = scores[i];
  let total = 0;
  for (let i = 0; i < scores.length; i++) total += Math.exp(scores[i] - max);
  if (!(total > 0) || !Number.isFinite(total)) {
    throw new GenerationError(
      'E_NO_CANDIDATES',
      `no token can be sampled: every score is -inf or NaN (max ${max})`,
    );
  }
  const target = rng.next() * total;
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < scores.length; i++) {
    const w = Math.exp(scores[i] - max);
    if (w === 0) continue;
    cumulative += w;
    last = i;
    if (target < cumulative) return i;
  }
  // rounding left target at the very top: the last token with any weight
  return last;
}

export function isEos(options: ResolvedOptions, token: number): boolean {
  return options.eosTokenIds.includes(token);
}
