/**
 * Option parsing shared by the commands. Our own small parser rather than
 * node:util parseArgs: every mistake must come out in our wording ("did you mean",
 * "--max-new-tokens must be ...", never Node's "argument is ambiguous"), and a
 * string option takes the next word as its value even when it starts with a dash
 * (`--length-penalty -1`, `--question "-why?"`).
 *
 * Every value is checked here, before a command loads anything: a usage mistake
 * exits 2 at once instead of after seconds of model loading.
 */
import { checkGenerationOptions, closest, GenerationError, type GenerationOptions } from '@blip2/generation';
import { type DTypeOption, parseDTypeFlag } from '../core/dtype.js';
import type { FromPretrainedOptions } from '../core/load.js';
import { BACKEND_DEVICES } from '../node-platform.js';
import { UsageError } from './errors.js';

export interface OptionDef {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** may be given several times; the value is then a list */
  readonly multiple?: boolean;
}
export type OptionSpec = Readonly<Record<string, OptionDef>>;
export type Values = Record<string, string | boolean | string[] | undefined>;

/** An option with its help: one entry gives the parser its spec and the usage text its line. */
export interface OptionHelp extends OptionDef {
  /** the value's placeholder in the usage text (`DIR`); absent for a boolean flag */
  readonly arg?: string;
  readonly help: string;
}
export type OptionTable = Readonly<Record<string, OptionHelp>>;

/** The parser's spec of a table. */
export function optionsOf(table: OptionTable): OptionSpec {
  return Object.fromEntries(
    Object.entries(table).map(([name, { type, short, multiple }]) => [
      name,
      { type, ...(short ? { short } : {}), ...(multiple ? { multiple } : {}) },
    ]),
  );
}

/** The usage lines of a table: `--name ARG`, then the help wrapped at `width` columns beside it. */
export function optionLines(table: OptionTable, width = 104): string {
  const column = 26;
  return Object.entries(table)
    .map(([name, { arg, help }]) => {
      const lines: string[] = [];
      let line = '';
      for (const word of help.split(' ')) {
        if (line && column + line.length + 1 + word.length > width) {
          lines.push(line);
          line = word;
        } else line = line ? `${line} ${word}` : word;
      }
      lines.push(line);
      const head = `  --${name}${arg ? ` ${arg}` : ''}`;
      return [
        `${head.padEnd(column - 1)} ${lines[0]}`,
        ...lines.slice(1).map((l) => `${' '.repeat(column)}${l}`),
      ].join('\n');
    })
    .join('\n');
}

export const COMMON: OptionSpec = {
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const BACKEND: OptionSpec = {
  backend: { type: 'string' },
  device: { type: 'string' },
  dtype: { type: 'string' },
};

/** Each generation flag and the GenerationOptions key it sets. */
const GENERATION_FLAGS = {
  'num-beams': { key: 'numBeams', kind: 'integer' },
  'max-new-tokens': { key: 'maxNewTokens', kind: 'integer' },
  'min-new-tokens': { key: 'minNewTokens', kind: 'integer' },
  'max-input-tokens': { key: 'maxInputTokens', kind: 'integer' },
  'length-penalty': { key: 'lengthPenalty', kind: 'number' },
  'repetition-penalty': { key: 'repetitionPenalty', kind: 'number' },
  'do-sample': { key: 'doSample', kind: 'boolean' },
  temperature: { key: 'temperature', kind: 'number' },
  'top-k': { key: 'topK', kind: 'integer' },
  'top-p': { key: 'topP', kind: 'number' },
  seed: { key: 'seed', kind: 'integer' },
} as const satisfies Record<string, { key: keyof GenerationOptions; kind: 'integer' | 'number' | 'boolean' }>;

export const GENERATION: OptionSpec = Object.fromEntries(
  Object.entries(GENERATION_FLAGS).map(([flag, { kind }]) => [
    flag,
    { type: kind === 'boolean' ? 'boolean' : 'string' },
  ]),
);

export function didYouMean(word: string, names: readonly string[], prefix = ''): string {
  const match = closest(word, names);
  return match === undefined ? '' : ` (did you mean '${prefix}${match}'?)`;
}

/**
 * `--name value`, `--name=value`, `-h`, boolean `--flag`, `--` (the rest are
 * positionals). Unknown options and missing values are usage errors.
 */
export function parse(
  args: readonly string[],
  options: OptionSpec,
  usage: string,
  positionals = 0,
): { values: Values; positionals: string[] } {
  const values: Values = {};
  const rest: string[] = [];
  const shorts = new Map(
    Object.entries(options).flatMap(([name, def]) => (def.short ? [[def.short, name] as const] : [])),
  );
  const set = (name: string, value: string | boolean) => {
    const def = options[name];
    if (def.multiple) values[name] = [...((values[name] as string[] | undefined) ?? []), String(value)];
    else if (values[name] !== undefined && def.type === 'string')
      throw new UsageError(`--${name} was given twice`, usage);
    else values[name] = value;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      rest.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const long = arg.startsWith('--');
    const rawName = long ? arg.slice(2, eq === -1 ? undefined : eq) : arg.slice(1);
    const name = long ? rawName : shorts.get(rawName);
    if (name === undefined || !(name in options)) {
      throw new UsageError(
        `unknown option '${long ? `--${rawName}` : arg}'${didYouMean(rawName, Object.keys(options), '--')}`,
        usage,
      );
    }
    const def = options[name];
    if (def.type === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`, usage);
      set(name, true);
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = args[i + 1];
      // a value may start with '-' (a negative number, a question); another option name is a forgotten value
      if (value === undefined || (value.startsWith('--') && value.slice(2).split('=')[0] in options))
        throw new UsageError(`--${name} needs a value`, usage);
      i++;
    }
    set(name, value);
  }
  if (rest.length > positionals) throw new UsageError(`unexpected argument '${rest[positionals]}'`, usage);
  return { values, positionals: rest };
}

export function required(values: Values, name: string, usage: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`, usage);
  return v;
}

/** A list option (`multiple`), empty when absent. */
export function list(values: Values, name: string): string[] {
  const v = values[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [String(v)];
}

function number(raw: string, flag: string, kind: 'integer' | 'number', usage: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || (kind === 'integer' && !Number.isInteger(n)))
    throw new UsageError(
      `--${flag} must be ${kind === 'integer' ? 'an integer' : 'a number'}, got '${raw}'`,
      usage,
    );
  return n;
}

/**
 * The generation flags given on the command line (absent ones stay unset: the
 * model's defaults apply), range-checked by @blip2/generation's own rules so the
 * CLI refuses exactly what generate would, before the model loads.
 */
export function generationOptions(values: Values, usage: string): GenerationOptions {
  const out: Record<string, number | boolean> = {};
  for (const [flag, { key, kind }] of Object.entries(GENERATION_FLAGS)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    out[key] = kind === 'boolean' ? raw === true : number(String(raw), flag, kind, usage);
  }
  const options = out as GenerationOptions;
  try {
    checkGenerationOptions(options);
  } catch (e) {
    if (!(e instanceof GenerationError)) throw e;
    // generation names the option (`numBeams must be ...`): name the flag instead
    const entry = Object.entries(GENERATION_FLAGS).find(([, f]) => e.message.startsWith(f.key));
    throw new UsageError(entry ? e.message.replace(entry[1].key, `--${entry[0]}`) : e.message, usage);
  }
  return options;
}

const BACKENDS = Object.keys(BACKEND_DEVICES) as (keyof typeof BACKEND_DEVICES)[];

export function backendChoice(
  values: Values,
  usage: string,
): Pick<FromPretrainedOptions, 'backend' | 'device' | 'dtype'> {
  const backend = values.backend;
  if (backend !== undefined && !(BACKENDS as string[]).includes(String(backend)))
    throw new UsageError(
      `--backend must be 'node' or 'web', got '${backend}'${didYouMean(String(backend), BACKENDS)}`,
      usage,
    );
  const device = values.device;
  const devices: readonly string[] = BACKEND_DEVICES[(backend as 'node' | 'web' | undefined) ?? 'node'];
  if (device !== undefined && !devices.includes(String(device)))
    throw new UsageError(
      `--device for --backend ${backend ?? 'node'} is one of ${devices.join(', ')}, got '${device}'${didYouMean(String(device), devices)}`,
      usage,
    );
  return {
    ...(backend === undefined ? {} : { backend: backend as 'node' | 'web' }),
    ...(typeof device === 'string' ? { device } : {}),
    ...(typeof values.dtype === 'string' ? { dtype: dtypeFlag(values.dtype, usage) } : {}),
  };
}

/** --dtype q4, or --dtype vision=fp16,qformer=fp32,language_model=q4 */
export function dtypeFlag(text: string, usage: string): DTypeOption {
  try {
    return parseDTypeFlag(text);
  } catch (e) {
    throw new UsageError(`--dtype: ${(e as Error).message}`, usage);
  }
}

export const DTYPE_HELP = `  --dtype D               weight format: fp32|fp16|q8|q4|q4f16, or per module
                          vision=fp16,qformer=fp32,language_model=q4 (unnamed: fp32)`;
