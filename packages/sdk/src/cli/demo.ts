/**
 * `blip2 demo`: the embedded default, shapes-blip2-opt-captioner (a BLIP-2 trained on colored
 * shapes, 1.08M parameters, shipped in the repository), captions validation images beside their
 * true captions (val/captions.json), counts how many of the 100 val captions it gets exactly, and
 * answers the images' questions from val/questions.json next to the human-style reference answers
 * of val/annotations.json. Runs in seconds, downloads nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { askText, generateText, loadModel } from './generate.js';
import type { Io } from './io.js';
import { BACKEND, backendChoice, COMMON, parse } from './options.js';
import { CAPTIONER, findShapesVqa, isVqaOnlyModel, VQA_ONLY_NOTE } from './shipped.js';

export const DEMO_USAGE = `usage: blip2 demo [--model M] [--image I] [--backend node|web] [--device D] [--json]
  The embedded default, shapes-blip2-opt-captioner (found in tooling/fixtures/data/shapes-vqa of
  the repository), captions validation images 3 and 4 beside their true captions, counts how many
  of the 100 validation captions it gets exactly, and answers the images' questions, printing the
  reference answers beside the model's.
  --model M               run this checkpoint instead (e.g. the VQA-only shapes-blip2-opt)
  --image I               this image instead of validation images 3 and 4`;

/** validation images whose questions between them cover color, count, which shape and yes/no */
const DEMO_IMAGE_IDS = [3, 4];

const GENERIC_QUESTIONS = [
  'What color is the circle?',
  'How many shapes are there?',
  'Is there a red square?',
];

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
  /** the true caption (val/captions.json), when the image is a validation image */
  readonly trueCaption?: string;
  readonly questions: DemoQuestion[];
}
export interface DemoModel {
  readonly model: string;
  readonly backend: string;
  readonly loadMs: number;
  /** one of the shipped VQA-only models, whose captions mean nothing */
  readonly vqaOnly: boolean;
  /** greedy captions of every val image equal to the true one, character for character */
  readonly exactCaptions?: { readonly exact: number; readonly total: number };
  readonly images: DemoImage[];
}

const imageFile = (id: number) => `COCO_val2014_${String(id).padStart(12, '0')}.jpg`;

/** VQA-style comparison: case, surrounding spaces and a final period do not count. */
const normalize = (a: string) => a.trim().toLowerCase().replace(/\.$/, '');

/** Reads a JSON file of the shipped val set. */
const readVal = <T>(shapes: string, name: string): T =>
  JSON.parse(readFileSync(join(shapes, 'val', name), 'utf8')) as T;

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
  const source = typeof values.model === 'string' ? values.model : join(shapes as string, CAPTIONER);

  let questions: Question[] = [];
  const references = new Map<number, string[]>();
  const trueCaptions = new Map<string, string>();
  if (shapes) {
    questions = readVal<{ questions: Question[] }>(shapes, 'questions.json').questions;
    for (const a of readVal<{ annotations: Annotation[] }>(shapes, 'annotations.json').annotations)
      references.set(
        a.question_id,
        a.answers.map((x) => x.answer),
      );
    for (const c of readVal<{ image_id: number; caption: string }[]>(shapes, 'captions.json'))
      trueCaptions.set(imageFile(c.image_id), c.caption);
  }
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

  const start = performance.now();
  const model = await loadModel(source, choice, io);
  const loadMs = Math.round(performance.now() - start);
  let result: DemoModel;
  try {
    const predictions = shapes ? transformersAnswers(shapes, source) : new Map<number, string>();
    const out: DemoImage[] = [];
    for (const image of images) {
      const caption = (await generateText(model, image, undefined, {})).text;
      const answers: DemoQuestion[] = [];
      for (const { question, id, references: refs } of questionsOf(image)) {
        const { text } = await askText(model, image, question, {});
        const hf = id === undefined ? undefined : predictions.get(id);
        answers.push({
          question,
          answer: text,
          ...(refs ? { references: refs } : {}),
          ...(hf === undefined ? {} : { transformers: hf }),
        });
      }
      const truth = trueCaptions.get(basename(image));
      out.push({
        image,
        caption,
        ...(truth === undefined ? {} : { trueCaption: truth }),
        questions: answers,
      });
    }
    let exactCaptions: DemoModel['exactCaptions'];
    if (shapes && trueCaptions.size > 0) {
      // one batch: the image side runs once per image, then greedy decoding of all of them together
      const files = [...trueCaptions.keys()];
      const captions = [await model.caption(files.map((f) => join(shapes, 'val', 'images', f)))].flat();
      const exact = captions.filter((c, i) => c === trueCaptions.get(files[i])).length;
      exactCaptions = { exact, total: files.length };
    }
    result = {
      model: source,
      backend: model.backendName,
      loadMs,
      vqaOnly: isVqaOnlyModel(source),
      ...(exactCaptions ? { exactCaptions } : {}),
      images: out,
    };
  } finally {
    await model.dispose();
  }
  io.stdout.write(values.json ? `${JSON.stringify(result)}\n` : formatModel(result));
  return 0;
}

/**
 * transformers' answers with the LAVIS recipe (the decoding `ask` uses) for the shipped
 * VQA-only model `source`, by question id; empty for any other model.
 */
function transformersAnswers(shapes: string, source: string): Map<number, string> {
  // the two shipped demo models, by folder name: their predictions files are named per family
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
    `${basename(m.model)} on ${m.backend} (loaded in ${m.loadMs} ms${m.vqaOnly ? `; ${VQA_ONLY_NOTE}` : ''})`,
  ];
  for (const image of m.images) {
    const truth = image.trueCaption === undefined ? '' : `  (true: ${image.trueCaption})`;
    lines.push(`  ${basename(image.image)}`, `    caption: ${image.caption || '(empty)'}${truth}`);
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
  if (m.exactCaptions) {
    const { exact, total } = m.exactCaptions;
    lines.push(`  captions exactly right on the ${total} val images (greedy): ${exact}/${total}`);
  }
  return `${lines.join('\n')}\n`;
}
