/** The run report: `<out>.report.json` for machines, `<out>.report.md` for people. */
import { basename } from 'node:path';
import type { VqaQuestion } from './data.js';
import type { VqaAccuracy, VqaAnnotation, VqaResult } from './vqa-eval.js';

export interface ReportExample {
  question_id: number;
  image: string;
  question: string;
  answer: string;
  /** The annotators' most common answer. */
  expected: string;
  accuracy: number;
}

export interface EvalReport {
  model: string;
  backend: string;
  settings: Record<string, unknown>;
  questions: number;
  accuracy: Omit<VqaAccuracy, 'perQuestion'>;
  timings: Record<string, number>;
  examples: { right: ReportExample[]; wrong: ReportExample[] };
}

/** The first `n` fully right and fully wrong answers, in results order. */
export function pickExamples(
  results: readonly VqaResult[],
  accuracy: VqaAccuracy,
  questions: ReadonlyMap<number, VqaQuestion>,
  annotations: ReadonlyMap<number, VqaAnnotation>,
  imagePaths: ReadonlyMap<number, string>,
  n = 5,
): EvalReport['examples'] {
  const right: ReportExample[] = [];
  const wrong: ReportExample[] = [];
  for (const r of results) {
    const acc = accuracy.perQuestion[String(r.question_id)]!;
    const bucket = acc === 100 ? right : acc === 0 ? wrong : undefined;
    if (!bucket || bucket.length >= n) continue;
    const a = annotations.get(r.question_id)!;
    bucket.push({
      question_id: r.question_id,
      image: basename(imagePaths.get(r.question_id) ?? ''),
      question: questions.get(r.question_id)?.question ?? '',
      answer: r.answer,
      expected: a.multiple_choice_answer ?? a.answers[0]?.answer ?? '',
      accuracy: acc,
    });
  }
  return { right, wrong };
}

const cell = (s: string | number) => String(s).replaceAll('|', '\\|').replaceAll('\n', ' ');

export function reportMarkdown(r: EvalReport): string {
  const table = (title: string, rows: Record<string, number>) =>
    [
      `| ${title} | accuracy |`,
      '|---|---:|',
      ...Object.entries(rows)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `| ${cell(k)} | ${v.toFixed(2)} |`),
    ].join('\n');
  const examples = (list: ReportExample[]) =>
    list.length === 0
      ? '_none_'
      : [
          '| question_id | image | question | answer | annotators | accuracy |',
          '|---:|---|---|---|---|---:|',
          ...list.map(
            (e) =>
              `| ${e.question_id} | ${cell(e.image)} | ${cell(e.question)} | ${cell(e.answer)} | ${cell(e.expected)} | ${e.accuracy.toFixed(2)} |`,
          ),
        ].join('\n');
  return [
    '# VQAv2 evaluation report',
    '',
    `- model: \`${r.model}\``,
    `- backend: \`${r.backend}\``,
    `- questions: ${r.questions}`,
    `- **overall accuracy: ${r.accuracy.overall.toFixed(2)}**`,
    '',
    '## Settings',
    '',
    ...Object.entries(r.settings).map(([k, v]) => `- ${k}: \`${JSON.stringify(v)}\``),
    '',
    '## Throughput',
    '',
    ...Object.entries(r.timings).map(([k, v]) => `- ${k}: ${Number.isInteger(v) ? v : v.toFixed(3)}`),
    '',
    '## Accuracy per answer type',
    '',
    table('answer type', r.accuracy.perAnswerType),
    '',
    '## Accuracy per question type',
    '',
    table('question type', r.accuracy.perQuestionType),
    '',
    '## Right answers (examples)',
    '',
    examples(r.examples.right),
    '',
    '## Wrong answers (examples)',
    '',
    examples(r.examples.wrong),
    '',
  ].join('\n');
}
