/**
 * A toy language model for the search tests: the next-token logits are any function
 * of the row's history (the unmasked prompt tokens, then what was generated). The
 * prompt "embeddings" are [B, T, 1] holding the token ids, so the toy reads its
 * prompt back from them. Counts its calls so tests can see what ran.
 */
import { float32, type Tensor } from '@blip2/tensor';
import type { LanguageModelAdapter } from '../../src/adapter.js';

export type LogitsFn = (history: readonly number[]) => ArrayLike<number>;

export interface ToyCache {
  readonly histories: number[][];
}

export class ToyLm implements LanguageModelAdapter<ToyCache> {
  readonly calls = { prefill: 0, step: 0, reorderCache: 0, embed: 0, releaseCache: 0 };
  /** rows fed to every step, in order */
  readonly fed: number[][] = [];
  readonly decoderStartTokenId?: number;

  constructor(
    readonly vocabSize: number,
    private readonly logits: LogitsFn,
    readonly kind: 'decoder-only' | 'encoder-decoder' = 'decoder-only',
    readonly maxPositions?: number,
  ) {
    if (kind === 'encoder-decoder') this.decoderStartTokenId = 0;
  }

  async embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    this.calls.embed++;
    return float32([...inputIds.dims, 1], Array.from(inputIds.data, Number));
  }

  async prefill(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>) {
    this.calls.prefill++;
    const [b, t] = inputsEmbeds.dims;
    const histories = Array.from({ length: b }, (_, r) => {
      const h: number[] = [];
      for (let i = 0; i < t; i++)
        if (attentionMask.data[r * t + i] === 1n) h.push(inputsEmbeds.data[r * t + i]);
      return this.kind === 'encoder-decoder' ? [...h, this.decoderStartTokenId as number] : h;
    });
    return { logits: this.last(histories), cache: { histories } };
  }

  async step(tokenIds: Tensor<'int64'>, cache: ToyCache) {
    this.calls.step++;
    const tokens = Array.from(tokenIds.data, Number);
    this.fed.push(tokens);
    const histories = cache.histories.map((h, r) => [...h, tokens[r]]);
    return { logits: this.last(histories), cache: { histories } };
  }

  async reorderCache(cache: ToyCache, rows: readonly number[]) {
    this.calls.reorderCache++;
    return { histories: rows.map((r) => cache.histories[r]) };
  }

  async releaseCache() {
    this.calls.releaseCache++;
  }

  private last(histories: number[][]): Tensor<'float32'> {
    const out = new Float32Array(histories.length * this.vocabSize);
    histories.forEach((h, r) => {
      out.set(Array.from(this.logits(h)), r * this.vocabSize);
    });
    return float32([histories.length, 1, this.vocabSize], out);
  }
}

/** A fixed pseudo-random table of logits by previous token (a bigram model), from a seed. */
export function bigramLogits(vocab: number, seed: number, spread = 3): LogitsFn {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const table = Array.from({ length: vocab + 1 }, () =>
    Array.from({ length: vocab }, () => (rand() - 0.5) * 2 * spread),
  );
  return (h) => table[h.length === 0 ? vocab : h[h.length - 1]];
}

/** int64 / float32 prompt tensors for the toy from rows of ids (left-padded with `pad`, mask 0 there). */
export function toyInputs(rows: number[][], pad = 0) {
  const t = Math.max(...rows.map((r) => r.length));
  const ids: number[] = [];
  const mask: number[] = [];
  for (const r of rows) {
    for (let i = 0; i < t - r.length; i++) {
      ids.push(pad);
      mask.push(0);
    }
    ids.push(...r);
    mask.push(...r.map(() => 1));
  }
  const b = rows.length;
  return {
    inputsEmbeds: float32([b, t, 1], ids),
    attentionMask: tensorInt64([b, t], mask),
    inputIds: tensorInt64([b, t], ids),
  };
}

function tensorInt64(dims: number[], values: number[]): Tensor<'int64'> {
  return { dtype: 'int64', dims, data: BigInt64Array.from(values.map(BigInt)) };
}

export function logSoftmax(row: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(row));
  const lse = max + Math.log(Array.from(row).reduce((s, x) => s + Math.exp(x - max), 0));
  return Array.from(row, (x) => x - lse);
}

/** Logits that depend on the whole history (a hash of it): no two paths tie by symmetry. */
export function historyLogits(vocab: number, seed: number, spread = 3): LogitsFn {
  return (h) => {
    let s = seed >>> 0;
    for (const t of h) s = (Math.imul(s ^ (t + 0x9e37), 0x85ebca6b) + 0x2545f491) >>> 0;
    return Array.from({ length: vocab }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return (s / 2 ** 32 - 0.5) * 2 * spread;
    });
  };
}
