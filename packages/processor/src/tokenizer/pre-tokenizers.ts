/**
 * The `pre_tokenizer` section of tokenizer.json: cuts normalized text into the words the
 * model sees, keeping alignments.
 */
import { ProcessorError } from '../errors.js';
import { pushAll } from './arrays.js';
import { NormalizedString, type SplitBehavior } from './normalized.js';
import { patternOf } from './normalizers.js';

export interface PreTokenizer {
  preTokenize(pieces: NormalizedString[]): NormalizedString[];
}

type Json = Record<string, unknown>;

/**
 * GPT-2's word pattern. `\s` is spelled `\p{White_Space}` because JavaScript's `\s`
 * also matches U+FEFF and misses U+0085, unlike the Oniguruma regex the reference uses.
 */
const GPT2_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/** GPT-2's reversible byte -> printable code point table (bytes_to_unicode). */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return table;
})();
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const encoder = new TextEncoder();

export class ByteLevel implements PreTokenizer {
  constructor(
    readonly addPrefixSpace: boolean,
    readonly useRegex: boolean,
  ) {}

  preTokenize(pieces: NormalizedString[]): NormalizedString[] {
    const out: NormalizedString[] = [];
    for (const p of pieces) {
      if (this.addPrefixSpace && !p.text.startsWith(' ')) p.prepend(' ');
      const words = this.useRegex ? p.split(GPT2_PATTERN, 'Isolated') : [p];
      for (const w of words) {
        // every UTF-8 byte becomes one printable code point aligned to its source character
        const dest: [string, number][] = [];
        for (const c of w.chars) {
          const bytes = encoder.encode(c);
          for (let i = 0; i < bytes.length; i++) dest.push([BYTE_TO_CHAR[bytes[i]], i === 0 ? 0 : 1]);
        }
        w.transform(0, w.length, dest, 0);
        out.push(w);
      }
    }
    return out;
  }
}

export type PrependScheme = 'always' | 'first' | 'never';

export class Metaspace implements PreTokenizer {
  constructor(
    readonly replacement: string,
    readonly prependScheme: PrependScheme,
    readonly splitWords: boolean,
  ) {}

  preTokenize(pieces: NormalizedString[]): NormalizedString[] {
    const out: NormalizedString[] = [];
    pieces.forEach((p) => {
      p.replace(' ', this.replacement);
      const atStart = p.length > 0 && p.starts[0] === 0;
      if (
        !p.text.startsWith(this.replacement) &&
        (this.prependScheme === 'always' || (this.prependScheme === 'first' && atStart))
      ) {
        p.prepend(this.replacement);
      }
      if (this.splitWords) pushAll(out, p.split(this.replacement, 'MergedWithNext'));
      else out.push(p);
    });
    return out;
  }
}

export class SplitPreTokenizer implements PreTokenizer {
  constructor(
    readonly pattern: RegExp | string | ((c: string) => boolean),
    readonly behavior: SplitBehavior,
    readonly invert: boolean,
  ) {}
  preTokenize(pieces: NormalizedString[]): NormalizedString[] {
    return pieces.flatMap((p) => p.split(this.pattern, this.behavior, this.invert));
  }
}

export class SequencePreTokenizer implements PreTokenizer {
  constructor(readonly steps: readonly PreTokenizer[]) {}
  preTokenize(pieces: NormalizedString[]): NormalizedString[] {
    return this.steps.reduce((acc, step) => step.preTokenize(acc), pieces);
  }
}

const isWhitespace = (c: string) => /^\p{White_Space}$/u.test(c);

export function metaspacePrependScheme(o: Json): PrependScheme {
  if (o.prepend_scheme === 'always' || o.prepend_scheme === 'first' || o.prepend_scheme === 'never')
    return o.prepend_scheme;
  // files written before prepend_scheme existed carry add_prefix_space
  return o.add_prefix_space === false ? 'never' : 'always';
}

export function preTokenizerFromJson(
  j: unknown,
  where = 'tokenizer.json pre_tokenizer',
): PreTokenizer | null {
  if (j === null || j === undefined) return null;
  const o = j as Json;
  switch (o.type) {
    case 'ByteLevel':
      return new ByteLevel(o.add_prefix_space === true, o.use_regex !== false);
    case 'Metaspace':
      return new Metaspace(String(o.replacement ?? '▁'), metaspacePrependScheme(o), o.split !== false);
    case 'WhitespaceSplit':
      return new SplitPreTokenizer(isWhitespace, 'Removed', false);
    case 'Whitespace':
      return new SplitPreTokenizer(/\w+|[^\w\s]+/gu, 'Removed', true);
    case 'Split': {
      const behavior = o.behavior as SplitBehavior;
      if (!['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'].includes(behavior)) {
        throw new ProcessorError(
          'E_TOKENIZER_JSON',
          `${where}: Split behavior ${JSON.stringify(o.behavior)} is not supported`,
        );
      }
      return new SplitPreTokenizer(patternOf(o.pattern, `${where} Split`), behavior, o.invert === true);
    }
    case 'Sequence': {
      if (!Array.isArray(o.pretokenizers))
        throw new ProcessorError('E_TOKENIZER_JSON', `${where}: Sequence without "pretokenizers" array`);
      return new SequencePreTokenizer(
        o.pretokenizers
          .map((p, i) => preTokenizerFromJson(p, `${where}[${i}]`))
          .filter((p): p is PreTokenizer => p !== null),
      );
    }
    default:
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: pre-tokenizer type ${JSON.stringify(o.type)} is not supported`,
      );
  }
}

export { NormalizedString };
