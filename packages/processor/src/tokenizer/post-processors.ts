/**
 * The `post_processor` section of tokenizer.json: where special tokens go around one
 * sequence or a pair (OPT's template `</s> $A`, T5's `$A </s>`, RoBERTa's
 * `<s> $A </s></s> $B </s>`), plus byte-level offset trimming.
 */
import { ProcessorError } from '../errors.js';
import { pushAll } from './arrays.js';
import type { Encoding } from './tokenizer.js';

export interface PostProcessor {
  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding;
}

type Json = Record<string, unknown>;

function empty(): Encoding {
  return { ids: [], tokens: [], offsets: [], typeIds: [], specialTokensMask: [], attentionMask: [] };
}

function appendSpecial(
  out: Encoding,
  ids: readonly number[],
  tokens: readonly string[],
  typeId: number,
): void {
  ids.forEach((id, i) => {
    out.ids.push(id);
    out.tokens.push(tokens[i]);
    out.offsets.push([0, 0]);
    out.typeIds.push(typeId);
    out.specialTokensMask.push(1);
    out.attentionMask.push(1);
  });
}

function appendSequence(out: Encoding, e: Encoding, typeId: number | null): void {
  pushAll(out.ids, e.ids);
  pushAll(out.tokens, e.tokens);
  pushAll(out.offsets, e.offsets);
  pushAll(out.typeIds, typeId === null ? e.typeIds : e.typeIds.map(() => typeId));
  pushAll(out.specialTokensMask, e.specialTokensMask);
  pushAll(out.attentionMask, e.attentionMask);
}

type Piece = { special: string; typeId: number } | { sequence: 'A' | 'B'; typeId: number };

export class TemplateProcessing implements PostProcessor {
  constructor(
    readonly single: readonly Piece[],
    readonly pair: readonly Piece[],
    readonly specials: ReadonlyMap<string, { ids: number[]; tokens: string[] }>,
  ) {}

  static fromJson(o: Json): TemplateProcessing {
    const parse = (tpl: unknown, name: string): Piece[] => {
      if (!Array.isArray(tpl))
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json post_processor: template "${name}" must be an array`,
        );
      return tpl.map((p) => {
        const q = p as Json;
        if (q.SpecialToken) {
          const s = q.SpecialToken as Json;
          return { special: String(s.id), typeId: Number(s.type_id ?? 0) };
        }
        if (q.Sequence) {
          const s = q.Sequence as Json;
          return { sequence: s.id === 'B' ? 'B' : 'A', typeId: Number(s.type_id ?? 0) };
        }
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json post_processor: template piece ${JSON.stringify(p)} is neither SpecialToken nor Sequence`,
        );
      });
    };
    const specials = new Map<string, { ids: number[]; tokens: string[] }>();
    for (const [k, v] of Object.entries((o.special_tokens ?? {}) as Json)) {
      const s = v as Json;
      specials.set(k, { ids: (s.ids as number[]) ?? [], tokens: (s.tokens as string[]) ?? [] });
    }
    const single = parse(o.single, 'single');
    const pair = parse(o.pair ?? o.single, 'pair');
    for (const p of [...single, ...pair]) {
      if ('special' in p && !specials.has(p.special)) {
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `tokenizer.json post_processor: special token ${JSON.stringify(p.special)} is used but not defined`,
        );
      }
    }
    return new TemplateProcessing(single, pair, specials);
  }

  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding {
    const out = empty();
    if (!addSpecialTokens) {
      appendSequence(out, a, null);
      if (b) appendSequence(out, b, null);
      return out;
    }
    for (const p of b ? this.pair : this.single) {
      if ('special' in p) {
        const s = this.specials.get(p.special) as { ids: number[]; tokens: string[] };
        appendSpecial(out, s.ids, s.tokens, p.typeId);
      } else if (p.sequence === 'A') appendSequence(out, a, p.typeId);
      else if (b) appendSequence(out, b, p.typeId);
    }
    return out;
  }
}

/**
 * Byte-level offset trimming: offsets of tokens that start or end with the byte-level
 * space (Ġ) exclude that space.
 */
function trimOffsets(e: Encoding): void {
  e.tokens.forEach((t, i) => {
    const [start, end] = e.offsets[i];
    if (e.specialTokensMask[i]) return;
    const chars = Array.from(t);
    let lead = 0;
    while (lead < chars.length && chars[lead] === 'Ġ') lead++;
    let trail = 0;
    while (trail < chars.length - lead && chars[chars.length - 1 - trail] === 'Ġ') trail++;
    let s = start;
    let en = end;
    if (lead > 0 && s < en) s = Math.min(s + lead, en);
    if (trail > 0 && s < en) en = Math.max(en - trail, s);
    e.offsets[i] = [s, en];
  });
}

export class ByteLevelProcessing implements PostProcessor {
  constructor(readonly trim: boolean) {}
  process(a: Encoding, b: Encoding | null): Encoding {
    const out = empty();
    appendSequence(out, a, null);
    if (b) appendSequence(out, b, null);
    if (this.trim) trimOffsets(out);
    return out;
  }
}

/** `cls A sep` / `cls A sep sep B sep` (RoBERTa) or `cls A sep B sep` (BERT). */
export class ClsSepProcessing implements PostProcessor {
  constructor(
    readonly cls: [string, number],
    readonly sep: [string, number],
    readonly doubleSep: boolean,
    readonly trim: boolean,
  ) {}
  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding {
    if (this.trim) {
      trimOffsets(a);
      if (b) trimOffsets(b);
    }
    const out = empty();
    if (!addSpecialTokens) {
      appendSequence(out, a, null);
      if (b) appendSequence(out, b, null);
      return out;
    }
    appendSpecial(out, [this.cls[1]], [this.cls[0]], 0);
    appendSequence(out, a, 0);
    appendSpecial(out, [this.sep[1]], [this.sep[0]], 0);
    if (b) {
      const typeId = this.doubleSep ? 0 : 1;
      if (this.doubleSep) appendSpecial(out, [this.sep[1]], [this.sep[0]], typeId);
      appendSequence(out, b, typeId);
      appendSpecial(out, [this.sep[1]], [this.sep[0]], typeId);
    }
    return out;
  }
}

export class SequenceProcessing implements PostProcessor {
  constructor(readonly steps: readonly PostProcessor[]) {}
  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding {
    // byte-level trimming acts on each sequence alone; the first other step joins them
    let first = a;
    let second = b;
    let joined: Encoding | null = null;
    for (const step of this.steps) {
      if (joined) joined = step.process(joined, null, addSpecialTokens);
      else if (step instanceof ByteLevelProcessing) {
        first = step.process(first, null);
        second = second ? step.process(second, null) : null;
      } else joined = step.process(first, second, addSpecialTokens);
    }
    return joined ?? (second ? new ByteLevelProcessing(false).process(first, second) : first);
  }
}

export function postProcessorFromJson(
  j: unknown,
  where = 'tokenizer.json post_processor',
): PostProcessor | null {
  if (j === null || j === undefined) return null;
  const o = j as Json;
  const pairOf = (v: unknown, name: string): [string, number] => {
    if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'number') {
      throw new ProcessorError('E_TOKENIZER_JSON', `${where}: "${name}" must be [token, id]`);
    }
    return [v[0], v[1]];
  };
  switch (o.type) {
    case 'TemplateProcessing':
      return TemplateProcessing.fromJson(o);
    case 'ByteLevel':
      return new ByteLevelProcessing(o.trim_offsets !== false);
    case 'RobertaProcessing':
      return new ClsSepProcessing(pairOf(o.cls, 'cls'), pairOf(o.sep, 'sep'), true, o.trim_offsets !== false);
    case 'BertProcessing':
      return new ClsSepProcessing(pairOf(o.cls, 'cls'), pairOf(o.sep, 'sep'), false, false);
    case 'Sequence': {
      if (!Array.isArray(o.processors))
        throw new ProcessorError('E_TOKENIZER_JSON', `${where}: Sequence without "processors" array`);
      return new SequenceProcessing(
        o.processors
          .map((p, i) => postProcessorFromJson(p, `${where}[${i}]`))
          .filter((p): p is PostProcessor => p !== null),
      );
    }
    default:
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: post-processor type ${JSON.stringify(o.type)} is not supported`,
      );
  }
}
