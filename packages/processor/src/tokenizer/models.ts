/**
 * The `model` section of tokenizer.json: byte-level BPE (OPT, GPT-2) and Unigram
 * (T5, SentencePiece). A model splits one pre-tokenized word into tokens with offsets
 * inside that word, counted in code points.
 */
import { ProcessorError } from '../errors.js';

export interface ModelToken {
  id: number;
  value: string;
  start: number;
  end: number;
}

export interface Model {
  tokenize(word: readonly string[]): ModelToken[];
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  readonly vocabSize: number;
}

type Json = Record<string, unknown>;

/**
 * Token ids stop below 2^24: past it float32 no longer holds every integer, and no
 * vocabulary a config may declare (@blip2/configs' CONFIG_LIMITS.vocab) reaches it.
 */
export const MAX_TOKEN_ID = 2 ** 24;

export function isTokenId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < MAX_TOKEN_ID;
}

/**
 * Byte-pair encoding (Sennrich et al.): start from single characters and repeatedly apply
 * the lowest-ranked merge present, leftmost first, as the reference's priority queue does.
 */
export class BPE implements Model {
  private readonly vocab: Map<string, number>;
  private readonly vocabR: string[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, ModelToken[]>();
  readonly vocabSize: number;

  constructor(
    vocab: Record<string, number>,
    merges: readonly (string | readonly [string, string])[],
    readonly opts: {
      unkToken: string | null;
      continuingSubwordPrefix: string | null;
      endOfWordSuffix: string | null;
      fuseUnk: boolean;
      byteFallback: boolean;
      ignoreMerges: boolean;
    },
  ) {
    this.vocab = new Map(Object.entries(vocab));
    for (const [t, id] of this.vocab) this.vocabR[id] = t;
    this.vocabSize = this.vocab.size;
    merges.forEach((m, rank) => {
      const [a, b] = typeof m === 'string' ? splitMerge(m, rank) : m;
      this.ranks.set(`${a}\u0000${b}`, rank);
    });
  }

  static fromJson(o: Json): BPE {
    if (typeof o.vocab !== 'object' || o.vocab === null || !Array.isArray(o.merges)) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        'tokenizer.json model (BPE): "vocab" object and "merges" array are required',
      );
    }
    if (Array.isArray(o.vocab)) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        'tokenizer.json model (BPE): "vocab" must be an object of token -> id, got an array',
      );
    }
    for (const [token, id] of Object.entries(o.vocab as Json)) {
      if (!isTokenId(id)) {
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json model (BPE): vocab[${JSON.stringify(token.slice(0, 40))}] must be an id in [0, ${MAX_TOKEN_ID - 1}], got ${JSON.stringify(id)}`,
        );
      }
    }
    o.merges.forEach((m: unknown, i: number) => {
      const pair = Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string');
      if (typeof m !== 'string' && !pair) {
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json model (BPE): merges[${i}] must be "a b" or ["a", "b"], got ${JSON.stringify(m)?.slice(0, 40)}`,
        );
      }
    });
    if (o.dropout !== null && o.dropout !== undefined && o.dropout !== 0) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `tokenizer.json model (BPE): dropout ${o.dropout} is a training option and is not supported`,
      );
    }
    return new BPE(o.vocab as Record<string, number>, o.merges as string[], {
      unkToken: typeof o.unk_token === 'string' ? o.unk_token : null,
      continuingSubwordPrefix:
        typeof o.continuing_subword_prefix === 'string' ? o.continuing_subword_prefix : null,
      endOfWordSuffix: typeof o.end_of_word_suffix === 'string' ? o.end_of_word_suffix : null,
      fuseUnk: o.fuse_unk === true,
      byteFallback: o.byte_fallback === true,
      ignoreMerges: o.ignore_merges === true,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }
  idToToken(id: number): string | undefined {
    return this.vocabR[id];
  }

  tokenize(word: readonly string[]): ModelToken[] {
    const key = word.join('');
    const cached = this.cache.get(key);
    if (cached) return cached.map((t) => ({ ...t }));
    const result = this.merge(word);
    if (this.cache.size < 10_000) this.cache.set(key, result);
    return result.map((t) => ({ ...t }));
  }

  /**
   * Applies merges lowest rank first, leftmost first among equal ranks (as Hugging Face's
   * `Word::merge_all`), with a heap of candidate pairs over a linked list of symbols: n log n in
   * the word's length, where rescanning every pair after each merge was quadratic (a 4000-character
   * word took seconds).
   */
  private mergeAll(
    symbols: { text: string; start: number; end: number }[],
    strip: (s: string) => string,
  ): { text: string; start: number; end: number }[] {
    const n = symbols.length;
    const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Array.from({ length: n }, (_, i) => i - 1);
    const alive = new Array<boolean>(n).fill(true);
    const heap = new PairHeap();
    const push = (i: number) => {
      const j = next[i];
      if (j < 0) return;
      const rank = this.ranks.get(`${symbols[i].text}\u0000${symbols[j].text}`);
      if (rank !== undefined) heap.push(rank, i, symbols[i].text, symbols[j].text);
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    for (let top = heap.pop(); top !== undefined; top = heap.pop()) {
      const i = top.pos;
      const j = next[i];
      // stale: one side was merged away or changed since this pair was pushed
      if (!alive[i] || j < 0 || symbols[i].text !== top.left || symbols[j].text !== top.right) continue;
      symbols[i] = {
        text: symbols[i].text + strip(symbols[j].text),
        start: symbols[i].start,
        end: symbols[j].end,
      };
      alive[j] = false;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) push(prev[i]);
      push(i);
    }
    return symbols.filter((_, i) => alive[i]);
  }

  private merge(word: readonly string[]): ModelToken[] {
    const { unkToken, continuingSubwordPrefix, endOfWordSuffix, fuseUnk, byteFallback, ignoreMerges } =
      this.opts;
    const whole = word.join('');
    if (ignoreMerges && this.vocab.has(whole))
      return [{ id: this.vocab.get(whole) as number, value: whole, start: 0, end: word.length }];
    // symbols: [text, start, end]; unknown characters are resolved at the end
    let symbols: { text: string; start: number; end: number }[] = word.map((c, i) => {
      let text = c;
      if (i > 0 && continuingSubwordPrefix) text = continuingSubwordPrefix + text;
      if (i === word.length - 1 && endOfWordSuffix) text += endOfWordSuffix;
      return { text, start: i, end: i + 1 };
    });
    const strip = (s: string) =>
      continuingSubwordPrefix && s.startsWith(continuingSubwordPrefix)
        ? s.slice(continuingSubwordPrefix.length)
        : s;
    symbols = this.mergeAll(symbols, strip);
    const out: ModelToken[] = [];
    for (const s of symbols) {
      const id = this.vocab.get(s.text);
      if (id !== undefined) {
        out.push({ id, value: s.text, start: s.start, end: s.end });
        continue;
      }
      if (byteFallback) {
        const bytes = new TextEncoder().encode(s.text);
        const ids = Array.from(bytes, (b) =>
          this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
        );
        if (ids.every((x) => x !== undefined)) {
          for (let i = 0; i < bytes.length; i++) {
            const value = `<0x${bytes[i].toString(16).toUpperCase().padStart(2, '0')}>`;
            out.push({ id: ids[i] as number, value, start: s.start, end: s.end });
          }
          continue;
        }
      }
      if (unkToken === null || !this.vocab.has(unkToken)) {
        // the reference drops characters it cannot represent when there is no unk token
        continue;
      }
      const last = out[out.length - 1];
      if (fuseUnk && last && last.value === unkToken && last.end === s.start) last.end = s.end;
      else out.push({ id: this.vocab.get(unkToken) as number, value: unkToken, start: s.start, end: s.end });
    }
    return out;
  }
}

function splitMerge(m: string, rank: number): [string, string] {
  const i = m.indexOf(' ', 1);
  if (i < 0)
    throw new ProcessorError(
      'E_TOKENIZER_JSON',
      `tokenizer.json model (BPE): merge ${rank} ${JSON.stringify(m)} is not "a b"`,
    );
  return [m.slice(0, i), m.slice(i + 1)];
}

/** SentencePiece's unknown-token penalty: unknown characters score (min score - 10). */
const UNK_PENALTY = 10;

/**
 * Unigram language model (Kudo, 2018): the segmentation with the highest total log
 * probability, found by Viterbi over all vocabulary pieces that match at each position.
 * Characters no piece covers become the unknown token; runs of them fuse into one.
 */
export class Unigram implements Model {
  private readonly pieces: Map<string, number>;
  private readonly scores: number[];
  private readonly tokens: string[];
  private readonly maxPieceLength: number;
  private readonly unkScore: number;
  readonly vocabSize: number;

  constructor(
    vocab: readonly (readonly [string, number])[],
    readonly unkId: number | null,
    readonly byteFallback: boolean,
  ) {
    this.pieces = new Map();
    this.scores = [];
    this.tokens = [];
    let maxLen = 1;
    let minScore = Number.POSITIVE_INFINITY;
    vocab.forEach(([piece, score], id) => {
      if (!this.pieces.has(piece)) this.pieces.set(piece, id);
      this.scores.push(score);
      this.tokens.push(piece);
      maxLen = Math.max(maxLen, Array.from(piece).length);
      minScore = Math.min(minScore, score);
    });
    this.maxPieceLength = maxLen;
    this.unkScore = minScore - UNK_PENALTY;
    this.vocabSize = vocab.length;
  }

  static fromJson(o: Json): Unigram {
    if (!Array.isArray(o.vocab))
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        'tokenizer.json model (Unigram): "vocab" must be an array of [piece, score]',
      );
    if (o.vocab.length > MAX_TOKEN_ID) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `tokenizer.json model (Unigram): ${o.vocab.length} pieces, above the ${MAX_TOKEN_ID} ids float32 holds exactly`,
      );
    }
    o.vocab.forEach((entry: unknown, i: number) => {
      if (
        !Array.isArray(entry) ||
        typeof entry[0] !== 'string' ||
        typeof entry[1] !== 'number' ||
        !Number.isFinite(entry[1])
      ) {
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json model (Unigram): vocab[${i}] must be [piece, finite score], got ${JSON.stringify(entry)?.slice(0, 40)}`,
        );
      }
    });
    const unkId = typeof o.unk_id === 'number' ? o.unk_id : null;
    if (unkId !== null && !(Number.isInteger(unkId) && unkId >= 0 && unkId < o.vocab.length)) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `tokenizer.json model (Unigram): unk_id ${unkId} is outside the vocabulary of ${o.vocab.length}`,
      );
    }
    return new Unigram(o.vocab as [string, number][], unkId, o.byte_fallback === true);
  }

  tokenToId(token: string): number | undefined {
    return this.pieces.get(token);
  }
  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  tokenize(word: readonly string[]): ModelToken[] {
    const n = word.length;
    if (n === 0) return [];
    // best[i]: best score of a segmentation of word[0..i), with the last piece's start and id
    const bestScore = new Float64Array(n + 1).fill(Number.NEGATIVE_INFINITY);
    const bestStart = new Int32Array(n + 1).fill(-1);
    const bestId = new Int32Array(n + 1).fill(-1);
    bestScore[0] = 0;
    for (let start = 0; start < n; start++) {
      if (bestStart[start] < 0 && start !== 0) continue;
      const base = bestScore[start];
      let hasSingle = false;
      let piece = '';
      for (let end = start + 1; end <= Math.min(n, start + this.maxPieceLength); end++) {
        piece += word[end - 1];
        const id = this.pieces.get(piece);
        if (id === undefined) continue;
        const score = base + this.scores[id];
        if (bestStart[end] < 0 || score > bestScore[end]) {
          bestScore[end] = score;
          bestStart[end] = start;
          bestId[end] = id;
        }
        if (end === start + 1) hasSingle = true;
      }
      if (!hasSingle) {
        const score = base + this.unkScore;
        if (bestStart[start + 1] < 0 || score > bestScore[start + 1]) {
          bestScore[start + 1] = score;
          bestStart[start + 1] = start;
          bestId[start + 1] = -1; // unknown
        }
      }
    }
    const out: ModelToken[] = [];
    for (let end = n; end > 0; end = bestStart[end]) {
      const start = bestStart[end];
      const id = bestId[end];
      const value = word.slice(start, end).join('');
      if (id >= 0) out.push({ id, value, start, end });
      else {
        const prev = out[out.length - 1];
        // walking backwards: a following unknown merges into this one
        if (prev && prev.id === -1) {
          prev.value = value + prev.value;
          prev.start = start;
        } else out.push({ id: -1, value, start, end });
      }
    }
    out.reverse();
    const result: ModelToken[] = [];
    for (const t of out) {
      if (t.id >= 0) {
        result.push(t);
        continue;
      }
      if (this.byteFallback) {
        for (const b of new TextEncoder().encode(t.value)) {
          const name = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
          const id = this.pieces.get(name);
          if (id === undefined)
            throw new ProcessorError(
              'E_TOKENIZER_JSON',
              `tokenizer.json model (Unigram): byte_fallback needs the token ${name}`,
            );
          result.push({ id, value: name, start: t.start, end: t.end });
        }
        continue;
      }
      if (this.unkId === null) {
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json model (Unigram): ${JSON.stringify(t.value)} cannot be encoded and there is no unk_id`,
        );
      }
      result.push({ id: this.unkId, value: t.value, start: t.start, end: t.end });
    }
    return result;
  }
}

export function modelFromJson(j: unknown): Model {
  const o = (j ?? {}) as Json;
  switch (o.type) {
    case 'BPE':
      return BPE.fromJson(o);
    case 'Unigram':
      return Unigram.fromJson(o);
    default:
      if (o.type === undefined && typeof o.merges === 'object') return BPE.fromJson(o);
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `tokenizer.json model: type ${JSON.stringify(o.type)} is not supported (BPE, Unigram)`,
      );
  }
}

/** A binary min-heap of merge candidates ordered by (rank, position). */
class PairHeap {
  private readonly items: { rank: number; pos: number; left: string; right: string }[] = [];

  push(rank: number, pos: number, left: string, right: string): void {
    const a = this.items;
    a.push({ rank, pos, left, right });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): { rank: number; pos: number; left: string; right: string } | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop() as (typeof a)[number];
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m])) m = l;
        if (r < a.length && this.less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }

  private less(x: { rank: number; pos: number }, y: { rank: number; pos: number }): boolean {
    return x.rank < y.rank || (x.rank === y.rank && x.pos < y.pos);
  }
}
