/**
 * `Precompiled` (SentencePiece's charsmap normalizer, first in the published Flan-T5
 * tokenizer.json) against the reference: the Rust `tokenizers` 0.23.2 Node binding,
 * which applies charsmaps through `spm_precompiled`.
 *
 * The real nmt_nfkc charsmap cannot be downloaded here, so the tests build charsmaps with
 * `./darts.ts` and hand the same bytes to both implementations: first the normalizer on
 * its own, then inside the T5 fixture's tokenizer.json (ids, tokens, offsets, decode).
 */
import { join } from 'node:path';
import { fixtures, seededPicks } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { NormalizedString, Precompiled, ProcessorError, Tokenizer } from '../src/index.js';
import { buildCharsmap, buildDoubleArray, referencePrefixValues } from './darts.js';
import { expectSameEncoding, readJson, reference, t5Config, t5Json } from './rust-tokenizers.js';

const toBase64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

/** Full-width forms U+FF01..U+FF5E sit 0xFEE0 above their ASCII counterparts. */
const fullWidth = (ascii: string): [string, string][] =>
  Array.from(ascii, (c) => [String.fromCodePoint(c.codePointAt(0)! + 0xfee0), c]);

/**
 * An nmt_nfkc-like rule set. Keys are matched per grapheme cluster, so the multi code
 * point keys are clusters (base + combining marks); single-code-point keys that share
 * UTF-8 lead bytes (EF BC xx, EF AC xx, E2 80 xx) give the trie shared prefixes.
 */
const RULES: [string, string][] = [
  ...fullWidth('ABCXYZabcxyz0159!?()'),
  ['ﬁ', 'fi'],
  ['ﬂ', 'fl'],
  ['ﬀ', 'ff'],
  ['ﬃ', 'ffi'],
  ['½', '1⁄2'],
  ['™', 'TM'],
  ['…', '...'],
  ['㍱', 'hPa'],
  ['\u00a0', ' '], // no-break space
  ['\u3000', ' '], // ideographic space
  ['\u2002', ' '], // en space
  ['e\u0301', 'é'],
  ['a\u0308', 'ä'],
  ['o\u0302', 'ô'],
  ['o\u0302\u0301', 'ố'], // never reached: its prefix o + U+0302 is found first
  ['ｶ', 'カ'],
  ['ﾞ', '\u3099'],
  ['ｶﾞ', 'ガ'], // a 6-byte cluster: the reference skips whole-cluster lookup for it
  ['\u200b', ''], // zero-width space is deleted
  ['\u00ad', ''], // soft hyphen too
  ['\ufeff', ''],
];

const { cases } = readJson(join(fixtures.tokenizersT5, 'cases.json')) as { cases: { text: string }[] };

/**
 * The T5 fixture with `charsmap` in front of its normalizers. 'published' is the Flan-T5
 * layout (the charsmap does NFKC's job, so the fixture's NFKC stand-in is dropped);
 * 'chained' keeps every fixture normalizer after the charsmap.
 */
function t5WithCharsmap(charsmap: Uint8Array, layout: 'published' | 'chained'): string {
  const json = structuredClone(t5Json);
  const existing = json.normalizer.normalizers as { type: string }[];
  json.normalizer = {
    type: 'Sequence',
    normalizers: [
      { type: 'Precompiled', precompiled_charsmap: toBase64(charsmap) },
      ...(layout === 'published' ? existing.filter((n) => n.type !== 'NFKC') : existing),
    ],
  };
  return JSON.stringify(json);
}

const FILLERS = [
  'the',
  'a',
  'Hello',
  'x',
  'Q',
  '42',
  '.',
  ',',
  '?',
  "'s",
  ' ',
  ' ',
  '  ',
  '   ',
  '\t',
  '\n',
  '\r\n',
  '日本',
  '語',
  '東京タワー',
  'テ',
  '🙂',
  '🐱',
  '👍🏽',
  '👨‍👩‍👧',
  '🇯🇵',
  '✨',
  '\u0301', // a combining mark that attaches to whatever precedes it
  '\u0323',
  'e',
  'o',
  'a',
  '<image>',
  '<extra_id_0>',
];

function randomStrings(count: number, seed: number): string[] {
  const { next: rand, pick } = seededPicks(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const parts: string[] = [];
    const n = 1 + Math.floor(rand() * 12);
    for (let k = 0; k < n; k++) parts.push(rand() < 0.45 ? pick(RULES)[0] : pick(FILLERS));
    out.push(parts.join(''));
  }
  return out;
}

/** Each key alone, between words, glued to letters, doubled, and followed by marks. */
function keyContexts(): string[] {
  const out: string[] = [];
  for (const [key] of RULES) {
    out.push(
      key,
      `a ${key} b`,
      `x${key}y`,
      `${key}${key}`,
      ` ${key} `,
      `${key}\u0301`,
      `${key}\u0301\u0323`,
      `${key}<image>${key}`,
    );
  }
  return out;
}

const STRINGS = [...cases.map((c) => c.text), ...keyContexts(), ...randomStrings(300, 20240607)];

describe('darts builder', () => {
  it('puts every key where a Darts prefix search finds it, and nothing else', () => {
    const charsmap = buildCharsmap(RULES);
    const ours = new Precompiled(charsmap);
    const probes = [...RULES.map(([k]) => k), 'A', 'e', 'o\u0302\u0301', 'ｶﾞ', '\uff20', 'ﬄ', '日', '🙂'];
    for (const probe of probes) {
      const expected = referencePrefixValues(RULES, probe);
      expect(ours.transform(probe), probe).toBe(expected.length > 0 ? expected[0] : null);
    }
  });

  it('lays units out as darts.h reads them (label, has_leaf, value) in whole 256-unit blocks', () => {
    const units = buildDoubleArray([
      [new Uint8Array([1, 2]), 5],
      [new Uint8Array([1]), 7],
      [new Uint8Array([255]), 9],
    ]);
    expect(units.length % 256).toBe(0);
    const offset = (u: number) => (u >>> 10) << ((u & (1 << 9)) >>> 6);
    // walk [1, 2] by hand, the way darts.h's commonPrefixSearch does
    let pos = offset(units[0]);
    pos ^= 1;
    expect(units[pos] & 0xff).toBe(1);
    expect((units[pos] >>> 8) & 1).toBe(1);
    pos ^= offset(units[pos]);
    expect(units[pos] >>> 0).toBe((7 | 0x80000000) >>> 0);
  });
});

describe('Precompiled normalizer on hand-written expectations', () => {
  const ours = new Precompiled(buildCharsmap(RULES));
  const run = (text: string, shift = 0) => {
    const s = NormalizedString.from(text, shift);
    ours.normalize(s);
    return { text: s.text, starts: s.starts, ends: s.ends };
  };

  it.each([
    // one-to-one replacements keep each code point's alignment
    ['Ａ１', 'A1', [0, 1], [1, 2]],
    // an expansion: the added code points share the source code point's range
    ['ﬁx', 'fix', [0, 0, 1], [1, 1, 2]],
    ['½', '1⁄2', [0, 0, 0], [1, 1, 1]],
    ['\u00a0a\u3000', ' a ', [0, 1, 2], [1, 2, 3]],
    // a cluster key: the result keeps only the first code point's range (the reference's
    // `-1` change aligns to the replaced char alone)
    ['e\u0301t', 'ét', [0, 2], [1, 3]],
    // whole-cluster lookup takes the SHORTEST key that prefixes the cluster and drops the rest
    ['Ａ\u0301', 'A', [0], [1]],
    ['o\u0302\u0301', 'ô', [0], [1]],
    ['e\u0301\u0301', 'é', [0], [1]],
    // clusters of 6+ bytes go code point by code point
    ['e\u0301\u0301\u0301', 'e\u0301\u0301\u0301', [0, 1, 2, 3], [1, 2, 3, 4]],
    ['ｶﾞ', 'カ\u3099', [0, 1], [1, 2]],
    // a deletion folds into the code point before it...
    ['a\u200bb', 'ab', [0, 2], [1, 3]],
    // ...and after an expansion turns the last added code point into a replacement of the
    // deleted one, so 'i' lands on U+200B's range (as the reference does)
    ['ﬁ\u200b', 'fi', [0, 1], [1, 2]],
    // with nothing before it, the deletion is dropped and every later code point takes
    // the range of the one before it (the reference's alignment, quirk included)
    ['\u200bab', 'ab', [0, 1], [1, 2]],
    // emoji and CJK are not keys
    ['🙂日', '🙂日', [0, 1], [1, 2]],
  ] as const)('%j -> %j', (input, text, starts, ends) => {
    expect(run(input)).toEqual({ text, starts, ends });
  });

  it('keeps ranges in the original string when the piece starts later in it', () => {
    expect(run('ﬁ\u00a0', 10)).toEqual({ text: 'fi ', starts: [10, 10, 11], ends: [11, 11, 12] });
  });

  it('leaves a string without keys untouched', () => {
    const s = NormalizedString.from('plain text 日本 🙂');
    const before = { chars: [...s.chars], starts: [...s.starts], ends: [...s.ends] };
    ours.normalize(s);
    expect({ chars: s.chars, starts: s.starts, ends: s.ends }).toEqual(before);
  });

  it('rejects a charsmap whose trie size does not fit, naming the field', () => {
    const bad = buildCharsmap(RULES);
    new DataView(bad.buffer).setUint32(0, bad.length, true);
    expect(() => Precompiled.fromBase64(toBase64(bad), 'normalizer.normalizers[0]')).toThrow(
      expect.objectContaining({
        code: 'E_TOKENIZER_JSON',
        message: expect.stringContaining('normalizer.normalizers[0]: trie size'),
      }),
    );
    expect(() => Precompiled.fromBase64(42, 'normalizer')).toThrow(ProcessorError);
  });

  it('rejects replacement strings that are not UTF-8, as the reference does', () => {
    const good = buildCharsmap([['Ａ', 'A']]);
    const bad = new Uint8Array([...good.subarray(0, good.length - 2), 0xff, 0]);
    expect(() => reference.precompiled(Array.from(bad))).toThrow('Cannot parse precompiled_charsmap');
    expect(() => new Precompiled(bad, 'normalizer')).toThrow(
      expect.objectContaining({
        code: 'E_TOKENIZER_JSON',
        message: expect.stringContaining('not valid UTF-8'),
      }),
    );
    expect(() => reference.precompiled(Array.from(good))).not.toThrow();
    expect(new Precompiled(good).transform('Ａ')).toBe('A');
  });
});

describe('Precompiled normalizer against spm_precompiled (tokenizers 0.23.2)', () => {
  for (const [name, options] of [
    ['plain offsets', {}],
    // bases past 2^21 make the root's offset use darts' shifted (bit 9) encoding
    ['shifted offsets', { firstBase: 1 << 21 }],
  ] as const) {
    it(`normalizes ${STRINGS.length} strings identically (${name})`, () => {
      const charsmap = buildCharsmap(RULES, options);
      const rust = reference.precompiled(Array.from(charsmap));
      const ours = new Precompiled(charsmap);
      let changed = 0;
      for (const text of STRINGS) {
        const s = NormalizedString.from(text);
        ours.normalize(s);
        expect(s.text, JSON.stringify(text)).toBe(rust.normalizeString(text));
        if (s.text !== text) changed++;
      }
      // most strings must actually go through a replacement, or this compares nothing
      expect(changed).toBeGreaterThan(STRINGS.length / 2);
    });
  }
});

describe('T5 tokenizer with a Precompiled charsmap against tokenizers 0.23.2', () => {
  it('starts from the fixture normalizer this test assumes', () => {
    expect(t5Json.normalizer).toEqual({
      type: 'Sequence',
      normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }],
    });
  });

  for (const layout of ['published', 'chained'] as const) {
    it(`matches ids, tokens, offsets and decode on ${STRINGS.length} strings (${layout})`, async () => {
      const charsmap = buildCharsmap(RULES);
      const json = t5WithCharsmap(charsmap, layout);
      const rust = reference.Tokenizer.fromString(json);
      const ours = Tokenizer.fromJSON(JSON.parse(json), t5Config);
      for (const text of STRINGS) {
        const label = JSON.stringify(text);
        const want = await expectSameEncoding(ours, rust, text);
        const wantPlain = await rust.encode(text, null, { addSpecialTokens: false });
        expect(ours.encode(text, null, { addSpecialTokens: false }).ids, label).toEqual(wantPlain.getIds());
        expect(ours.decode(want.getIds(), { skipSpecialTokens: true }), label).toBe(
          await rust.decode(want.getIds(), true),
        );
        expect(ours.decode(want.getIds()), label).toBe(await rust.decode(want.getIds(), false));
      }
      const [a, b] = ['Ａ\u00a0ﬁ\u200b', 'e\u0301 ｶﾞ½'];
      expect(ours.encode(a, b).ids).toEqual((await rust.encode(a, b)).getIds());
    });
  }

  it('normalizes the way the fixture NFKC tokenizer does where the charsmap agrees with NFKC', async () => {
    // full-width forms, ligatures and NBSP are NFKC's job too: the published layout must
    // give the fixture's own (NFKC) answers on the cases that only use those
    const json = t5WithCharsmap(buildCharsmap(RULES), 'published');
    const ours = Tokenizer.fromJSON(JSON.parse(json), t5Config);
    const nfkc = reference.Tokenizer.fromString(JSON.stringify(t5Json));
    for (const text of ['ＡＢＣ １５９ ｘｙｚ！', 'ﬁ ligature ﬂﬀﬃ', '\u00a0a\u00a0\u00a0b\u3000', '™ 5½…']) {
      expect(ours.encode(text).ids, JSON.stringify(text)).toEqual((await nfkc.encode(text)).getIds());
    }
  });
});
