/**
 * NFC / NFD / NFKC / NFKD alignments against the reference: the Rust `tokenizers` 0.23.2
 * Node binding, whose `NormalizedString` aligns each normalized code point through the
 * change markers of `unicode-normalization-alignments`. The binding exposes normalized
 * text but not alignments, so they are compared through encoding offsets: with the T5
 * fixture tokenizer as published, and with a pre-tokenizer that isolates every
 * normalized code point, so each token's offsets are one code point's alignment.
 */
import { seededPicks } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { NormalizedString, Tokenizer } from '../src/index.js';
import { UnicodeNormalizer } from '../src/tokenizer/normalizers.js';
import { expectSameEncoding, reference, t5Config, t5Json } from './rust-tokenizers.js';

const FORMS = ['NFKC', 'NFC', 'NFD', 'NFKD'] as const;

/** Combining marks of many canonical classes (in brackets), so runs of them reorder. */
const MARKS = [
  '\u0301', // acute [230]
  '\u0300', // grave [230]
  '\u0302', // circumflex [230]
  '\u0304', // macron [230]
  '\u0308', // diaeresis [230]
  '\u030a', // ring above [230]
  '\u030c', // caron [230]
  '\u0323', // dot below [220]
  '\u0324', // diaeresis below [220]
  '\u0327', // cedilla [202]
  '\u0328', // ogonek [202]
  '\u0334', // tilde overlay [1]
  '\u0345', // ypogegrammeni [240]
  '\u031b', // horn [216]
  '\u035c', // double breve below [233]
  '\u05b4', // hiriq [14]
  '\u0651', // shadda [33]
  '\u093c', // nukta [7]
  '\u094d', // virama [9]
  '\u3099', // kana voiced mark [8]
  '\u0344', // combining dialytika tonos: decomposes into two marks
  '\u0f73', // Tibetan vowel sign ii: decomposes into two marks of different classes
];

/** Starters, precomposed letters and code points that compose with what follows them. */
const LETTERS = [
  ...Array.from('aeouAEOUcnzixwyωαιΩéÅǖḗẬốẛǭṩởῷᾅçñかはウゝ'),
  '\u212b', // angstrom sign: singleton to Å
  '\u2126', // ohm sign: singleton to Ω
  '\u0958', // qa: excluded from recomposition
  '\u2adc', // forking: excluded, decomposes to U+2ADD U+0338
  ...Array.from('\u0b47\u0b3e\u09c7\u09be'), // starters that compose with each other
  ...Array.from('\u{11099}\u{110ba}'), // Kaithi: an astral composition
  '\u{1d15e}', // musical half note: astral, decomposes with a mark
];

/** Hangul: conjoining jamo (L, V, T), precomposed LV / LVT syllables, LV + T. */
const HANGUL = [
  ...Array.from('\u1100\u1107\u1112\u1161\u1169\u1175\u11a8\u11ab\u11af가각한글'),
  '\uac00\u11a8',
];

/** Compatibility characters: ligatures, full-width, half-width, super/subscripts, squares. */
const COMPAT = [
  ...Array.from('ﬁﬃﬀＡｅ１！ｶﾞﾊﾟ²ⁿ₃㎏㍱½™①ǅǆǱℌſ…㈱ﷺㄱﾡᄀ'),
  '\u{1d400}', // mathematical bold A
  '\u00a0',
  '\u3000',
];

const FILLERS = [' ', ' ', '  ', 'the ', 'Hello', '42', '.', '日本', '🙂', '<extra_id_0>', '\n'];

function randomStrings(count: number, seed: number): string[] {
  const { next: rand, pick } = seededPicks(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let text = '';
    const n = 1 + Math.floor(rand() * 10);
    for (let k = 0; k < n; k++) {
      const r = rand();
      if (r < 0.3) text += pick(LETTERS);
      else if (r < 0.55) text += pick(MARKS);
      else if (r < 0.7) text += pick(HANGUL);
      else if (r < 0.85) text += pick(COMPAT);
      else text += pick(FILLERS);
      // clusters of several marks are what reorders and composes past blocked marks
      while (rand() < 0.35) text += pick(MARKS);
    }
    out.push(text);
  }
  return out;
}

/** Hand-picked cases, each one a rule of the reference's alignments. */
const NAMED = [
  'e\u0301', // composes: the composite keeps only 'e's range
  'A\u0301\u0323', // reorders, then A + dot below compose and the acute stays
  'a\u0323\u0301 x', // ạ composes; nothing composes ạ with the acute, which keeps its range
  'o\u031b\u0301\u0323', // a chain: ơ, then ợ; the acute, sorted last, has no composite
  '\u0301\u0301a', // leading marks with no starter before them
  'é', // decomposes and recomposes to itself
  'ḗ\u0323', // decomposes, the dot below moves in front of the inserted marks
  '\u1e9b\u0323', // ſ composes with its dot above past the lower-class dot below
  '\u1100\u1161\u11a8', // L + V + T jamo compose into one syllable
  '가\u11a8', // an LV syllable takes a trailing jamo
  '각', // an LVT syllable decomposes into three jamo (NFD, NFKD)
  'ﬃ x', // one code point becomes several
  '㎏²',
  'ǅ', // becomes D + ž: the composite ž is an inserted code point
  'ｶﾞ', // half-width kana: map, then compose into ガ
  '\u0958\u093c', // excluded from composition: stays decomposed
  'a\u0345\u0334\u0301', // the highest and lowest classes around a 230
];

const STRINGS = [...NAMED, ...randomStrings(400, 20241127)];

/** The T5 fixture with `form` in place of its NFKC, optionally one token per code point. */
function t5With(form: (typeof FORMS)[number], perCodePoint: boolean): string {
  const json = structuredClone(t5Json);
  json.normalizer.normalizers = json.normalizer.normalizers.map((n: { type: string }) =>
    n.type === 'NFKC' ? { type: form } : n,
  );
  if (perCodePoint) {
    json.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: '[\\s\\S]' }, behavior: 'Isolated', invert: false },
        json.pre_tokenizer,
      ],
    };
  }
  return JSON.stringify(json);
}

describe('Unicode normalizers against unicode-normalization-alignments (tokenizers 0.23.2)', () => {
  it('starts from the fixture normalizer this test assumes', () => {
    expect(t5Json.normalizer.normalizers[0]).toEqual({ type: 'NFKC' });
  });

  for (const form of FORMS) {
    it(`${form} normalizes ${STRINGS.length} strings to String.prototype.normalize's text`, () => {
      const normalizer = new UnicodeNormalizer(form);
      for (const text of STRINGS) {
        const s = NormalizedString.from(text);
        normalizer.normalize(s);
        expect(s.text, JSON.stringify(text)).toBe(text.normalize(form));
        expect(s.starts.length).toBe(s.chars.length);
      }
    });

    for (const perCodePoint of [false, true]) {
      const layout = perCodePoint ? 'one token per code point' : 'fixture pre-tokenizer';
      it(`${form}: ids, tokens and offsets match on ${STRINGS.length} strings (${layout})`, async () => {
        const json = t5With(form, perCodePoint);
        const rust = reference.Tokenizer.fromString(json);
        const ours = Tokenizer.fromJSON(JSON.parse(json), t5Config);
        let rearranged = 0;
        for (const text of STRINGS) {
          await expectSameEncoding(ours, rust, text);
          // count strings where normalization is not code point by code point
          if (text.normalize(form) !== Array.from(text, (c) => c.normalize(form)).join('')) rearranged++;
        }
        // most strings must compose or reorder, or this would not test alignments at all
        expect(rearranged).toBeGreaterThan(STRINGS.length / 2);
      });
    }
  }
});
