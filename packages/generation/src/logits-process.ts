/**
 * Logits processors, after transformers' `generation/logits_process.py`, one row at a
 * time: `ids` is that row's whole sequence so far (what the reference calls
 * `input_ids`: for BLIP-2 OPT the prompt ids, image tokens and left pads included;
 * for T5 the decoder ids from the start token), `scores` its next-token scores,
 * changed in place. Greedy and sampling pass raw logits; beam search passes
 * log-softmax scores, as the reference does. Scores live in a Float32Array, so each
 * store rounds to float32 like torch's float32 kernels.
 */
import type { ResolvedOptions } from './options.js';

export interface LogitsProcessor {
  /** transformers' class name, for messages and debugging */
  readonly name: string;
  process(ids: readonly number[], scores: Float32Array): void;
}

const NEG_INF = Number.NEGATIVE_INFINITY;

/** Divides positive scores by `penalty` and multiplies negative ones, once per distinct id seen (CTRL paper). */
export class RepetitionPenaltyLogitsProcessor implements LogitsProcessor {
  readonly name = 'RepetitionPenaltyLogitsProcessor';
  private readonly penalty: number;
  private seen: Uint32Array = new Uint32Array(0);
  private stamp = 0;
  constructor(penalty: number) {
    this.penalty = Math.fround(penalty);
  }
  process(ids: readonly number[], scores: Float32Array): void {
    if (this.seen.length !== scores.length) this.seen = new Uint32Array(scores.length);
    // a fresh stamp marks "seen in this row" without clearing the array
    const stamp = ++this.stamp;
    for (const id of ids) {
      if (id < 0 || id >= scores.length || this.seen[id] === stamp) continue;
      this.seen[id] = stamp;
      const s = scores[id];
      scores[id] = s < 0 ? s * this.penalty : s / this.penalty;
    }
  }
}

/** Bans any token that would repeat an n-gram already in the sequence. */
export class NoRepeatNGramLogitsProcessor implements LogitsProcessor {
  readonly name = 'NoRepeatNGramLogitsProcessor';
  constructor(private readonly ngramSize: number) {}
  process(ids: readonly number[], scores: Float32Array): void {
    const n = this.ngramSize;
    const len = ids.length;
    if (len + 1 < n) return;
    // the last n-1 tokens are the prefix; every earlier occurrence bans its follower
    const prefixStart = len - n + 1;
    for (let i = 0; i + n - 1 < len; i++) {
      let match = true;
      for (let j = 0; j < n - 1; j++) {
        if (ids[i + j] !== ids[prefixStart + j]) {
          match = false;
          break;
        }
      }
      if (match) scores[ids[i + n - 1]] = NEG_INF;
    }
  }
}

/**
 * Bans token sequences: a one-token sequence always, a longer one when the row ends
 * with all but its last token (transformers' SequenceBias with -inf). A bad word
 * that is exactly an EOS id is dropped, as the reference does.
 */
export class NoBadWordsLogitsProcessor implements LogitsProcessor {
  readonly name = 'NoBadWordsLogitsProcessor';
  private readonly badWords: readonly (readonly number[])[];
  constructor(badWordsIds: readonly (readonly number[])[], eosTokenIds: readonly number[]) {
    this.badWords = badWordsIds.filter((seq) => !(seq.length === 1 && eosTokenIds.includes(seq[0])));
  }
  process(ids: readonly number[], scores: Float32Array): void {
    for (const seq of this.badWords) {
      const last = seq[seq.length - 1];
      if (seq.length === 1) {
        scores[last] = NEG_INF;
        continue;
      }
      if (seq.length > ids.length) continue;
      const offset = ids.length - (seq.length - 1);
      let match = true;
      for (let j = 0; j < seq.length - 1; j++) {
        if (ids[offset + j] !== seq[j]) {
          match = false;
          break;
        }
      }
      if (match) scores[last] = NEG_INF;
    }
  }
}

/** Masks EOS while the whole sequence (prompt ids included) is shorter than `minLength`. */
export class MinLengthLogitsProcessor implements LogitsProcessor {
  readonly name = 'MinLengthLogitsProcessor';
  constructor(
    private readonly minLength: number,
    private readonly eosTokenIds: readonly number[],
  ) {}
  process(ids: readonly number[], scores: Float32Array): void {
    if (ids.length < this.minLength) for (const eos of this.eosTokenIds) scores[eos] = NEG_INF;
  }
}

/** Masks EOS until `minNewTokens` tokens follow the prompt. */
export class MinNewTokensLengthLogitsProcessor implements LogitsProcessor {
  readonly name = 'MinNewTokensLengthLogitsProcessor';
  constructor(
    private readonly promptLengthToSkip: number,
    private readonly minNewTokens: number,
    private readonly eosTokenIds: readonly number[],
  ) {}
  process(ids: readonly number[], scores: Float32Array): void {
    if (ids.length - this.promptLengthToSkip < this.minNewTokens)
      for (const eos of this.eosTokenIds) scores[eos] = NEG_INF;
  }
}

/** Forces `bosTokenId` as the first generated token of a one-token (decoder start) sequence. */
export class ForcedBOSTokenLogitsProcessor implements LogitsProcessor {
  readonly name = 'ForcedBOSTokenLogitsProcessor';
  constructor(private readonly bosTokenId: number) {}
  process(ids: readonly number[], scores: Float32Array): void {
    if (ids.length !== 1) return;
    scores.fill(NEG_INF);
    scores[this.bosTokenId] = 0;
  }
}

/** Forces an EOS id as the last token before `maxLength`. */
export class ForcedEOSTokenLogitsProcessor implements LogitsProcessor {
  readonly name = 'ForcedEOSTokenLogitsProcessor';
  constructor(
    private readonly maxLength: number,
    private readonly eosTokenIds: readonly number[],
  ) {}
  process(ids: readonly number[], scores: Float32Array): void {
    if (ids.length !== this.maxLength - 1) return;
    scores.fill(NEG_INF);
    for (const eos of this.eosTokenIds) scores[eos] = 0;
  }
}

export class TemperatureLogitsWarper implements LogitsProcessor {
  readonly name = 'TemperatureLogitsWarper';
  private readonly temperature: number;
  constructor(temperature: number) {
    this.temperature = Math.fround(temperature);
  }
  process(_ids: readonly number[], scores: Float32Array): void {
    for (let i = 0; i < scores.length; i++) scores[i] = scores[i] / this.temperature;
  }
}

/** Keeps tokens scoring at least the k-th best score (ties at the threshold survive, as in the reference). */
export class TopKLogitsWarper implements LogitsProcessor {
  readonly name = 'TopKLogitsWarper';
  private heap = new Float32Array(0);
  constructor(
    private readonly topK: number,
    private readonly minTokensToKeep: number,
  ) {}
  process(_ids: readonly number[], scores: Float32Array): void {
    const k = Math.min(Math.max(this.topK, this.minTokensToKeep), scores.length);
    if (k >= scores.length) return;
    if (this.heap.length < k) this.heap = new Float32Array(k);
    const threshold = kthLargest(scores, k, this.heap);
    for (let i = 0; i < scores.length; i++) if (scores[i] < threshold) scores[i] = NEG_INF;
  }
}

/** The k-th largest value of `values` via a size-k min-heap in `heap` (O(n log k), no allocation). */
function kthLargest(values: Float32Array, k: number, heap: Float32Array): number {
  let size = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (size < k) {
      let j = size++;
      heap[j] = v;
      while (j > 0) {
        const p = (j - 1) >> 1;
        if (heap[p] <= heap[j]) break;
        const t = heap[p];
        heap[p] = heap[j];
        heap[j] = t;
        j = p;
      }
    } else if (v > heap[0]) {
      heap[0] = v;
      let j = 0;
      for (;;) {
        const l = 2 * j + 1;
        const r = l + 1;
        let m = j;
        if (l < size && heap[l] < heap[m]) m = l;
        if (r < size && heap[r] < heap[m]) m = r;
        if (m === j) break;
        const t = heap[m];
        heap[m] = heap[j];
        heap[j] = t;
        j = m;
      }
    }
  }
  return heap[0];
}

/**
 * Nucleus sampling (Holtzman et al.): sorts ascending, removes the low tail whose
 * cumulative probability stays <= 1 - topP, always keeping `minTokensToKeep`.
 */
export class TopPLogitsWarper implements LogitsProcessor {
  readonly name = 'TopPLogitsWarper';
  private order = new Uint32Array(0);
  constructor(
    private readonly topP: number,
    private readonly minTokensToKeep: number,
  ) {}
  process(_ids: readonly number[], scores: Float32Array): void {
    const n = scores.length;
    if (this.order.length !== n) this.order = new Uint32Array(n);
    const order = this.order;
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => scores[a] - scores[b] || a - b);
    let max = NEG_INF;
    for (let i = 0; i < n; i++) if (scores[i] > max) max = scores[i];
    let total = 0;
    for (let i = 0; i < n; i++) total += Math.exp(scores[i] - max);
    const cut = 1 - this.topP;
    let cumulative = 0;
    for (let r = 0; r < n - this.minTokensToKeep; r++) {
      const i = order[r];
      cumulative += Math.exp(scores[i] - max) / total;
      if (cumulative > cut) break;
      scores[i] = NEG_INF;
    }
  }
}

/**
 * The processor list `generate` builds, in the reference's order
 * (`_get_logits_processor`): penalties and bans, length constraints, forced tokens,
 * then, when sampling, the warpers temperature -> top-k -> top-p.
 */
export function buildLogitsProcessors(o: ResolvedOptions): LogitsProcessor[] {
  const list: LogitsProcessor[] = [];
  if (o.repetitionPenalty !== 1) list.push(new RepetitionPenaltyLogitsProcessor(o.repetitionPenalty));
  if (o.noRepeatNgramSize > 0) list.push(new NoRepeatNGramLogitsProcessor(o.noRepeatNgramSize));
  if (o.badWordsIds.length > 0) list.push(new NoBadWordsLogitsProcessor(o.badWordsIds, o.eosTokenIds));
  if (o.eosTokenIds.length > 0 && o.minLength > 0)
    list.push(new MinLengthLogitsProcessor(o.minLength, o.eosTokenIds));
  if (o.eosTokenIds.length > 0 && o.minNewTokens > 0) {
    list.push(new MinNewTokensLengthLogitsProcessor(o.promptLength, o.minNewTokens, o.eosTokenIds));
  }
  if (o.forcedBosTokenId !== undefined) list.push(new ForcedBOSTokenLogitsProcessor(o.forcedBosTokenId));
  if (o.forcedEosTokenIds !== undefined)
    list.push(new ForcedEOSTokenLogitsProcessor(o.maxLength, o.forcedEosTokenIds));
  if (o.doSample) {
    // beam sampling must leave a non-EOS continuation alive for every beam
    const minTokensToKeep = o.numBeams > 1 ? Math.max(o.eosTokenIds.length, 1) + 1 : 1;
    if (o.temperature !== 1) list.push(new TemperatureLogitsWarper(o.temperature));
    if (o.topK !== 0) list.push(new TopKLogitsWarper(o.topK, minTokensToKeep));
    if (o.topP < 1) list.push(new TopPLogitsWarper(o.topP, minTokensToKeep));
  }
  return list;
}

export function applyProcessors(
  list: readonly LogitsProcessor[],
  ids: readonly number[],
  scores: Float32Array,
): void {
  for (const p of list) p.process(ids, scores);
}
