/**
 * The `normalizer` section of tokenizer.json. Each normalizer edits a NormalizedString in
 * place so that offsets still point into the original text.
 */
import { ProcessorError } from '../errors.js';
import { pushAll } from './arrays.js';
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

type UnicodeForm = 'NFC' | 'NFD' | 'NFKC' | 'NFKD';

/**
 * Whether canonical ordering puts `b` before `a` when they meet as `a b`, i.e. both are
 * non-starters and ccc(a) > ccc(b). JavaScript exposes no combining classes, but NFD on
 * two already-decomposed code points does nothing except this reordering.
 */
function reorders(a: string, b: string): boolean {
  const ab = a + b;
  return ab.normalize('NFD') !== ab;
}

const starters = new Map<string, boolean>();

/**
 * ccc(c) == 0 for a decomposed code point. U+0334 has the lowest non-zero class (1) and
 * U+0345 the highest (240), so every non-starter reorders against one of them.
 */
function isStarter(c: string): boolean {
  let starter = starters.get(c);
  if (starter === undefined) {
    starter = !reorders(c, '\u0334') && !reorders('\u0345', c);
    starters.set(c, starter);
  }
  return starter;
}

/**
 * The primary composite of `starter` and `c`, or null. `starter` is a decomposed starter
 * or an earlier composite of one, and `c` is next in canonical order, so NFC of the pair
 * is a single code point exactly when the pair composes.
 */
function compose(starter: string, c: string): string | null {
  const r = (starter + c).normalize('NFC');
  // one UTF-16 unit, or one surrogate pair
  return r.length === 1 || (r.length === 2 && r.codePointAt(0)! > 0xffff) ? r : null;
}

/** A code point and its change, as `NormalizedString.transform` takes them. */
type Changed = [string, number];

/**
 * Decomposition as `unicode-normalization-alignments` does it: each code point is fully
 * decomposed (its first code point replaces it: change 0; the others are inserted: +1),
 * then every run of non-starters is stably sorted by combining class. The changes travel
 * with their code points, so after a reorder they describe positions, not sources, which
 * is what the reference's offsets show.
 */
function decompose(chars: readonly string[], form: 'NFD' | 'NFKD'): Changed[] {
  const out: Changed[] = [];
  for (const c of chars) {
    let first = true;
    for (const d of c.normalize(form)) {
      const item: Changed = [d, first ? 0 : 1];
      first = false;
      let at = out.length;
      if (!isStarter(d)) {
        // insertion sort: step back over non-starters of a strictly higher class
        while (at > 0 && reorders(out[at - 1][0], d)) at--;
      }
      out.splice(at, 0, item);
    }
  }
  return out;
}

/**
 * Canonical composition over the decomposed stream, following the reference's state
 * machine: a composite's change is `starter + mark - 1` (two code points became one),
 * uncomposed non-starters wait in `pending` behind the starter and come out after it.
 */
function recompose(decomposed: readonly Changed[]): Changed[] {
  const out: Changed[] = [];
  let starter: Changed | null = null;
  let pending: Changed[] = [];
  // the last pending code point: a later one of the same or lower class is blocked
  let last: string | null = null;
  for (const item of decomposed) {
    const [c, change] = item;
    const cIsStarter = isStarter(c);
    if (starter === null) {
      if (cIsStarter) starter = item;
      else out.push(item);
      continue;
    }
    // blocked: ccc(last) >= ccc(c), i.e. c is a starter or does not sort before `last`
    const blocked = last !== null && (cIsStarter || !reorders(c, last));
    const composite = blocked ? null : compose(starter[0], c);
    if (composite !== null) {
      starter = [composite, starter[1] + change - 1];
    } else if (cIsStarter) {
      out.push(starter);
      pushAll(out, pending);
      starter = item;
      pending = [];
      last = null;
    } else {
      pending.push(item);
      last = c;
    }
  }
  if (starter !== null) out.push(starter);
  pushAll(out, pending);
  return out;
}

/**
 * Unicode normalization with the reference's alignments (`NormalizedString::nfc` and
 * friends run `unicode-normalization-alignments` over the whole string): every output
 * code point carries a change marker, and `transform` turns the markers into ranges.
 * So a composite keeps the range of its first source code point and the marks it
 * swallowed count as removed; reordered marks take ranges by position.
 */
export class UnicodeNormalizer implements Normalizer {
  constructor(readonly form: UnicodeForm) {}

  normalize(s: NormalizedString): void {
    // below U+00A0 every form is the identity and nothing composes (most prompts)
    if (s.chars.every((c) => c.charCodeAt(0) < 0xa0)) return;
    const compatible = this.form === 'NFKC' || this.form === 'NFKD';
    const decomposed = decompose(s.chars, compatible ? 'NFKD' : 'NFD');
    const dest = this.form === 'NFC' || this.form === 'NFKC' ? recompose(decomposed) : decomposed;
    s.transform(0, s.length, dest, 0);
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
