/**
 * Reading one JSON object field by field. Every config parser goes through a
 * `Fields` so that a bad value is always reported the same way: the file, the
 * dotted path of the field as it is spelled in the JSON, and the value found.
 */

import { Blip2Error, isObject } from '@blip2/tensor';
import { type JsonFail, parseJson } from './json.js';

/** Stable codes, so callers can branch without parsing messages. */
export type ConfigErrorCode =
  /** a field is missing, out of range, or inconsistent with another field */
  | 'E_CONFIG_FIELD'
  /** a field holds the wrong JSON type (a string where a number belongs, ...) */
  | 'E_CONFIG_TYPE'
  /** `model_type` names a model this library does not implement */
  | 'E_MODEL_TYPE'
  /** `architectures` names a BLIP-2 head this library does not run (image-text retrieval) */
  | 'E_ARCHITECTURE'
  /** the file is not valid JSON, or not a JSON object */
  | 'E_CONFIG_JSON'
  /** the file could not be read (Node helpers) */
  | 'E_CONFIG_FILE'
  /** no preset under that name */
  | 'E_PRESET';

export class ConfigError extends Blip2Error<ConfigErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.ConfigError');
  /** the file at fault, e.g. 'config.json' or an absolute path */
  readonly file: string;
  /** dotted JSON path of the field at fault ('text_config.hidden_size'), when there is one */
  readonly field?: string;
  constructor(
    code: ConfigErrorCode,
    file: string,
    message: string,
    field?: string,
    options?: { cause?: unknown },
  ) {
    super(code, `${file}: ${message}`, options);
    this.name = 'ConfigError';
    this.file = file;
    this.field = field;
  }
}

export type JsonObject = Record<string, unknown>;

/**
 * Upper bounds of config values, so a hostile or mistyped number (`1e15`, `2 ** 40`) is
 * refused where it is read instead of reaching a shape, a typed array or a loop. Each is
 * far above every published model (noted), so no real checkpoint comes near one.
 */
export const CONFIG_LIMITS = {
  /** any integer field: int32, the widest dimension or id every onnxruntime input takes */
  int: 2 ** 31 - 1,
  /** a layer width (hidden_size, intermediate_size, ffn_dim, d_model, d_ff, d_kv): OPT-175B's ffn_dim is 49152 */
  width: 65536,
  /** layers of one stack: OPT-175B has 96 */
  layers: 1024,
  /** attention heads of one layer: OPT-175B has 96 */
  heads: 1024,
  /** vocabulary rows: 2^24, the largest count whose ids float32 holds exactly (published: 50272) */
  vocab: 2 ** 24,
  /** learned or bucketed positions: OPT has 2048 */
  positions: 2 ** 20,
  /** side of the ViT's square input in pixels (published: 224 and 364); the processor's size too */
  imageSize: 4096,
  /** learned Q-Former queries (published: 32) */
  queryTokens: 4096,
} as const;

export { isObject };

/** `JSON.stringify` that never throws and stays short, for messages. */
export function show(v: unknown): string {
  if (v === undefined) return 'undefined';
  // JSON.stringify spells them null; `1e999` in a file parses to Infinity
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** How @blip2/configs reports a JSON file it cannot use: E_CONFIG_FILE, or E_CONFIG_JSON when it is not JSON. */
export const configJsonFail: JsonFail = (fault, file, reason, cause) =>
  new ConfigError(fault === 'invalid' ? 'E_CONFIG_JSON' : 'E_CONFIG_FILE', file, reason, undefined, {
    cause,
  });

/** Parses JSON text, reporting the file when it is not JSON or not an object. */
export function parseJsonObject(text: string, file: string): JsonObject {
  return jsonObject(parseJson(text, file, configJsonFail), file);
}

/** `v`, parsed from `file`, as a JSON object: anything else is E_CONFIG_JSON. */
export function jsonObject(v: unknown, file: string): JsonObject {
  if (!isObject(v)) throw new ConfigError('E_CONFIG_JSON', file, `expected a JSON object, got ${show(v)}`);
  return v;
}

/**
 * Typed access to the fields of one JSON object. `null` counts as absent, as
 * Python's `None` does for the reference's keyword defaults.
 */
export class Fields {
  constructor(
    readonly file: string,
    readonly obj: JsonObject,
    /** prefix of field paths, e.g. 'text_config.' */
    readonly prefix = '',
  ) {}

  static of(json: unknown, file: string, prefix = ''): Fields {
    if (!isObject(json)) {
      const where = prefix ? `${prefix.slice(0, -1)} must be a JSON object` : 'expected a JSON object';
      throw new ConfigError(
        'E_CONFIG_TYPE',
        file,
        `${where}, got ${show(json)}`,
        prefix.slice(0, -1) || undefined,
      );
    }
    return new Fields(file, json, prefix);
  }

  path(name: string): string {
    return this.prefix + name;
  }

  has(name: string): boolean {
    return this.obj[name] !== undefined && this.obj[name] !== null;
  }

  raw(name: string): unknown {
    const v = this.obj[name];
    return v === null ? undefined : v;
  }

  typeError(name: string, expected: string, value: unknown = this.obj[name]): ConfigError {
    return new ConfigError(
      'E_CONFIG_TYPE',
      this.file,
      `${this.path(name)}: expected ${expected}, got ${show(value)}`,
      this.path(name),
    );
  }

  fieldError(name: string, message: string): ConfigError {
    return new ConfigError('E_CONFIG_FIELD', this.file, `${this.path(name)} ${message}`, this.path(name));
  }

  /** A nested object (`vision_config`), or `{}` when absent: the reference builds the default sub-config. */
  sub(name: string): Fields {
    const v = this.raw(name);
    if (v === undefined) return new Fields(this.file, {}, `${this.path(name)}.`);
    if (!isObject(v)) throw this.typeError(name, 'a JSON object');
    return new Fields(this.file, v, `${this.path(name)}.`);
  }

  number(name: string, dflt: number): number {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.typeError(name, 'a number');
    return v;
  }

  /** A number > 0 (epsilons, scales). */
  positive(name: string, dflt: number): number {
    const v = this.number(name, dflt);
    if (!(v > 0)) throw this.fieldError(name, `must be > 0, got ${v}`);
    return v;
  }

  /** A probability-like number in [0, 1] (dropouts). */
  fraction(name: string, dflt: number): number {
    const v = this.number(name, dflt);
    if (v < 0 || v > 1) throw this.fieldError(name, `must be in [0, 1], got ${v}`);
    return v;
  }

  int(name: string, dflt: number): number {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.typeError(name, 'an integer');
    if (Math.abs(v) > CONFIG_LIMITS.int) {
      throw this.fieldError(name, `must be within ±${CONFIG_LIMITS.int} (int32), got ${v}`);
    }
    return v;
  }

  /** An integer in [1, max] (sizes, counts of layers and heads). */
  size(name: string, dflt: number, max: number = CONFIG_LIMITS.int): number {
    const v = this.int(name, dflt);
    if (v < 1 || v > max) throw this.fieldError(name, `must be an integer in [1, ${max}], got ${v}`);
    return v;
  }

  /** An integer >= 0 (counts that may be zero). */
  index(name: string, dflt: number): number {
    const v = this.int(name, dflt);
    if (v < 0) throw this.fieldError(name, `must be a non-negative integer, got ${v}`);
    return v;
  }

  /**
   * A token id: an integer in [0, vocabSize), where the embedding has a row for it
   * (`vocabField` names the size in the message, e.g. 'text_config.vocab_size').
   */
  tokenId(name: string, dflt: number, vocabSize: number, vocabField: string): number {
    const v = this.int(name, dflt);
    if (v < 0 || v >= vocabSize) {
      throw this.fieldError(
        name,
        `(${v}) is not a token id of ${vocabField} (${vocabSize}): must be in [0, ${vocabSize - 1}]`,
      );
    }
    return v;
  }

  optionalTokenId(name: string, vocabSize: number, vocabField: string): number | undefined {
    return this.has(name) ? this.tokenId(name, 0, vocabSize, vocabField) : undefined;
  }

  optionalIndex(name: string): number | undefined {
    return this.has(name) ? this.index(name, 0) : undefined;
  }

  bool(name: string, dflt: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw this.typeError(name, 'true or false');
    return v;
  }

  string(name: string, dflt: string): string {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    if (typeof v !== 'string') throw this.typeError(name, 'a string');
    return v;
  }

  optionalString(name: string): string | undefined {
    return this.has(name) ? this.string(name, '') : undefined;
  }

  /** A list of finite numbers of one of the allowed lengths. */
  numbers(name: string, dflt: readonly number[], lengths: readonly number[]): number[] {
    const v = this.raw(name);
    if (v === undefined) return [...dflt];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw this.typeError(name, 'a list of numbers');
    }
    if (!lengths.includes(v.length)) {
      throw this.fieldError(name, `must hold ${lengths.join(' or ')} numbers, got ${v.length}`);
    }
    return v as number[];
  }

  /** A token id or a list of them (generation's `eos_token_id`). */
  indexOrList(name: string): number | number[] | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (Array.isArray(v)) {
      if (v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0)) {
        throw this.typeError(name, 'a token id or a list of token ids');
      }
      return v as number[];
    }
    return this.index(name, 0);
  }
}

/** The reference's check before splitting a width into heads. */
export function checkHeads(f: Fields, heads: string, width: string, nHeads: number, hidden: number): void {
  if (hidden % nHeads !== 0) {
    throw new ConfigError(
      'E_CONFIG_FIELD',
      f.file,
      `${f.path(heads)} (${nHeads}) does not divide ${width} (${hidden})`,
      f.path(heads),
    );
  }
}
