/**
 * The reference for tokenizer tests: the Rust `tokenizers` Node binding (the library
 * transformers' fast tokenizers are), and the one comparison those tests make with it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { expect } from 'vitest';
import type { Tokenizer } from '../src/index.js';

// The binding is a CommonJS native addon; `require` gives its named exports reliably.
export const reference = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');

export const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

/** The T5 fixture tokenizer the normalizer tests rewrite, and its tokenizer_config.json. */
export const t5Json = readJson(join(fixtures.tokenizersT5, 'tokenizer.json'));
export const t5Config = readJson(join(fixtures.tokenizersT5, 'hf', 'tokenizer_config.json'));

type RustEncoding = Awaited<ReturnType<InstanceType<typeof reference.Tokenizer>['encode']>>;

/** `text` encodes to the same ids, tokens and offsets with both; the reference's encoding. */
export async function expectSameEncoding(
  ours: Tokenizer,
  rust: InstanceType<typeof reference.Tokenizer>,
  text: string,
): Promise<RustEncoding> {
  const label = JSON.stringify(text);
  const want = await rust.encode(text);
  const got = ours.encode(text);
  expect(got.ids, label).toEqual(want.getIds());
  expect(got.tokens, label).toEqual(want.getTokens());
  expect(got.offsets, label).toEqual(want.getOffsets());
  return want;
}
