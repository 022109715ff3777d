/** Option parsing shared by the commands (node:util parseArgs, strict: unknown options are usage errors). */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { GenerationOptions } from '@blip2/generation';
import type { FromPretrainedOptions } from '../core/load.js';
import { UsageError } from './errors.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export const COMMON: OptionSpec = {
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const BACKEND: OptionSpec = {
  backend: { type: 'string' },
  device: { type: 'string' },
};

export const GENERATION: OptionSpec = {
  'num-beams': { type: 'string' },
  'max-new-tokens': { type: 'string' },
  'min-new-tokens': { type: 'string' },
  'length-penalty': { type: 'string' },
  'repetition-penalty': { type: 'string' },
};

export function parse(
  args: readonly string[],
  options: OptionSpec,
  usage: string,
  positionals = 0,
): { values: Values; positionals: string[] } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: positionals > 0, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message, usage);
  }
  if (parsed.positionals.length > positionals)
    throw new UsageError(`unexpected argument '${parsed.positionals[positionals]}'`, usage);
  return { values: parsed.values as Values, positionals: parsed.positionals };
}

export function required(values: Values, name: string, usage: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`, usage);
  return v;
}

function number(values: Values, name: string, usage: string, integer: boolean): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (
    typeof raw !== 'string' ||
    raw.trim() === '' ||
    !Number.isFinite(n) ||
    (integer && !Number.isInteger(n))
  )
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}, got '${raw}'`, usage);
  return n;
}

/** The generation flags given on the command line (absent ones stay unset: the model's defaults apply). */
export function generationOptions(values: Values, usage: string): GenerationOptions {
  const out: GenerationOptions = {
    numBeams: number(values, 'num-beams', usage, true),
    maxNewTokens: number(values, 'max-new-tokens', usage, true),
    minNewTokens: number(values, 'min-new-tokens', usage, true),
    lengthPenalty: number(values, 'length-penalty', usage, false),
    repetitionPenalty: number(values, 'repetition-penalty', usage, false),
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as GenerationOptions;
}

export function backendChoice(
  values: Values,
  usage: string,
): Pick<FromPretrainedOptions, 'backend' | 'device'> {
  const backend = values.backend;
  if (backend !== undefined && backend !== 'node' && backend !== 'web')
    throw new UsageError(`--backend must be 'node' or 'web', got '${backend}'`, usage);
  return {
    ...(backend === undefined ? {} : { backend }),
    ...(typeof values.device === 'string' ? { device: values.device } : {}),
  };
}
