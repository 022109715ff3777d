/**
 * A tokenizer fixture folder (`tokenizer.json`, `cases.json`, optionally
 * `hf/tokenizer_config.json`): every case encoded and decoded as the Rust
 * `tokenizers` library did, offsets included, plus the pair encoding.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@blip2/processor';
import { readJson } from './files.js';
import { type ParityReport, ReportBuilder } from './report.js';

interface TokenizerCase {
  readonly text: string;
  readonly ids: number[];
  readonly ids_no_special: number[];
  readonly tokens: string[];
  readonly offsets: [number, number][];
  readonly decoded: string;
  readonly decoded_with_special: string;
}

interface CasesJson {
  readonly cases: TokenizerCase[];
  readonly pair?: { a: string; b: string; ids: number[] };
}

export async function tokenizerParity(dir: string): Promise<ParityReport> {
  const report = new ReportBuilder('tokenizer', dir);
  const json = await readJson(join(dir, 'tokenizer.json'));
  // transformers saves tokenizer_config.json beside tokenizer.json; the fixtures keep it under hf/
  const configPath = [join(dir, 'tokenizer_config.json'), join(dir, 'hf', 'tokenizer_config.json')].find(
    existsSync,
  );
  const tokenizer = Tokenizer.fromJSON(json, configPath ? await readJson(configPath) : undefined);
  const { cases, pair } = await readJson<CasesJson>(join(dir, 'cases.json'));
  for (const [i, c] of cases.entries()) {
    const name = `case${i}`;
    const enc = tokenizer.encode(c.text);
    report.equal(name, 'ids', enc.ids, c.ids);
    report.equal(name, 'tokens', enc.tokens, c.tokens);
    report.equal(name, 'offsets', enc.offsets, c.offsets);
    report.equal(
      name,
      'ids_no_special',
      tokenizer.encode(c.text, null, { addSpecialTokens: false }).ids,
      c.ids_no_special,
    );
    report.equal(name, 'decoded', tokenizer.decode(c.ids, { skipSpecialTokens: true }), c.decoded);
    report.equal(name, 'decoded_with_special', tokenizer.decode(c.ids), c.decoded_with_special);
  }
  if (pair) report.equal('pair', 'ids', tokenizer.encode(pair.a, pair.b).ids, pair.ids);
  return report.finish('none');
}
