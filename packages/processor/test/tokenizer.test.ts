import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { ProcessorError, Tokenizer } from '../src/index.js';
import { loadTokenizer } from '../src/node.js';

interface Case {
  text: string;
  ids: number[];
  ids_no_special: number[];
  tokens: string[];
  offsets: [number, number][];
  decoded: string;
  decoded_with_special: string;
}
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

for (const [name, dir] of [
  ['opt', fixtures.tokenizersOpt],
  ['t5', fixtures.tokenizersT5],
] as const) {
  describe(`${name} tokenizer against tokenizers 0.23 (cases.json)`, () => {
    const { cases, pair } = readJson(join(dir, 'cases.json')) as {
      cases: Case[];
      pair: { a: string; b: string; ids: number[] };
    };
    const tok = Tokenizer.fromJSON(
      readJson(join(dir, 'tokenizer.json')),
      readJson(join(dir, 'hf', 'tokenizer_config.json')),
    );

    it('has all 31 cases', () => expect(cases).toHaveLength(31));
    it.each(cases.map((c, i) => [i, JSON.stringify(c.text).slice(0, 40), c] as const))(
      'case %i %s',
      (_i, _label, c) => {
        const enc = tok.encode(c.text);
        expect(enc.ids).toEqual(c.ids);
        expect(enc.tokens).toEqual(c.tokens);
        expect(enc.offsets).toEqual(c.offsets);
        expect(tok.encode(c.text, null, { addSpecialTokens: false }).ids).toEqual(c.ids_no_special);
        expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded);
        expect(tok.decode(c.ids)).toBe(c.decoded_with_special);
      },
    );
    it('encodes the pair', () => {
      expect(tok.encode(pair.a, pair.b).ids).toEqual(pair.ids);
    });
  });
}

describe('tokenizer loading and errors', () => {
  it('loads from a checkpoint folder and knows its pad token', async () => {
    const tok = await loadTokenizer(fixtures.tinyOpt);
    expect(tok.namedTokenId('pad_token')).toBe(1);
    expect(tok.tokenToId('<image>')).toBe(946);
  });
  it('names a missing tokenizer.json', async () => {
    const err = await loadTokenizer(fixtures.images).catch((e) => e);
    expect(err).toBeInstanceOf(ProcessorError);
    expect(err.code).toBe('E_TOKENIZER_FILE');
    expect(err.message).toContain(join(fixtures.images, 'tokenizer.json'));
  });
  it('rejects text of the wrong type and unknown components', () => {
    const tok = Tokenizer.fromJSON(readJson(join(fixtures.tokenizersOpt, 'tokenizer.json')));
    expect(() => tok.encode(42 as unknown as string)).toThrow(
      expect.objectContaining({ code: 'E_TEXT', message: 'text must be a string, got number 42' }),
    );
    expect(() => Tokenizer.fromJSON({ model: { type: 'WordLevel' } })).toThrow(
      expect.objectContaining({ code: 'E_TOKENIZER_JSON' }),
    );
    expect(() => tok.decode([5000])).toThrow(expect.objectContaining({ code: 'E_TOKEN_ID' }));
  });
});

describe('long inputs', () => {
  // a prompt read from a file can be any length: it must tokenize in time linear in its length
  // (the model's position limit is checked later, by the caller), never overflow the stack
  it.each([
    ['opt', fixtures.tinyOpt],
    ['t5', fixtures.tinyT5],
  ])("%s: 200K characters tokenize to the short text's ids repeated", async (_name, dir) => {
    const tok = await loadTokenizer(dir);
    const unit = 'hello world, e\u0301 ';
    const short = tok.encode(unit.repeat(4), null, { addSpecialTokens: false }).ids;
    const long = tok.encode(unit.repeat(Math.ceil(200_000 / unit.length)), null, {
      addSpecialTokens: false,
    }).ids;
    expect(long.length).toBeGreaterThan(20_000);
    expect(long.slice(0, short.length - 2)).toEqual(short.slice(0, -2));
    // one word of 8000 characters: merges in n log n (it took seconds when quadratic)
    expect(tok.encode('\u00e9'.repeat(8000), null, { addSpecialTokens: false }).ids.length).toBeGreaterThan(
      0,
    );
  });
});

interface RandomCase {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded: string;
  decoded_with_special: string;
}

// 400 seeded random strings per tokenizer (a leading U+FEFF in a quarter of them, zero-width and
// BOM-like characters, combining marks, emoji, CJK, odd whitespace, controls), answered by the
// Rust tokenizers (npm `tokenizers` 0.23.2; test/oracle/make-tokenizer-random-cases.mjs wrote them).
for (const [name, dir] of [
  ['opt', fixtures.tokenizersOpt],
  ['t5', fixtures.tokenizersT5],
] as const) {
  describe(`${name} tokenizer on random strings against the Rust tokenizers (random-cases.json)`, () => {
    const { cases } = readJson(join(dir, 'random-cases.json')) as { cases: RandomCase[] };
    // the Rust library alone: no transformers-side clean-up of tokenization spaces
    const tok = Tokenizer.fromJSON(readJson(join(dir, 'tokenizer.json')));
    const plain = { cleanUpTokenizationSpaces: false };

    it('has 400 cases, a leading U+FEFF among them', () => {
      expect(cases).toHaveLength(400);
      expect(cases.filter((c) => c.text.startsWith('\ufeff')).length).toBeGreaterThan(50);
    });
    it('encodes and decodes every one as the reference does', () => {
      const wrong: string[] = [];
      for (const c of cases) {
        const label = JSON.stringify(c.text);
        if (JSON.stringify(tok.encode(c.text).ids) !== JSON.stringify(c.ids)) wrong.push(`${label} ids`);
        if (
          JSON.stringify(tok.encode(c.text, null, { addSpecialTokens: false }).ids) !==
          JSON.stringify(c.ids_no_special)
        )
          wrong.push(`${label} ids without special tokens`);
        if (tok.decode(c.ids, { skipSpecialTokens: true, ...plain }) !== c.decoded)
          wrong.push(`${label} decoded`);
        if (tok.decode(c.ids, { skipSpecialTokens: false, ...plain }) !== c.decoded_with_special)
          wrong.push(`${label} decoded with special tokens`);
      }
      expect(wrong).toEqual([]);
    });
    // byte-level BPE spells U+FEFF as its three UTF-8 bytes (T5's normalizer keeps no such token)
    if (name === 'opt') {
      it('keeps a leading U+FEFF when decoding, as the Rust tokenizers do', () => {
        const bom = cases.filter((c) => c.text.startsWith('\ufeff') && c.decoded.startsWith('\ufeff'));
        expect(bom.length).toBeGreaterThan(50);
        for (const c of bom) expect(tok.decode(c.ids, { skipSpecialTokens: true, ...plain })).toBe(c.decoded);
        expect(tok.decode(tok.encode('\ufeffhi', null, { addSpecialTokens: false }).ids)).toBe('\ufeffhi');
      });
    }
  });
}
