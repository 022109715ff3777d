/**
 * `runParity(dir)`: replays every case of a reference fixture folder (computed with
 * Hugging Face transformers) through blip2-ts and reports each difference against
 * the fixture tolerances. The folder's kind is recognized from what it holds:
 * - a model folder: `reference.json` + `reference.safetensors` beside a checkpoint;
 * - a tokenizer folder: `cases.json` + `tokenizer.json`;
 * - an images folder: `pixel_values.safetensors` + the image files.
 * This is the one place that knows the fixture formats; `blip2 parity` prints it.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BACKEND_CHOICE_NAMES, checkOptionNames } from '../core/option-names.js';
import type { BackendChoice } from '../core/platform.js';
import { SdkError } from '../errors.js';
import { imagesParity } from './images.js';
import { type ModelParityOptions, modelParity } from './model.js';
import type { FixtureKind, ParityReport } from './report.js';
import { tokenizerParity } from './tokenizer.js';

export type { ModelParityOptions as ParityOptions } from './model.js';
export {
  type ExactCheck,
  type FixtureKind,
  type GenerateCheck,
  type ParityReport,
  PIXEL_TOLERANCE,
  SCORE_TOLERANCE,
  TENSOR_TOLERANCE,
  type TensorCheck,
} from './report.js';

/** Which kind of fixture folder `dir` is, from the files it holds. */
export function fixtureKind(dir: string): FixtureKind {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new SdkError('E_SOURCE', `${dir}: not a folder (give a fixture folder)`);
  }
  const has = (name: string) => existsSync(join(dir, name));
  if (has('reference.json') && has('reference.safetensors')) return 'model';
  if (has('cases.json') && has('tokenizer.json')) return 'tokenizer';
  if (has('pixel_values.safetensors')) return 'images';
  throw new SdkError(
    'E_MISSING_FILE',
    `${dir} is not a fixture folder: it has neither reference.json + reference.safetensors (model), cases.json + tokenizer.json (tokenizer) nor pixel_values.safetensors (images)`,
  );
}

const PARITY_OPTION_NAMES: readonly string[] = [
  ...BACKEND_CHOICE_NAMES,
  ...Object.keys({ dtype: true, cacheDir: true, imagesDir: true, onProgress: true } satisfies Record<
    Exclude<keyof ModelParityOptions, keyof BackendChoice>,
    true
  >),
];

export async function runParity(dir: string, options: ModelParityOptions = {}): Promise<ParityReport> {
  checkOptionNames(options, PARITY_OPTION_NAMES, 'runParity options');
  const folder = resolve(dir);
  switch (fixtureKind(folder)) {
    case 'model':
      return modelParity(folder, options);
    case 'tokenizer':
      return tokenizerParity(folder);
    case 'images':
      return imagesParity(folder);
  }
}
