/**
 * Drives the adapter for the search loops: prefill once per input row, expand the
 * cache to beams or samples (the image side is never recomputed), step, reorder, and
 * hand back the last position's logits as one Float32Array [rows, vocab] that the
 * processors may change in place.
 */
import { firstNonFinite, int64, type Tensor } from '@blip2/tensor';
import type { LanguageModelAdapter } from './adapter.js';
import { GenerationError } from './errors.js';

export class ModelRunner<Cache> {
  /** last-position scores of the current rows, [rows, vocab] */
  scores: Float32Array = new Float32Array(0);
  rows = 0;
  private cache: Cache | undefined;

  constructor(
    private readonly adapter: LanguageModelAdapter<Cache>,
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** steps run so far (0 during the prefill), for messages */
  private steps = 0;

  get vocabSize(): number {
    return this.adapter.vocabSize;
  }

  async prefill(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>): Promise<void> {
    this.checkAborted();
    const out = await this.adapter.prefill(inputsEmbeds, attentionMask);
    this.cache = out.cache;
    this.takeLogits(out.logits, inputsEmbeds.dims[0], 'prefill');
    this.checkAborted();
  }

  /**
   * Picks (and repeats) rows of the cache and of the current scores: expands a
   * prefilled batch to beams and follows beam search's choices.
   */
  async reorder(rows: readonly number[], withScores: boolean): Promise<void> {
    this.checkAborted();
    this.cache = await this.adapter.reorderCache(this.cache as Cache, rows);
    if (withScores) {
      const v = this.vocabSize;
      const next = new Float32Array(rows.length * v);
      rows.forEach((r, i) => {
        next.set(this.scores.subarray(r * v, (r + 1) * v), i * v);
      });
      this.scores = next;
    }
    this.rows = rows.length;
    this.checkAborted();
  }

  async step(tokens: readonly number[]): Promise<void> {
    this.checkAborted();
    const out = await this.adapter.step(int64([tokens.length, 1], tokens), this.cache as Cache);
    this.cache = out.cache;
    this.steps++;
    this.takeLogits(out.logits, tokens.length, 'step');
    this.checkAborted();
  }

  /** Frees the last cache (the adapter owns the intermediate ones: step and reorderCache replace them). */
  async release(): Promise<void> {
    const cache = this.cache;
    this.cache = undefined;
    if (cache !== undefined && this.adapter.releaseCache) await this.adapter.releaseCache(cache);
  }

  checkAborted(): void {
    if (this.signal?.aborted) {
      throw new GenerationError('E_ABORTED', 'generation was aborted by the caller', {
        cause: this.signal.reason,
      });
    }
  }

  private takeLogits(logits: Tensor<'float32'>, rows: number, where: string): void {
    const v = this.vocabSize;
    const d = logits.dims;
    if (logits.dtype !== 'float32' || d.length !== 3 || d[0] !== rows || d[2] !== v || d[1] < 1) {
      throw new GenerationError(
        'E_ADAPTER',
        `adapter ${where} returned logits ${logits.dtype} [${d.join(', ')}], expected float32 [${rows}, T, ${v}]`,
      );
    }
    const t = d[1];
    const scores = new Float32Array(rows * v);
    for (let r = 0; r < rows; r++) {
      const start = (r * t + t - 1) * v;
      scores.set(logits.data.subarray(start, start + v), r * v);
    }
    // argmax and softmax of NaN scores pick an arbitrary token (often EOS: an empty
    // answer that looks like one); one pass over rows x vocab, small beside the step
    const bad = firstNonFinite(scores);
    if (bad >= 0) {
      throw new GenerationError(
        'E_NAN_LOGITS',
        `the language model's logits hold ${scores[bad]} (${where === 'prefill' ? 'prefill' : `step ${this.steps}`}, row ${Math.floor(bad / v)}, token ${bad % v}): its weights or its inputs hold NaN or Infinity, so no answer is returned`,
      );
    }
    this.scores = scores;
    this.rows = rows;
  }
}
