/**
 * The `normalizer` section of tokenizer.json. Each normalizer edits a NormalizedString in
 * place so that offsets still point into the original text.
 */
import { ProcessorError } from '../errors.js';
import type { NormalizedString } from './normalized.js';
import { Precompiled } from './precompiled.js';

export interface Normalizer {
  normalize(s: NormalizedString): void;
}

type Json = Record<string, unknown>;

/** A regex or literal from tokenizer.json's `{ "Regex": ... }` / `{ "String": ... }`. */
export function patternOf(p: unknown, where: string): RegExp | string {
  const o = p as Json | undefined;
  if (o && typeof o.String === 'string') return o.String;
  if (o && typeof o.Regex === 'string') {
    try {
      return new RegExp(o.Regex, 'gu');
    } catch (e) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: regex ${JSON.stringify(o.Regex)} is not valid here (${(e as Error).message})`,
      );
    }
  }
  throw new ProcessorError(
    'E_TOKENIZER_JSON',
    `${where}: pattern must be {"String": ...} or {"Regex": ...}, got ${JSON.stringify(p)}`,
  );
}

/** Marks and Hangul vowel/trailing jamo may compose with what precedes them. */
const COMBINING = /^[\p{M}\u1160-\u11FF\uD7B0-\uD7FF]$/u;

/**
 * Unicode normalization with alignments. Text is cut before every code point that cannot
 * compose with its predecessor; each piece is normalized on its own. Where a piece maps
 * code point by code point (full-width letters, ligatures, fractions) every output code
 * point keeps the alignment of its source, extra ones count as inserted, as in the
 * reference; where code points compose, the result spans the whole piece.
 */
export class UnicodeNormalizer implements Normalizer {
  constructor(readonly form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD') {}

  normalize(s: NormalizedString): void {
    const { chars, starts, ends } = s;
    const pieces: [number, number][] = [];
    for (let i = 0; i < chars.length; i++) {
      if (i > 0 && COMBINING.test(chars[i])) pieces[pieces.length - 1][1] = i + 1;
      else pieces.push([i, i + 1]);
    }
    const whole = s.text.normalize(this.form);
    const normalizedPieces = pieces.map(([a, b]) => chars.slice(a, b).join('').normalize(this.form));
    if (normalizedPieces.join('') !== whole) {
      // composition across our cut points (rare scripts): keep ids right, coarsen offsets
      pieces.splice(0, pieces.length, [0, chars.length]);
      normalizedPieces.splice(0, normalizedPieces.length, whole);
    }
    const outChars: string[] = [];
    const outStarts: number[] = [];
    const outEnds: number[] = [];
    pieces.forEach(([a, b], p) => {
      const perChar = chars.slice(a, b).map((c) => c.normalize(this.form));
      if (perChar.join('') === normalizedPieces[p]) {
        for (let i = a; i < b; i++) {
          for (const c of perChar[i - a]) {
            outChars.push(c);
            outStarts.push(starts[i]);
            outEnds.push(ends[i]);
          }
        }
      } else {
        for (const c of normalizedPieces[p]) {
          outChars.push(c);
          outStarts.push(starts[a]);
          outEnds.push(ends[b - 1]);
        }
      }
    });
    s.chars = outChars;
    s.starts = outStarts;
    s.ends = outEnds;
  }
}

export class Replace implements Normalizer {
  constructor(
    readonly pattern: RegExp | string,
    readonly content: string,
  ) {}
  normalize(s: NormalizedString): void {
    s.replace(this.pattern, this.content);
  }
}

export class Lowercase implements Normalizer {
  normalize(s: NormalizedString): void {
    // one code point in, possibly several out (e.g. U+0130): inserted ones share its alignment
    const dest: [string, number][] = [];
    for (const c of s.chars) {
      const lower = Array.from(c.toLowerCase());
      for (let i = 0; i < lower.length; i++) dest.push([lower[i], i === 0 ? 0 : 1]);
    }
    s.transform(0, s.length, dest, 0);
  }
}

export class Strip implements Normalizer {
  constructor(
    readonly left: boolean,
    readonly right: boolean,
  ) {}
  normalize(s: NormalizedString): void {
    const ws = /^\p{White_Space}$/u;
    let end = s.length;
    if (this.right) while (end > 0 && ws.test(s.chars[end - 1])) end--;
    let start = 0;
    if (this.left) while (start < end && ws.test(s.chars[start])) start++;
    const kept = s.slice(start, end);
    s.chars = kept.chars;
    s.starts = kept.starts;
    s.ends = kept.ends;
  }
}

export class Prepend implements Normalizer {
  constructor(readonly prefix: string) {}
  normalize(s: NormalizedString): void {
    s.prepend(this.prefix);
  }
}

export class SequenceNormalizer implements Normalizer {
  constructor(readonly normalizers: readonly Normalizer[]) {}
  normalize(s: NormalizedString): void {
    for (const n of this.normalizers) n.normalize(s);
  }
}

export function normalizerFromJson(j: unknown, where = 'tokenizer.json normalizer'): Normalizer | null {
  if (j === null || j === undefined) return null;
  const o = j as Json;
  switch (o.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return new UnicodeNormalizer(o.type);
    case 'Replace':
      return new Replace(patternOf(o.pattern, `${where} Replace`), String(o.content ?? ''));
    case 'Lowercase':
      return new Lowercase();
    case 'Strip':
      return new Strip(o.strip_left !== false, o.strip_right !== false);
    case 'Prepend':
      return new Prepend(String(o.prepend ?? ''));
    case 'Precompiled':
      return Precompiled.fromBase64(o.precompiled_charsmap, `${where} Precompiled`);
    case 'Sequence': {
      if (!Array.isArray(o.normalizers))
        throw new ProcessorError('E_TOKENIZER_JSON', `${where}: Sequence without "normalizers" array`);
      return new SequenceNormalizer(
        o.normalizers
          .map((n, i) => normalizerFromJson(n, `${where}[${i}]`))
          .filter((n): n is Normalizer => n !== null),
      );
    }
    default:
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: normalizer type ${JSON.stringify(o.type)} is not supported`,
      );
  }
}
