/**
 * A `tokenizer.json` tokenizer (the Hugging Face tokenizers pipeline): added tokens are
 * split out first, the rest is normalized, pre-tokenized and run through the model, then
 * the post-processor adds special tokens. Offsets are counted in code points of the input
 * text, as Python reports them. Pure TypeScript, so Node and browsers give the same ids.
 */
import { checkOptionNames, describe, ProcessorError } from '../errors.js';
import { type Decoder, decoderFromJson } from './decoders.js';
import { isTokenId, MAX_TOKEN_ID, type Model, modelFromJson } from './models.js';
import { NormalizedString } from './normalized.js';
import { type Normalizer, normalizerFromJson } from './normalizers.js';
import { type PostProcessor, postProcessorFromJson } from './post-processors.js';
import { type PreTokenizer, preTokenizerFromJson } from './pre-tokenizers.js';

export interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly singleWord: boolean;
  readonly normalized: boolean;
}

/** One encoded sequence; all arrays have one entry per token. */
export interface Encoding {
  ids: number[];
  tokens: string[];
  /** [start, end) in code points of the input text; [0, 0] for inserted special tokens */
  offsets: [number, number][];
  typeIds: number[];
  specialTokensMask: number[];
  attentionMask: number[];
}

export interface EncodeOptions {
  /** add the post-processor's special tokens (OPT: `</s>` first; T5: `</s>` last). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
  /** transformers' old `clean_up_tokenization_spaces` (" ." -> "."); default from tokenizer_config, else false */
  cleanUpTokenizationSpaces?: boolean;
}

type Json = Record<string, unknown>;

const ENCODE_OPTION_NAMES = Object.keys({ addSpecialTokens: true } satisfies Record<
  keyof EncodeOptions,
  true
>);
const DECODE_OPTION_NAMES = Object.keys({
  skipSpecialTokens: true,
  cleanUpTokenizationSpaces: true,
} satisfies Record<keyof DecodeOptions, true>);

/**
 * tokenizer_config.json's fields this tokenizer reads, checked by type so a broken file is
 * named rather than silently ignored: named tokens (`pad_token`, ...) are a string or an
 * AddedToken object `{"content": ...}` (or null: none), `clean_up_tokenization_spaces` a boolean.
 */
function checkTokenizerConfig(config: Json): void {
  for (const [k, v] of Object.entries(config)) {
    if (!k.endsWith('_token') || v === null || typeof v === 'string') continue;
    if (typeof v === 'object' && !Array.isArray(v) && typeof (v as Json).content === 'string') continue;
    throw new ProcessorError(
      'E_TOKENIZER_JSON',
      `tokenizer_config.json: ${k} must be a token string or {"content": "..."}, got ${describe(v)}`,
    );
  }
  const clean = config.clean_up_tokenization_spaces;
  if (clean !== undefined && clean !== null && typeof clean !== 'boolean') {
    throw new ProcessorError(
      'E_TOKENIZER_JSON',
      `tokenizer_config.json: clean_up_tokenization_spaces must be true or false, got ${describe(clean)}`,
    );
  }
}

const WHITESPACE = /^\p{White_Space}$/u;
const WORD = /^[\p{L}\p{N}\p{M}_]$/u;

export class Tokenizer {
  readonly addedTokens: readonly AddedToken[];
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly addedById = new Map<number, AddedToken>();
  /** tokenizer_config.json's named tokens (pad_token, eos_token, ...), as strings */
  readonly specialTokens: Readonly<Record<string, string>>;
  readonly cleanUpTokenizationSpaces: boolean;

  constructor(
    readonly model: Model,
    readonly normalizer: Normalizer | null,
    readonly preTokenizer: PreTokenizer | null,
    readonly postProcessor: PostProcessor | null,
    readonly decoder: Decoder | null,
    addedTokens: readonly AddedToken[],
    config: Json = {},
  ) {
    this.addedTokens = addedTokens;
    for (const t of addedTokens) {
      this.addedByContent.set(t.content, t);
      this.addedById.set(t.id, t);
    }
    const named: Record<string, string> = {};
    for (const [k, v] of Object.entries(config)) {
      if (!k.endsWith('_token')) continue;
      if (typeof v === 'string') named[k] = v;
      else if (v && typeof v === 'object' && typeof (v as Json).content === 'string')
        named[k] = (v as Json).content as string;
    }
    this.specialTokens = named;
    this.cleanUpTokenizationSpaces = config.clean_up_tokenization_spaces === true;
  }

  /**
   * Build from parsed `tokenizer.json` (and optionally `tokenizer_config.json`), objects
   * rather than paths so that it works wherever the JSON came from (fetch, file, bundle).
   */
  static fromJSON(tokenizerJson: unknown, tokenizerConfigJson?: unknown): Tokenizer {
    if (typeof tokenizerJson !== 'object' || tokenizerJson === null || Array.isArray(tokenizerJson)) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `tokenizer.json: expected a JSON object, got ${describe(tokenizerJson)}`,
      );
    }
    const j = tokenizerJson as Json;
    if (j.model === undefined)
      throw new ProcessorError('E_TOKENIZER_JSON', 'tokenizer.json: no "model" section');
    const added = (Array.isArray(j.added_tokens) ? j.added_tokens : []).map((t, i): AddedToken => {
      const o = t as Json;
      if (typeof o?.id !== 'number' || typeof o.content !== 'string' || o.content === '') {
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json: added_tokens[${i}] needs a numeric "id" and a non-empty "content"`,
        );
      }
      if (!isTokenId(o.id)) {
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json: added_tokens[${i}].id must be an integer in [0, ${MAX_TOKEN_ID - 1}], got ${String(o.id)}`,
        );
      }
      return {
        id: o.id,
        content: o.content,
        special: o.special === true,
        lstrip: o.lstrip === true,
        rstrip: o.rstrip === true,
        singleWord: o.single_word === true,
        normalized: o.normalized === true,
      };
    });
    const config = tokenizerConfigJson ?? {};
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `tokenizer_config.json: expected a JSON object, got ${describe(config)}`,
      );
    }
    checkTokenizerConfig(config as Json);
    return new Tokenizer(
      modelFromJson(j.model),
      normalizerFromJson(j.normalizer),
      preTokenizerFromJson(j.pre_tokenizer),
      postProcessorFromJson(j.post_processor),
      decoderFromJson(j.decoder),
      added,
      config as Json,
    );
  }

  get vocabSize(): number {
    let n = this.model.vocabSize;
    for (const t of this.addedTokens) n = Math.max(n, t.id + 1);
    return n;
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.tokenToId(token);
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToToken(id);
  }

  /** Id of a named token from tokenizer_config.json (`pad_token`, `eos_token`, ...). */
  namedTokenId(name: string): number | undefined {
    const content = this.specialTokens[name];
    return content === undefined ? undefined : this.tokenToId(content);
  }

  encode(text: string, pair?: string | null, options: EncodeOptions = {}): Encoding {
    checkOptionNames(options, ENCODE_OPTION_NAMES, 'encode options');
    checkText(text, 'text');
    if (pair !== undefined && pair !== null) checkText(pair, 'text pair');
    const a = this.encodeSequence(text, 0);
    const b = pair === undefined || pair === null ? null : this.encodeSequence(pair, 1);
    const addSpecial = options.addSpecialTokens ?? true;
    if (this.postProcessor) return this.postProcessor.process(a, b, addSpecial);
    return b ? concatEncodings(a, b) : a;
  }

  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): Encoding[] {
    if (!Array.isArray(texts))
      throw new ProcessorError('E_TEXT', `text batch must be an array of strings, got ${describe(texts)}`);
    return texts.map((t, i) => {
      checkText(t, `text[${i}]`);
      return this.encode(t, null, options);
    });
  }

  decode(ids: readonly (number | bigint)[], options: DecodeOptions = {}): string {
    checkOptionNames(options, DECODE_OPTION_NAMES, 'decode options');
    const skip = options.skipSpecialTokens ?? false;
    const tokens: string[] = [];
    for (const raw of ids) {
      const id = Number(raw);
      const added = this.addedById.get(id);
      if (added) {
        if (!(skip && added.special)) tokens.push(added.content);
        continue;
      }
      const token = this.model.idToToken(id);
      if (token === undefined)
        throw new ProcessorError(
          'E_TOKEN_ID',
          `decode: token id ${raw} is outside the vocabulary (size ${this.vocabSize})`,
        );
      tokens.push(token);
    }
    let text = this.decoder ? this.decoder.decodeChain(tokens).join('') : tokens.join(' ');
    if (options.cleanUpTokenizationSpaces ?? this.cleanUpTokenizationSpaces) text = cleanUp(text);
    return text;
  }

  batchDecode(batch: readonly (readonly (number | bigint)[])[], options: DecodeOptions = {}): string[] {
    return batch.map((ids) => this.decode(ids, options));
  }

  /** One sequence without special tokens: added tokens, then normalize, pre-tokenize, model. */
  private encodeSequence(text: string, typeId: number): Encoding {
    const enc: Encoding = {
      ids: [],
      tokens: [],
      offsets: [],
      typeIds: [],
      specialTokensMask: [],
      attentionMask: [],
    };
    const push = (id: number, token: string, offset: [number, number]) => {
      enc.ids.push(id);
      enc.tokens.push(token);
      enc.offsets.push(offset);
      enc.typeIds.push(typeId);
      enc.specialTokensMask.push(0);
      enc.attentionMask.push(1);
    };
    const chars = Array.from(text);
    for (const part of this.splitAdded(chars, (t) => !t.normalized)) {
      if (part.token) {
        push(part.token.id, part.token.content, [part.start, part.end]);
        continue;
      }
      const normalized = NormalizedString.from(chars.slice(part.start, part.end).join(''), part.start);
      this.normalizer?.normalize(normalized);
      // tokens marked `normalized` are matched after normalization
      for (const sub of this.splitAdded(normalized.chars, (t) => t.normalized)) {
        if (sub.token) {
          push(sub.token.id, sub.token.content, normalized.originalRange(sub.start, sub.end));
          continue;
        }
        const piece = normalized.slice(sub.start, sub.end);
        const words = this.preTokenizer ? this.preTokenizer.preTokenize([piece]) : [piece];
        for (const w of words) {
          for (const t of this.model.tokenize(w.chars)) push(t.id, t.value, w.originalRange(t.start, t.end));
        }
      }
    }
    return enc;
  }

  /**
   * Cut `chars` at added tokens (leftmost, longest first), honoring lstrip/rstrip (the
   * match swallows neighbouring whitespace) and single_word (no word character around).
   */
  private splitAdded(
    chars: readonly string[],
    which: (t: AddedToken) => boolean,
  ): { start: number; end: number; token?: AddedToken }[] {
    const candidates = this.addedTokens.filter(which).map((t) => ({ t, cps: Array.from(t.content) }));
    const out: { start: number; end: number; token?: AddedToken }[] = [];
    if (candidates.length === 0) return chars.length ? [{ start: 0, end: chars.length }] : [];
    let textStart = 0;
    let i = 0;
    while (i < chars.length) {
      let best: { t: AddedToken; len: number } | null = null;
      for (const { t, cps } of candidates) {
        if (cps.length > chars.length - i || (best && cps.length <= best.len)) continue;
        let ok = true;
        for (let k = 0; k < cps.length && ok; k++) ok = chars[i + k] === cps[k];
        if (!ok) continue;
        if (
          t.singleWord &&
          ((i > 0 && WORD.test(chars[i - 1])) ||
            (i + cps.length < chars.length && WORD.test(chars[i + cps.length])))
        )
          continue;
        best = { t, len: cps.length };
      }
      if (!best) {
        i++;
        continue;
      }
      let start = i;
      let end = i + best.len;
      if (best.t.lstrip) while (start > textStart && WHITESPACE.test(chars[start - 1])) start--;
      if (best.t.rstrip) while (end < chars.length && WHITESPACE.test(chars[end])) end++;
      if (start > textStart) out.push({ start: textStart, end: start });
      out.push({ start, end, token: best.t });
      textStart = end;
      i = end;
    }
    if (textStart < chars.length) out.push({ start: textStart, end: chars.length });
    return out;
  }
}

function checkText(text: unknown, what: string): asserts text is string {
  if (typeof text !== 'string')
    throw new ProcessorError('E_TEXT', `${what} must be a string, got ${describe(text)}`);
}

export function concatEncodings(a: Encoding, b: Encoding): Encoding {
  return {
    ids: [...a.ids, ...b.ids],
    tokens: [...a.tokens, ...b.tokens],
    offsets: [...a.offsets, ...b.offsets],
    typeIds: [...a.typeIds, ...b.typeIds],
    specialTokensMask: [...a.specialTokensMask, ...b.specialTokensMask],
    attentionMask: [...a.attentionMask, ...b.attentionMask],
  };
}

/** transformers' `clean_up_tokenization`: English spacing before punctuation and contractions. */
function cleanUp(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
