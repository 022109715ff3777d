/**
 * `blip2 demo`: the shapes-VQA models shipped in the repository (a BLIP-2 trained on
 * colored shapes, 1-1.4M parameters) caption a validation image and answer its
 * questions from val/questions.json, next to the human-style reference answers of
 * val/annotations.json. Runs in seconds, downloads nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VQA_DECODING } from '../core/models.js';
import { Blip2Error } from '../errors.js';
import { generateText, loadModel } from './generate.js';
import type { Io } from './io.js';
import { BACKEND, backendChoice, COMMON, parse } from './options.js';

export const DEMO_USAGE = `usage: blip2 demo [--model M] [--image I] [--backend node|web] [--device D] [--json]
  Captions shipped shapes-VQA validation images and answers their questions with the
  shipped shapes-blip2-opt and shapes-blip2-t5 models (found in tooling/fixtures/data/shapes-vqa
  of the repository), printing the reference answers beside the model's.
  --model M               run this checkpoint instead of the two shipped ones
  --image I               this image instead of the first two validation images`;

const SHAPES = join('tooling', 'fixtures', 'data', 'shapes-vqa');
/** when --image is not a validation image, the kinds of question the models were trained on */
const DEMO_IMAGE_IDS = [3, 4];

const GENERIC_QUESTIONS = [
  'What color is the circle?',
  'How many shapes are there?',
  'Is there a red square?',
];

/** The shipped shapes-vqa folder: walk up from this file to the repository root (the SDK must not depend on the fixtures package). */
export function findShapesVqa(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, SHAPES);
    if (existsSync(join(candidate, 'val', 'questions.json'))) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Blip2Error(
    'E_MISSING_FILE',
    `${SHAPES} was not found above ${from}: run the demo from a blip2-ts checkout, or give --model and --image`,
  );
}

interface Question {
  readonly image_id: number;
  readonly question: string;
  readonly question_id: number;
}
interface Annotation {
  readonly question_id: number;
  readonly answers: { answer: string }[];
}

export interface DemoQuestion {
  readonly question: string;
  readonly answer: string;
  /** the ten reference answers, when the image is a validation image */
  readonly references?: string[];
  /** what transformers answered with the same decoding (val/hf_predictions_*.json), when known */
  readonly transformers?: string;
}
export interface DemoImage {
  readonly image: string;
  readonly caption: string;
  readonly questions: DemoQuestion[];
}
export interface DemoModel {
  readonly model: string;
  readonly backend: string;
  readonly loadMs: number;
  readonly images: DemoImage[];
}

const imageFile = (id: number) => `COCO_val2014_${String(id).padStart(12, '0')}.jpg`;

/** VQA-style comparison: case, surrounding spaces and a final period do not count. */
const normalize = (a: string) => a.trim().toLowerCase().replace(/\.$/, '');

export async function demo(args: readonly string[], io: Io): Promise<number> {
  const { values } = parse(
    args,
    { ...COMMON, ...BACKEND, model: { type: 'string' }, image: { type: 'string' } },
    DEMO_USAGE,
  );
  if (values.help) {
    io.stdout.write(`${DEMO_USAGE}\n`);
    return 0;
  }
  const choice = backendChoice(values, DEMO_USAGE);
  const needShipped = values.model === undefined || values.image === undefined;
  const shapes = needShipped ? findShapesVqa() : undefined;
  const models =
    typeof values.model === 'string'
      ? [values.model]
      : [join(shapes as string, 'shapes-blip2-opt'), join(shapes as string, 'shapes-blip2-t5')];

  let questions: Question[] = [];
  const references = new Map<number, string[]>();
  if (shapes) {
    const val = join(shapes, 'val');
    questions = (JSON.parse(readFileSync(join(val, 'questions.json'), 'utf8')) as { questions: Question[] })
      .questions;
    const annotations = JSON.parse(readFileSync(join(val, 'annotations.json'), 'utf8')) as {
      annotations: Annotation[];
    };
    for (const a of annotations.annotations)
      references.set(
        a.question_id,
        a.answers.map((x) => x.answer),
      );
  }
  // images 3 and 4 between them ask every kind of question: color, count, which shape, yes/no
  const ids = new Set(questions.map((q) => q.image_id));
  const imageIds = DEMO_IMAGE_IDS.every((id) => ids.has(id)) ? DEMO_IMAGE_IDS : [...ids].slice(0, 2);
  const images =
    typeof values.image === 'string'
      ? [resolve(values.image)]
      : imageIds.map((id) => join(shapes as string, 'val', 'images', imageFile(id)));
  /** the validation questions of an image (by its file name), or the generic ones */
  const questionsOf = (image: string) => {
    const own = questions.filter((q) => imageFile(q.image_id) === basename(image));
    return own.length
      ? own.map((q) => ({
          question: q.question,
          id: q.question_id,
          references: references.get(q.question_id),
        }))
      : GENERIC_QUESTIONS.map((question) => ({ question, id: undefined, references: undefined }));
  };

  const results: DemoModel[] = [];
  for (const source of models) {
    const start = performance.now();
    const model = await loadModel(source, choice, io);
    const loadMs = Math.round(performance.now() - start);
    try {
      const out: DemoImage[] = [];
      for (const image of images) {
        const caption = (await generateText(model, image, undefined, {})).text;
        const answers: DemoQuestion[] = [];
        const predictions = shapes ? transformersAnswers(shapes, source) : new Map<number, string>();
        for (const { question, id, references: refs } of questionsOf(image)) {
          const prompt = model.questionTemplate.replace('{}', question);
          const { text } = await generateText(model, image, prompt, VQA_DECODING);
          const hf = id === undefined ? undefined : predictions.get(id);
          answers.push({
            question,
            answer: text,
            ...(refs ? { references: refs } : {}),
            ...(hf === undefined ? {} : { transformers: hf }),
          });
        }
        out.push({ image, caption, questions: answers });
      }
      results.push({ model: source, backend: model.backendName, loadMs, images: out });
      if (!values.json) io.stdout.write(formatModel(results[results.length - 1]));
    } finally {
      await model.dispose();
    }
  }
  if (values.json) io.stdout.write(`${JSON.stringify(results)}\n`);
  return 0;
}

/**
 * transformers' answers with the LAVIS recipe (the decoding `ask` uses) for the shipped
 * model `source`, by question id; empty for any other model.
 */
function transformersAnswers(shapes: string, source: string): Map<number, string> {
  const family = { 'shapes-blip2-opt': 'opt', 'shapes-blip2-t5': 't5' }[basename(resolve(source))];
  const path = join(shapes, 'val', `hf_predictions_${family}.json`);
  if (!family || !existsSync(path)) return new Map();
  const json = JSON.parse(readFileSync(path, 'utf8')) as {
    beam5_lavis?: { results: { question_id: number; answer: string }[] };
  };
  return new Map((json.beam5_lavis?.results ?? []).map((r) => [r.question_id, r.answer]));
}

function formatModel(m: DemoModel): string {
  const lines = [
    `${basename(m.model)} on ${m.backend} (loaded in ${m.loadMs} ms; trained for shapes VQA only, so its captions just repeat words)`,
  ];
  for (const image of m.images) {
    lines.push(`  ${basename(image.image)}`, `    caption: ${image.caption}`);
    for (const q of image.questions) {
      let reference = '';
      if (q.references) {
        const counts = new Map<string, number>();
        for (const r of q.references) counts.set(normalize(r), (counts.get(normalize(r)) ?? 0) + 1);
        const agree = counts.get(normalize(q.answer)) ?? 0;
        const list = [...counts].map(([a, n]) => `${a} x${n}`).join(', ');
        reference = `  (reference: ${list}; ${agree}/${q.references.length} agree)`;
      }
      if (q.transformers !== undefined) reference += `  [transformers: ${q.transformers}]`;
      lines.push(`    Q: ${q.question}  A: ${q.answer}${reference}`);
    }
  }
  return `${lines.join('\n')}\n\n`;
}
