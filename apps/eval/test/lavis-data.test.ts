import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { thrown as thrownBy } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { compileImagePattern, loadAnnotations, loadQuestions, loadResults } from '../src/data.js';
import { VqaEvalError } from '../src/errors.js';
import { compilePrompt, lavisPreQuestion, postprocessAnswer } from '../src/lavis.js';
import { ProgressBar } from '../src/progress-bar.js';
import { parseShard } from '../src/select.js';
import { tempDir } from './helpers.js';

const thrown = (fn: () => unknown) => thrownBy(fn, VqaEvalError);

describe('LAVIS question preprocessing', () => {
  it('lowercases and deletes .!"()*#:;~', () => {
    expect(lavisPreQuestion('What color is the "Circle"? (Be brief!)')).toBe(
      'what color is the circle? be brief',
    );
    expect(lavisPreQuestion('a*b#c:d;e~f.g')).toBe('abcdefg');
  });
  it('strips trailing spaces only, and does not collapse inner whitespace', () => {
    expect(lavisPreQuestion('  Is it red .  ')).toBe('  is it red');
    expect(lavisPreQuestion('is  it')).toBe('is  it');
  });
  it('keeps at most 50 words', () => {
    const long = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    expect(lavisPreQuestion(long).split(' ')).toHaveLength(50);
    expect(lavisPreQuestion(long).endsWith('w49')).toBe(true);
  });
  it('answers are stripped', () => {
    expect(postprocessAnswer(' red\n')).toBe('red');
  });
});

describe('prompts', () => {
  it('fills {} like str.format', () => {
    expect(compilePrompt('Question: {} Answer:')('is it red?')).toBe('Question: is it red? Answer:');
    expect(compilePrompt('Question: {} Short answer:')('x')).toBe('Question: x Short answer:');
    expect(compilePrompt('{{Q}}: {}')('x')).toBe('{Q}: x');
  });
  it('refuses templates without exactly one {} or with stray braces', () => {
    expect(thrown(() => compilePrompt('Question:')).code).toBe('E_PROMPT');
    expect(thrown(() => compilePrompt('{} {}')).message).toMatch(/found 2/);
    expect(thrown(() => compilePrompt('{q}')).message).toMatch(/unexpected "\{" at position 0/);
  });
});

describe('image pattern', () => {
  const q = { question_id: 7, image_id: 42, question: '' };
  it('formats like Python str.format', () => {
    expect(compileImagePattern('COCO_val2014_{image_id:012d}.jpg')(q)).toBe('COCO_val2014_000000000042.jpg');
    expect(compileImagePattern('{image_id}.png')(q)).toBe('42.png');
    expect(compileImagePattern('{image_id:5d}|{question_id}')(q)).toBe('   42|7');
  });
  it('refuses unknown fields and unmatched braces', () => {
    expect(thrown(() => compileImagePattern('{id}.jpg')).code).toBe('E_PATTERN');
    expect(thrown(() => compileImagePattern('{image_id:x}.jpg')).message).toMatch(
      /unsupported field "\{image_id:x\}"/,
    );
    expect(thrown(() => compileImagePattern('a}.jpg')).message).toMatch(/unmatched brace/);
    expect(thrown(() => compileImagePattern('plain.jpg')).message).toMatch(/no \{image_id\}/);
  });
});

describe('loading files', () => {
  const write = (data: unknown) => {
    const path = join(tempDir(), 'f.json');
    writeFileSync(path, typeof data === 'string' ? data : JSON.stringify(data));
    return path;
  };
  it('names the file and the field at fault', () => {
    expect(thrown(() => loadQuestions('/nonexistent/q.json')).code).toBe('E_READ');
    expect(thrown(() => loadQuestions(write('{'))).code).toBe('E_JSON');
    const noList = write({ annotations: [] });
    expect(thrown(() => loadQuestions(noList)).message).toBe(
      `${noList}: questions must be an array (missing)`,
    );
    const badId = write({
      questions: [{ question_id: 1, image_id: 1, question: 'q' }, { question_id: '2' }],
    });
    const e = thrown(() => loadQuestions(badId));
    expect(e.code).toBe('E_FIELD');
    expect(e.message).toBe(`${badId}: questions[1].question_id must be an integer (got "2")`);
    const dup = write({
      questions: [
        { question_id: 1, image_id: 1, question: 'q' },
        { question_id: 1, image_id: 2, question: 'r' },
      ],
    });
    expect(thrown(() => loadQuestions(dup)).code).toBe('E_DUPLICATE');
  });
  it('checks annotation answers and results', () => {
    const ann = {
      question_id: 1,
      image_id: 1,
      question_type: 't',
      answer_type: 'other',
      answers: [{ answer: 3 }],
    };
    const path = write({ annotations: [ann] });
    expect(thrown(() => loadAnnotations(path)).message).toMatch(
      /annotations\[0\]\.answers\[0\]\.answer must be a string \(got 3\)/,
    );
    const noAnswers = write({ annotations: [{ ...ann, answers: [] }] });
    expect(thrown(() => loadAnnotations(noAnswers)).message).toMatch(/answers must be a non-empty array/);
    const results = write([
      { question_id: 1, answer: 'a' },
      { question_id: 1, answer: 'b' },
    ]);
    expect(thrown(() => loadResults(results)).message).toMatch(/\[1\]\.question_id 1 is answered twice/);
    expect(thrown(() => loadResults(write({ results: [] }))).message).toMatch(
      /must be an array of \{question_id, answer\}/,
    );
  });
});

describe('small parsers and the progress bar', () => {
  it('parses --shard K/N', () => {
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    for (const bad of ['0/2', '3/2', '1', 'a/b', '1/0'])
      expect(thrown(() => parseShard(bad)).code).toBe('E_ARGS');
  });
  it('draws questions/s and ETA only on a terminal', () => {
    const written: string[] = [];
    const tty = { isTTY: true, write: (t: string) => written.push(t) };
    const bar = new ProgressBar(100, 20, tty);
    bar.advance(30);
    expect(written.at(-1)).toMatch(/^\r\[#+-+\] 50\/100 50\.0% [\d.]+ q\/s ETA /);
    const start = (bar as unknown as { start: number }).start;
    expect(bar.render(start + 10_000)).toMatch(/50\/100 50\.0% 3\.00 q\/s ETA 00:17/);
    const silent: string[] = [];
    const pipe = new ProgressBar(10, 0, { isTTY: false, write: (t: string) => silent.push(t) });
    pipe.advance(10);
    pipe.finish();
    expect(silent).toEqual([]);
  });
});
