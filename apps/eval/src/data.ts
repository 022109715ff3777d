/**
 * Reading the VQAv2 files (official layout: `v2_OpenEnded_mscoco_val2014_questions.json`,
 * `v2_mscoco_val2014_annotations.json`, results `[{question_id, answer}]`), with errors that
 * name the file and the field at fault, and mapping questions to their image files.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFileSync } from '@blip2/configs/node';
import { VqaEvalError } from './errors.js';
import type { VqaAnnotation, VqaAnswer, VqaResult } from './vqa-eval.js';

export interface VqaQuestion {
  question_id: number;
  image_id: number;
  question: string;
}

export function readJson(path: string): unknown {
  return readJsonFileSync(path, {
    fail: (fault, file, reason, cause) =>
      new VqaEvalError(fault === 'invalid' ? 'E_JSON' : 'E_READ', `${file}: ${reason}`, { cause }),
  });
}

function fieldError(file: string, field: string, expected: string, value: unknown): VqaEvalError {
  const shown = value === undefined ? 'missing' : `got ${JSON.stringify(value)?.slice(0, 80)}`;
  return new VqaEvalError('E_FIELD', `${file}: ${field} must be ${expected} (${shown})`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function int(file: string, obj: Record<string, unknown>, field: string, at: string): number {
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v))
    throw fieldError(file, `${at}.${field}`, 'an integer', v);
  return v;
}

function str(file: string, obj: Record<string, unknown>, field: string, at: string): string {
  const v = obj[field];
  if (typeof v !== 'string') throw fieldError(file, `${at}.${field}`, 'a string', v);
  return v;
}

function list(file: string, root: unknown, field: string): unknown[] {
  if (!isRecord(root)) throw fieldError(file, 'the top level', `an object with "${field}"`, root);
  const v = root[field];
  if (!Array.isArray(v)) throw fieldError(file, field, 'an array', v);
  return v;
}

/** Questions in file order. */
export function loadQuestions(path: string): VqaQuestion[] {
  const seen = new Set<number>();
  return list(path, readJson(path), 'questions').map((q, i) => {
    const at = `questions[${i}]`;
    if (!isRecord(q)) throw fieldError(path, at, 'an object', q);
    const question: VqaQuestion = {
      question_id: int(path, q, 'question_id', at),
      image_id: int(path, q, 'image_id', at),
      question: str(path, q, 'question', at),
    };
    if (seen.has(question.question_id)) {
      throw new VqaEvalError(
        'E_DUPLICATE',
        `${path}: ${at}.question_id ${question.question_id} appears twice`,
      );
    }
    seen.add(question.question_id);
    return question;
  });
}

/** Annotations keyed by question id, in file order. */
export function loadAnnotations(path: string): Map<number, VqaAnnotation> {
  const byId = new Map<number, VqaAnnotation>();
  list(path, readJson(path), 'annotations').forEach((a, i) => {
    const at = `annotations[${i}]`;
    if (!isRecord(a)) throw fieldError(path, at, 'an object', a);
    const rawAnswers = a.answers;
    if (!Array.isArray(rawAnswers) || rawAnswers.length === 0) {
      throw fieldError(path, `${at}.answers`, 'a non-empty array', rawAnswers);
    }
    const answers = rawAnswers.map((ans, j) => {
      const aat = `${at}.answers[${j}]`;
      if (!isRecord(ans)) throw fieldError(path, aat, 'an object', ans);
      str(path, ans, 'answer', aat);
      return { ...ans } as VqaAnswer;
    });
    const annotation: VqaAnnotation = {
      question_id: int(path, a, 'question_id', at),
      image_id: int(path, a, 'image_id', at),
      question_type: str(path, a, 'question_type', at),
      answer_type: str(path, a, 'answer_type', at),
      answers,
    };
    if (typeof a.multiple_choice_answer === 'string')
      annotation.multiple_choice_answer = a.multiple_choice_answer;
    if (byId.has(annotation.question_id)) {
      throw new VqaEvalError(
        'E_DUPLICATE',
        `${path}: ${at}.question_id ${annotation.question_id} appears twice`,
      );
    }
    byId.set(annotation.question_id, annotation);
  });
  return byId;
}

/** Validates an official results array `[{question_id, answer}]` (already parsed). */
export function parseResults(label: string, data: unknown): VqaResult[] {
  if (!Array.isArray(data))
    throw fieldError(label, 'the top level', 'an array of {question_id, answer}', data);
  const seen = new Set<number>();
  return data.map((r, i) => {
    const at = `[${i}]`;
    if (!isRecord(r)) throw fieldError(label, at, 'an object', r);
    const result = { question_id: int(label, r, 'question_id', at), answer: str(label, r, 'answer', at) };
    if (seen.has(result.question_id)) {
      throw new VqaEvalError(
        'E_DUPLICATE',
        `${label}: ${at}.question_id ${result.question_id} is answered twice`,
      );
    }
    seen.add(result.question_id);
    return result;
  });
}

export function loadResults(path: string): VqaResult[] {
  return parseResults(path, readJson(path));
}

/** The annotations of the given questions; every question must have one. */
export function annotationsFor(
  questions: readonly VqaQuestion[],
  annotations: ReadonlyMap<number, VqaAnnotation>,
  annotationsPath: string,
): Map<number, VqaAnnotation> {
  const out = new Map<number, VqaAnnotation>();
  for (const q of questions) {
    const a = annotations.get(q.question_id);
    if (!a) {
      throw new VqaEvalError(
        'E_MISSING_ANNOTATION',
        `${annotationsPath}: no annotation for question_id ${q.question_id} ("${q.question}")`,
      );
    }
    // an annotation of another image would score answers about one picture against another's
    if (a.image_id !== q.image_id) {
      throw new VqaEvalError(
        'E_ANNOTATION_MISMATCH',
        `${annotationsPath}: the annotation of question_id ${q.question_id} is for image_id ${a.image_id}, ` +
          `but the question is about image_id ${q.image_id}`,
      );
    }
    out.set(q.question_id, a);
  }
  return out;
}

export const DEFAULT_IMAGE_PATTERN = 'COCO_val2014_{image_id:012d}.jpg';

const PLACEHOLDER = /\{([^{}]*)\}/g;

/**
 * Compiles a Python-format-style file name pattern. Fields: `image_id` and `question_id`, with
 * an optional integer spec `:d`, `:Nd` (space-padded) or `:0Nd` (zero-padded), as Python's
 * `'{image_id:012d}'.format(...)` does. `{{` and `}}` are literal braces.
 */
export function compileImagePattern(pattern: string): (q: VqaQuestion) => string {
  const parts: Array<string | { field: 'image_id' | 'question_id'; zero: boolean; width: number }> = [];
  let last = 0;
  const escaped = pattern.replaceAll('{{', '\u0000').replaceAll('}}', '\u0001');
  for (const m of escaped.matchAll(PLACEHOLDER)) {
    parts.push(escaped.slice(last, m.index));
    const spec = /^(image_id|question_id)(?::(0?)(\d*)d)?$/.exec(m[1]!);
    if (!spec) {
      throw new VqaEvalError(
        'E_PATTERN',
        `--image-pattern "${pattern}": unsupported field "{${m[1]}}" (use {image_id}, {image_id:012d} or {question_id})`,
      );
    }
    parts.push({
      field: spec[1] as 'image_id' | 'question_id',
      zero: spec[2] === '0',
      width: Number(spec[3] || 0),
    });
    last = m.index! + m[0].length;
  }
  parts.push(escaped.slice(last));
  for (const p of parts) {
    if (typeof p === 'string' && /[{}]/.test(p)) {
      throw new VqaEvalError('E_PATTERN', `--image-pattern "${pattern}": unmatched brace`);
    }
  }
  if (!parts.some((p) => typeof p !== 'string')) {
    throw new VqaEvalError('E_PATTERN', `--image-pattern "${pattern}": has no {image_id} field`);
  }
  return (q) =>
    parts
      .map((p) => {
        if (typeof p === 'string') return p.replaceAll('\u0000', '{').replaceAll('\u0001', '}');
        const n = q[p.field];
        const digits = String(Math.abs(n));
        const sign = n < 0 ? '-' : '';
        return p.zero
          ? sign + digits.padStart(p.width - sign.length, '0')
          : (sign + digits).padStart(p.width, ' ');
      })
      .join('');
}

/** Each question's image path; every image must exist, checked before any model runs. */
export function resolveImages(
  questions: readonly VqaQuestion[],
  imagesDir: string,
  pattern: string,
): Map<number, string> {
  const nameOf = compileImagePattern(pattern);
  const paths = new Map<number, string>();
  const missing: string[] = [];
  const checked = new Map<string, boolean>();
  for (const q of questions) {
    const path = join(imagesDir, nameOf(q));
    let exists = checked.get(path);
    if (exists === undefined) {
      exists = existsSync(path);
      checked.set(path, exists);
    }
    if (!exists) missing.push(`question_id ${q.question_id} (image_id ${q.image_id}): ${path}`);
    paths.set(q.question_id, path);
  }
  if (missing.length > 0) {
    throw new VqaEvalError(
      'E_IMAGE_MISSING',
      `${missing.length} image(s) not found (--images ${imagesDir}, --image-pattern ${pattern}): ` +
        missing.slice(0, 10).join('; ') +
        (missing.length > 10 ? '; ...' : ''),
    );
  }
  return paths;
}
