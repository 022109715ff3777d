// Writes tooling/fixtures/data/tokenizers/{opt,t5}/random-cases.json: seeded random strings
// (byte-level and SentencePiece edge cases: a leading U+FEFF, other BOM-like and zero-width
// characters, combining marks, emoji, CJK, odd whitespace, control characters) with the ids and
// decoded texts of the Hugging Face Rust tokenizers. The oracle is the `tokenizers` npm package
// (0.23.2), installed OUTSIDE the repository; tests only read the committed JSON:
//   mkdir -p /tmp/oracle && cd /tmp/oracle && npm init -y && npm install tokenizers@0.23.2
//   NODE_PATH=/tmp/oracle/node_modules node packages/processor/test/oracle/make-tokenizer-random-cases.mjs
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.env.NODE_PATH ?? '.', 'x.js'));
const { Tokenizer } = require('tokenizers');
const root = join(import.meta.dirname, '..', '..', '..', '..', 'tooling', 'fixtures', 'data', 'tokenizers');

// xorshift32: the same strings on every run
let state = 0x9e3779b9;
const next = () => {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state / 2 ** 32;
};
const pick = (xs) => xs[Math.floor(next() * xs.length)];

const POOLS = [
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  ' .,!?\'"-:;()[]{}<>/\\@#$%^&*_+=~`|',
  ' \t\n\r\u00a0\u2009\u3000\u200b\u200d\u2028',
  '\ufeff\ufffe\u00ad\u2060\u034f',
  'éèêëàâçôûüñÉÀßøåæœ',
  '\u0301\u0300\u0308\u0327\u20dd',
  '你好世界日本語한국어',
  'مرحباשלוםπαβγдлякс',
  '\u0007\u001b\u007f\u0085',
].map((p) => [...p]);
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧', '🇫🇷', '❤️', '𝔘𝔫𝔦', '🤖'];

function randomString() {
  const n = 1 + Math.floor(next() * 14);
  let s = next() < 0.25 ? '\ufeff' : '';
  for (let i = 0; i < n; i++) s += next() < 0.08 ? pick(EMOJI) : pick(pick(POOLS));
  return s;
}

const texts = Array.from({ length: 400 }, randomString);
for (const name of ['opt', 't5']) {
  const tokenizer = Tokenizer.fromFile(join(root, name, 'tokenizer.json'));
  const cases = [];
  for (const text of texts) {
    const withSpecial = await tokenizer.encode(text, null, { addSpecialTokens: true });
    const plain = await tokenizer.encode(text, null, { addSpecialTokens: false });
    const ids = withSpecial.getIds();
    cases.push({
      text,
      ids,
      ids_no_special: plain.getIds(),
      decoded: await tokenizer.decode(ids, true),
      decoded_with_special: await tokenizer.decode(ids, false),
    });
  }
  writeFileSync(
    join(root, name, 'random-cases.json'),
    `${JSON.stringify({ oracle: 'tokenizers (npm) 0.23.2', seed: '0x9e3779b9', cases }, null, 1)}\n`,
  );
  console.log(name, cases.length, 'cases');
}
