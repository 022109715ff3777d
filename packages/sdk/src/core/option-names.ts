/**
 * The names every SDK entry point takes, so a misspelt option (`devise`, `cachedir`) is
 * refused by name with the closest known one instead of being silently ignored. Each
 * list is tied to its interface by `satisfies`: adding an option without naming it here
 * does not compile.
 */
import type { KvLoadOptions } from '@blip2/onnx';
import { unknownOptionMessage } from '@blip2/tensor';
import { SdkError } from '../errors.js';
import type { FromPretrainedOptions } from './load.js';
import type { BackendChoice, SourceOptions } from './platform.js';

type Timeouts = NonNullable<SourceOptions['timeouts']>;

export const SOURCE_OPTION_NAMES: readonly string[] = Object.keys({
  cacheDir: true,
  endpoint: true,
  token: true,
  revision: true,
  headers: true,
  onProgress: true,
  timeouts: true,
  signal: true,
} satisfies Record<keyof SourceOptions, true>);

const TIMEOUT_NAMES = Object.keys({
  connectMs: true,
  idleMs: true,
  minBytesPerSecond: true,
} satisfies Record<keyof Timeouts, true>);

export const BACKEND_CHOICE_NAMES: readonly string[] = Object.keys({
  backend: true,
  device: true,
  fallback: true,
  threads: true,
  deviceId: true,
  onWarning: true,
} satisfies Record<keyof BackendChoice, true>);

const LANGUAGE_MODEL_OPTION_NAMES = Object.keys({ batchedStep: true } satisfies Record<
  keyof KvLoadOptions,
  true
>);

export const FROM_PRETRAINED_OPTION_NAMES: readonly string[] = [
  ...SOURCE_OPTION_NAMES,
  ...BACKEND_CHOICE_NAMES,
  ...Object.keys({
    dtype: true,
    languageModel: true,
    languageModelOptions: true,
  } satisfies Record<Exclude<keyof FromPretrainedOptions, keyof SourceOptions | keyof BackendChoice>, true>),
];

/** Refuses `options` that are not an object, or hold a name outside `known` (E_OPTION). */
export function checkOptionNames(options: unknown, known: readonly string[], where: string): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    const got = options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options;
    throw new SdkError('E_OPTION', `${where} must be an object, got ${got}`);
  }
  const unknown = unknownOptionMessage(options, known, where);
  if (unknown) throw new SdkError('E_OPTION', unknown);
}

/** The source options' names, and those of `timeouts` inside them. */
export function checkSourceOptions(options: unknown, known: readonly string[], where: string): void {
  checkOptionNames(options, known, where);
  const timeouts = (options as SourceOptions | undefined)?.timeouts;
  if (timeouts !== undefined) checkOptionNames(timeouts, TIMEOUT_NAMES, `${where} timeouts`);
}

/** Every `fromPretrained`'s options (models and pipelines), nested ones included. */
export function checkFromPretrainedOptions(
  options: unknown,
  where: string,
  known: readonly string[] = FROM_PRETRAINED_OPTION_NAMES,
): void {
  checkSourceOptions(options, known, where);
  const lm = (options as FromPretrainedOptions | undefined)?.languageModelOptions;
  if (lm !== undefined) checkOptionNames(lm, LANGUAGE_MODEL_OPTION_NAMES, `${where} languageModelOptions`);
}
