/**
 * The models shipped in the repository (tooling/fixtures/data/shapes-vqa): where they are, which
 * one is the embedded default, and which ones only answer questions.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SdkError } from '../errors.js';

const SHAPES = join('tooling', 'fixtures', 'data', 'shapes-vqa');
/** the embedded default: captions and answers */
export const CAPTIONER = 'shapes-blip2-opt-captioner';
/**
 * The shipped models trained for shapes VQA only: with no text they say "1 1 1 1 ...",
 * "triangle triangle ..." or nothing, so any caption of theirs is shown with this warning.
 */
const VQA_ONLY = ['shapes-blip2-opt', 'shapes-blip2-t5'];
export const VQA_ONLY_NOTE =
  'a VQA-only model: its captions are meaningless, it was trained to answer questions only';

/** Whether `source` is one of the shipped VQA-only shapes models (by folder name). */
export function isVqaOnlyModel(source: string): boolean {
  return VQA_ONLY.includes(basename(source.replace(/[\\/]+$/, '')));
}

/**
 * `relative` (a path from the repository root) in the first folder above `from` where
 * `relative/marker` exists. The SDK does not depend on the fixtures package: commands
 * that use shipped files (demo, bench) find them in a checkout, or are given paths.
 */
export function findInCheckout(
  relative: string,
  marker: string,
  what: string,
  from = dirname(fileURLToPath(import.meta.url)),
): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, relative);
    if (existsSync(join(candidate, marker))) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new SdkError('E_MISSING_FILE', `${relative} was not found above ${from}: ${what}`);
}

/** The shipped shapes-vqa folder of the checkout. */
export function findShapesVqa(from?: string): string {
  return findInCheckout(
    SHAPES,
    join('val', 'questions.json'),
    'run the demo from a blip2-ts checkout, or give --model and --image',
    from,
  );
}
