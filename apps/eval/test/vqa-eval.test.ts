import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/command.js';
import { loadAnnotations, loadQuestions } from '../src/data.js';
import { VqaEvalError } from '../src/errors.js';
import { pyRound2, pySplit, pyStrip, pySum } from '../src/python.js';
import {
  answerAccuracy,
  cleanAnswer,
  processDigitArticle,
  processPunctuation,
  scoreVqa,
  type VqaAnswer,
} from '../src/vqa-eval.js';
import { hfPredictions, shapes, tempDir } from './helpers.js';

const gt = (...answers: string[]): VqaAnswer[] => answers.map((answer, i) => ({ answer, answer_id: i + 1 }));

describe('official accuracy on the reference predictions', () => {
  const annotations = loadAnnotations(shapes.annotations);
  for (const family of ['opt', 't5'] as const) {
    for (const decoding of ['greedy', 'beam5_lavis'] as const) {
      it(`${family} ${decoding} reproduces the recorded accuracy`, () => {
        const recorded = hfPredictions(family)[decoding];
        const acc = scoreVqa(annotations, recorded.results);
        expect(acc.overall).toBe(recorded.accuracy);
        expect(Object.keys(acc.perQuestion)).toHaveLength(200);
        // per-type numbers are means of the same per-question values
        expect(Object.keys(acc.perAnswerType).sort()).toEqual(['number', 'other', 'yes/no']);
      });
    }
  }

  it('recorded accuracies are the ones the issue states', () => {
    expect(hfPredictions('opt').greedy.accuracy).toBe(77.5);
    expect(hfPredictions('t5').beam5_lavis.accuracy).toBe(73);
  });

  it('a results file with other question ids is an error listing missing and extra ids', () => {
    const results = hfPredictions('opt').greedy.results.slice(1);
    results.push({ question_id: 999999, answer: 'yes' });
    let err: unknown;
    try {
      scoreVqa(annotations, results, 'my-results.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VqaEvalError);
    expect((err as VqaEvalError).code).toBe('E_RESULTS_MISMATCH');
    expect((err as VqaEvalError).message).toMatch(
      /my-results\.json.*missing question ids: 1 \(1000\).*extra question ids: 1 \(999999\)/,
    );
  });

  it('per question and per type values follow from the per-answer accuracy', () => {
    const qs = loadQuestions(shapes.questions).slice(0, 3);
    const sub = new Map(qs.map((q) => [q.question_id, annotations.get(q.question_id)!]));
    const results = qs.map((q) => ({ question_id: q.question_id, answer: 'no' }));
    const acc = scoreVqa(sub, results);
    for (const r of results) {
      expect(acc.perQuestion[String(r.question_id)]).toBe(
        pyRound2(100 * answerAccuracy('no', sub.get(r.question_id)!.answers)),
      );
    }
  });
});

describe('normalization rules', () => {
  it('newlines and tabs become spaces, then the answer is stripped', () => {
    expect(cleanAnswer('\t two\ncats \n')).toBe('two cats');
    // counted as a match only after cleaning: the gt answers are identical, so no other normalization
    expect(answerAccuracy(' yes\n', gt(...Array(10).fill('yes')))).toBe(1);
  });

  it('normalizes only when the ground-truth answers are not all identical', () => {
    // all ten identical: "Yes." must match exactly, so "yes" scores 0
    expect(answerAccuracy('yes', gt(...Array(10).fill('Yes.')))).toBe(0);
    // one differs: everything is normalized, "yes" matches the nine "Yes." -> 1
    expect(answerAccuracy('yes', gt(...Array(9).fill('Yes.'), 'no'))).toBe(1);
  });

  it('punctuation next to a space is deleted, otherwise replaced by a space', () => {
    expect(processPunctuation('red/blue')).toBe('red blue');
    expect(processPunctuation('red / blue')).toBe('red  blue');
    expect(processPunctuation('yes!')).toBe('yes ');
    expect(processPunctuation('hi, there')).toBe('hi there');
    // the decision is per mark on the whole input: ", " makes commas vanish, "-" still spaces
    expect(processPunctuation('a-b, c')).toBe('a b c');
    // ':' and "'" are not in the official list
    expect(processPunctuation("it's 10:30")).toBe("it's 10:30");
  });

  it('a digit,digit anywhere deletes every mark instead of spacing it', () => {
    expect(processPunctuation('1,000')).toBe('1000');
    expect(processPunctuation('1,000 red/blue')).toBe('1000 redblue');
    expect(processPunctuation('١,٢')).toBe('١٢'); // Python's \d is any Unicode digit
  });

  it('periods go unless a digit follows, at most 32 of them', () => {
    expect(processPunctuation('yes.')).toBe('yes');
    expect(processPunctuation('3.5')).toBe('3.5');
    expect(processPunctuation('.5 and 5.')).toBe('.5 and 5');
    expect(processPunctuation('..5')).toBe('.5');
    expect(processPunctuation('.'.repeat(40))).toBe('.'.repeat(8));
  });

  it('number words none..ten become digits, whole words only', () => {
    expect(processDigitArticle('Two dogs')).toBe('2 dogs');
    expect(processDigitArticle('none')).toBe('0');
    expect(processDigitArticle('ten')).toBe('10');
    expect(processDigitArticle('eleven twenty')).toBe('eleven twenty');
    expect(processDigitArticle('someone')).toBe('someone');
  });

  it('articles a, an, the are dropped and words re-joined by single spaces', () => {
    expect(processDigitArticle('The  cat on a\u00a0mat')).toBe('cat on mat');
    expect(processDigitArticle('an apple')).toBe('apple');
    expect(processDigitArticle('another')).toBe('another');
  });

  it('contractions follow the official table, curly apostrophes included', () => {
    expect(processDigitArticle('dont')).toBe('don’t');
    expect(processDigitArticle('cant')).toBe("can't");
    expect(processDigitArticle('whats that')).toBe('what’s that');
    expect(processDigitArticle("don't")).toBe("don't");
    // capitalised keys never match: words are lowercased first
    expect(processDigitArticle('Im')).toBe('im');
  });

  it('accuracy is min(matches/3, 1) averaged over the ten leave-one-out sets', () => {
    // "2" given by 1 annotator: leaving any other out leaves 1 match -> 1/3 (x9); leaving it out -> 0
    const one = gt('2', ...Array(9).fill('3'));
    expect(answerAccuracy('2', one)).toBeCloseTo((9 * (1 / 3)) / 10, 15);
    // by 3 annotators: 7 sets keep all three (1), 3 sets keep two (2/3)
    const three = gt('2', '2', '2', ...Array(7).fill('3'));
    expect(answerAccuracy('two', three)).toBeCloseTo((7 + 3 * (2 / 3)) / 10, 15);
    // by 4 or more: always at least 3 left -> 1
    expect(answerAccuracy('2', gt('2', '2', '2', '2', ...Array(6).fill('3')))).toBe(1);
    expect(answerAccuracy('4', one)).toBe(0);
  });
});

describe('Python arithmetic', () => {
  it('round(x, 2) rounds exact ties to even and everything else by the exact binary value', () => {
    expect(pyRound2(0.125)).toBe(0.12);
    expect(pyRound2(0.375)).toBe(0.38);
    expect(pyRound2(77.125)).toBe(77.12);
    expect(pyRound2(77.875)).toBe(77.88);
    expect(pyRound2(2.675)).toBe(2.67); // 2.675 is 2.67499999... in binary
    expect(pyRound2(1.005)).toBe(1); // 1.00499999...
    expect(pyRound2(33.33333333333333)).toBe(33.33);
    expect(pyRound2(77.5)).toBe(77.5);
  });

  it('sum adds left to right (Python 2, CPython <= 3.11) or compensated (3.12+), ints exactly', () => {
    expect(pySum([0.1, 0.2, 0.3])).toBe(0.6000000000000001);
    expect(pySum([0.1, 0.2, 0.3], 'compensated')).toBe(0.6);
    expect(pySum([{ int: 1 }, { int: 1 }])).toBe(2);
    expect(pySum([{ int: 1 }, 0.1, { int: 1 }])).toBe(2.1);
    expect(pySum([])).toBe(0);
  });

  // 16 yes/no questions, question i answered "yes" by KS[i] of its 10 annotators, the
  // prediction "yes" everywhere. The scorer's arithmetic run by CPython 3.11.7 (builtin sum, left
  // to right) gives 88.13: the exact mean is 88.125 and the left-to-right sums land above it.
  // CPython 3.12's compensated sum lands on 88.12500000000000 and rounds half to even: 88.12.
  const KS = [10, 4, 5, 5, 4, 3, 7, 6, 5, 0, 9, 3, 10, 1, 10, 10];
  const tie = new Map(
    KS.map((k, i) => [
      i + 1,
      {
        question_id: i + 1,
        image_id: i + 1,
        question_type: 'is there',
        answer_type: 'yes/no',
        answers: Array.from({ length: 10 }, (_, j) => ({ answer: j < k ? 'yes' : 'no', answer_id: j + 1 })),
      },
    ]),
  );
  const yes = KS.map((_, i) => ({ question_id: i + 1, answer: 'yes' }));

  it('the overall accuracy is the left-to-right one by default, where compensated summation differs', () => {
    expect(scoreVqa(tie, yes).overall).toBe(88.13);
    expect(scoreVqa(tie, yes).perAnswerType).toEqual({ 'yes/no': 88.13 });
    expect(scoreVqa(tie, yes, 'results', 'compensated').overall).toBe(88.12);
  });

  it('vqa-eval score --sum picks the summation; a bad value is E_ARGS', async () => {
    const dir = tempDir();
    const files = { a: join(dir, 'a.json'), r: join(dir, 'r.json') };
    writeFileSync(files.a, JSON.stringify({ annotations: [...tie.values()] }));
    writeFileSync(files.r, JSON.stringify(yes));
    const run = async (...extra: string[]) => {
      let out = '';
      let err = '';
      const code = await main(['score', '--annotations', files.a, '--results', files.r, ...extra], {
        stdout: (t) => {
          out += t;
        },
        stderr: (t) => {
          err += t;
        },
      });
      return { code, out, err };
    };
    expect((await run()).out).toMatch(/^Overall Accuracy is: 88\.13\n/);
    expect((await run('--sum', 'left-to-right')).out).toMatch(/^Overall Accuracy is: 88\.13\n/);
    expect((await run('--sum', 'compensated')).out).toMatch(/^Overall Accuracy is: 88\.12\n/);
    const bad = await run('--sum', 'kahan');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/E_ARGS: --sum "kahan": expected left-to-right or compensated/);
  });

  it('split and strip use Python whitespace', () => {
    expect(pySplit('a\u3000b\x1cc\u200bd')).toEqual(['a', 'b', 'c\u200bd']);
    expect(pyStrip('\x85 x \ufeff')).toBe('x \ufeff');
  });
});
