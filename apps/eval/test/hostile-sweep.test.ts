/**
 * The hostile-input sweep of `vqa-eval`: every command probed with missing files, folders
 * where files belong, empty and non-JSON files, FIFOs (which would block a reader), symbolic
 * link loops, and huge, negative or non-numeric values. Each ends in one `vqa-eval: E_...`
 * line, exit 2 for usage and 1 for runtime, never a stack; the test answerer stands in for a
 * model, so a probe that got as far as answering would show as exit 0.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/command.js';
import { shapes, tempDir } from './helpers.js';

const hook = join(import.meta.dirname, 'fixtures', 'test-answerer.mjs');
let dir = '';
const at = (name: string) => join(dir, name);

beforeAll(() => {
  dir = tempDir();
  mkdirSync(at('folder'));
  writeFileSync(at('empty.json'), '');
  writeFileSync(at('not-json.json'), '{"questions": [');
  writeFileSync(at('object.json'), '{}');
  writeFileSync(at('number.json'), '1e999');
  writeFileSync(at('results.json'), '[{"question_id": 1, "answer": "yes"}]');
  execFileSync('mkfifo', [at('fifo')]);
  mkdirSync(at('fifo-model'));
  execFileSync('mkfifo', [join(at('fifo-model'), 'config.json')]);
  symlinkSync(at('loop-b'), at('loop-a'));
  symlinkSync(at('loop-a'), at('loop-b'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function vqaEval(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: {},
  });
  return { code, stdout, stderr };
}

/** `vqa-eval run` over the shapes fixture with the test answerer, `over` replacing flags. */
function run(over: Record<string, string | undefined> = {}, extra: string[] = []): string[] {
  const flags: Record<string, string | undefined> = {
    model: 'fake',
    questions: shapes.questions,
    annotations: shapes.annotations,
    images: shapes.images,
    'answerer-module': hook,
    out: at('out/results.json'),
    ...over,
  };
  const args = ['run'];
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) args.push(`--${k}`, v);
  return [...args, ...extra];
}

const PROBES: [string, () => string[], 1 | 2, RegExp][] = [
  ['a missing questions file', () => run({ questions: at('nope.json') }), 1, /nope\.json/],
  ['a folder as the questions', () => run({ questions: at('folder') }), 1, /folder/],
  [
    'a FIFO as the questions (must not block)',
    () => run({ questions: at('fifo') }),
    1,
    /fifo.*not a regular file/,
  ],
  ['a symlink loop as the questions', () => run({ questions: at('loop-a') }), 1, /loop-a/],
  ['empty questions', () => run({ questions: at('empty.json') }), 1, /empty\.json/],
  ['truncated JSON questions', () => run({ questions: at('not-json.json') }), 1, /not-json\.json/],
  ['questions without a questions list', () => run({ questions: at('object.json') }), 1, /object\.json/],
  ['1e999 as the questions file', () => run({ questions: at('number.json') }), 1, /number\.json/],
  ['a FIFO as the annotations', () => run({ annotations: at('fifo') }), 1, /fifo.*not a regular file/],
  [
    'a model folder that is none (the SDK answerer)',
    () => run({ 'answerer-module': undefined, model: at('no-model') }),
    1,
    /no-model/,
  ],
  [
    'a model folder with a FIFO as config.json',
    () => run({ 'answerer-module': undefined, model: at('fifo-model') }),
    1,
    /config\.json.*not a regular file/,
  ],
  ['a missing images folder', () => run({ images: at('no-images') }), 1, /no-images/],
  ['a file as the images folder', () => run({ images: at('results.json') }), 1, /results\.json/],
  ['--out in a missing folder', () => run({ out: at('no/such/dir/r.json') }), 1, /E_OUT/],
  ['--out naming a folder', () => run({ out: at('folder') }), 1, /E_OUT/],
  ['--out through a symlink loop', () => run({ out: at('loop-a') }), 1, /E_OUT/],
  ['a zero batch size', () => run({ 'batch-size': '0' }), 2, /--batch-size/],
  ['a huge batch size as a word', () => run({ 'batch-size': 'lots' }), 2, /--batch-size/],
  ['a negative limit', () => run({ limit: '-1' }), 2, /--limit/],
  ['a shard past its count', () => run({ shard: '3/2' }), 2, /--shard "3\/2"/],
  ['a shard of zero', () => run({ shard: '0/0' }), 2, /--shard/],
  ['--shard auto without a job engine', () => run({ shard: 'auto' }), 2, /--shard auto/],
  ['zero beams', () => run({ 'num-beams': '0' }), 2, /--num-beams/],
  ['a fractional max-new-tokens', () => run({ 'max-new-tokens': '2.5' }), 2, /--max-new-tokens/],
  ['Infinity as the length penalty', () => run({ 'length-penalty': 'Infinity' }), 2, /--length-penalty/],
  ['a zero max-prompt-tokens', () => run({ 'max-prompt-tokens': '0' }), 2, /--max-prompt-tokens/],
  ['a zero max-input-tokens', () => run({ 'max-input-tokens': '0' }), 2, /--max-input-tokens/],
  ['eos ids that are words', () => run({ 'eos-token-ids': 'a,b' }), 2, /--eos-token-ids/],
  ['a padding side that is none', () => run({ 'padding-side': 'up' }), 2, /--padding-side/],
  ['an unknown protocol', () => run({ protocol: 'fast' }), 2, /--protocol/],
  ['a prompt without {}', () => run({ prompt: 'Question: Answer:' }), 1, /\{\}/],
  [
    'a FIFO as the prompt file',
    () => run({ 'prompt-file': at('fifo') }),
    2,
    /--prompt-file .*fifo: not a regular file/,
  ],
  ['an unknown option', () => run({}, ['--num-beems', '3']), 2, /num-beems/],
  ['an unknown command', () => ['evaluate'], 2, /unknown command "evaluate"/],
  [
    'score of a missing results file',
    () => [
      'score',
      '--questions',
      shapes.questions,
      '--annotations',
      shapes.annotations,
      '--results',
      at('nope.json'),
    ],
    1,
    /nope\.json/,
  ],
  [
    'score of a FIFO',
    () => [
      'score',
      '--questions',
      shapes.questions,
      '--annotations',
      shapes.annotations,
      '--results',
      at('fifo'),
    ],
    1,
    /fifo/,
  ],
  [
    'score with a summation that is none',
    () => [
      'score',
      '--questions',
      shapes.questions,
      '--annotations',
      shapes.annotations,
      '--results',
      at('results.json'),
      '--sum',
      'kahan',
    ],
    2,
    /--sum/,
  ],
  ['merge of no shards', () => ['merge', '--out', at('merged.json')], 2, /merge/],
  ['merge of a missing shard', () => ['merge', '--out', at('merged.json'), at('nope.json')], 1, /nope\.json/],
  [
    'merge of a truncated shard',
    () => ['merge', '--out', at('merged.json'), at('not-json.json')],
    1,
    /not-json\.json/,
  ],
  [
    'captions of a missing file',
    () => [
      'captions',
      '--model',
      'fake',
      '--captions',
      at('nope.json'),
      '--images',
      shapes.images,
      '--answerer-module',
      hook,
      '--out',
      at('out/c.json'),
    ],
    1,
    /nope\.json/,
  ],
  [
    'captions of a FIFO',
    () => [
      'captions',
      '--model',
      'fake',
      '--captions',
      at('fifo'),
      '--images',
      shapes.images,
      '--answerer-module',
      hook,
      '--out',
      at('out/c.json'),
    ],
    1,
    /fifo/,
  ],
];

describe('vqa-eval under hostile input: a typed message, the right exit code, no stack', () => {
  beforeAll(() => mkdirSync(at('out'), { recursive: true }));
  it.each(PROBES)('%s', async (_name, args, code, says) => {
    const r = await vqaEval(args());
    expect(r.stderr).toMatch(/^vqa-eval: E_[A-Z_]+: /);
    expect(r.stderr.split('\n')[0]).toMatch(says);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code, r.stderr).toBe(code);
  });
});

describe('an answerer that refuses one batch (a question too long for the model)', () => {
  it("names the questions and the model's code, keeps every answer before, and --resume finishes", async () => {
    const questions = JSON.parse(readFileSync(shapes.questions, 'utf8'));
    const list = questions.questions ?? questions;
    const long = list.find((q: { question_id: number }) => q.question_id === 1025);
    long.question = `toolong ${'and then? '.repeat(50)}`;
    const file = at('long-question.json');
    writeFileSync(file, JSON.stringify(questions));
    const flags = { questions: file, 'batch-size': '10', limit: '40' };

    const full = await vqaEval(run({ ...flags, out: at('out/full.json') }));
    expect(full.code, full.stderr).toBe(0);

    process.env.VQA_TEST_REFUSE = 'toolong';
    let refused: Awaited<ReturnType<typeof vqaEval>>;
    try {
      refused = await vqaEval(run({ ...flags, out: at('out/refused.json') }));
    } finally {
      delete process.env.VQA_TEST_REFUSE;
    }
    expect(refused.code).toBe(1);
    expect(refused.stderr.split('\n')[0]).toBe(
      'vqa-eval: E_ANSWERER: the batch of question_id 1020..1029: E_PROMPT_TOO_LONG: the encoder input has 9999 tokens, above maxInputTokens (2048) (20 of 40 answers kept; fix the input and run again with --resume)',
    );
    const resumed = await vqaEval(run({ ...flags, out: at('out/refused.json') }, ['--resume']));
    expect(resumed.code, resumed.stderr).toBe(0);
    const answers = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
    expect(answers(at('out/refused.json'))).toEqual(answers(at('out/full.json')));
  });
});
