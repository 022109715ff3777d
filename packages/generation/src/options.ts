/**
 * Generation options (transformers' GenerationConfig names in camelCase), their
 * defaults, validation, and the reading of a checkpoint's generation_config.json.
 */

import { unknownOptionMessage } from '@blip2/tensor';
import { GenerationError, type GenerationErrorCode } from './errors.js';

export interface TokenEvent {
  /** 0 for the first generated token. */
  readonly step: number;
  /** One token per output row (batch row x returned sequence). */
  readonly tokens: number[];
}

export interface GenerationOptions {
  /**
   * Bytes one decoding step may use for its scores (rows x vocabulary x 4 bytes, three copies:
   * logits, log-probabilities, candidate scores), checked before the first step: a huge
   * numBeams or batch is refused instead of growing until the kernel kills the process.
   * Default DEFAULT_STEP_MEMORY_BYTES (2 GiB).
   */
  stepMemoryBytes?: number;
  /**
   * Encoder-decoder models with relative positions (T5): the longest encoder input (query
   * tokens + prompt ids) accepted. Such a model has no position table to bound it, and each
   * encoder layer's attention scores take heads x length^2 x 4 bytes per row, so the cap is
   * what keeps memory bounded. Default DEFAULT_MAX_INPUT_TOKENS (2048); decoder-only models
   * are bounded by their positions (`maxPositions`) instead.
   */
  maxInputTokens?: number;
  /** New tokens to generate at most; wins over `maxLength`. */
  maxNewTokens?: number;
  /** Longest total sequence (prompt ids + new tokens; for encoder-decoder the decoder sequence). Default 20 new tokens. */
  maxLength?: number;
  /** EOS is masked until this many tokens were generated. */
  minNewTokens?: number;
  /** EOS is masked while the whole sequence (prompt ids included) is shorter than this. */
  minLength?: number;
  numBeams?: number;
  /** Finished beams score `sumLogprobs / generatedLength ** lengthPenalty` (default 1). */
  lengthPenalty?: number;
  /** true: stop when `numBeams` hypotheses finished; false (default): heuristic; 'never': canonical beam search. */
  earlyStopping?: boolean | 'never';
  doSample?: boolean;
  temperature?: number;
  /** Sampling keeps the k best tokens (default 50, 0 disables). */
  topK?: number;
  /** Sampling keeps the smallest set of tokens whose probability reaches topP (default 1: off). */
  topP?: number;
  /** Seeds the sampler (xoshiro128**); same seed, same tokens. */
  seed?: number;
  numReturnSequences?: number;
  repetitionPenalty?: number;
  noRepeatNgramSize?: number;
  badWordsIds?: number[][];
  forcedBosTokenId?: number;
  forcedEosTokenId?: number | number[];
  eosTokenId?: number | number[];
  /** Fills rows that finished early (default: the first EOS id). */
  padTokenId?: number;
  /** Accepted for generation_config.json symmetry; generation itself never needs it. */
  bosTokenId?: number;
  signal?: AbortSignal;
  onToken?: (event: TokenEvent) => void;
}

/** Everything the search needs, with lengths already counted the reference's way. */
export interface ResolvedOptions {
  /** Length of the sequence the processors see before generating (prompt ids, or 1: the decoder start). */
  readonly promptLength: number;
  /** Total length at which a sequence stops. */
  readonly maxLength: number;
  readonly minLength: number;
  readonly minNewTokens: number;
  readonly numBeams: number;
  readonly lengthPenalty: number;
  readonly earlyStopping: boolean | 'never';
  readonly doSample: boolean;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly seed: number | undefined;
  readonly numReturnSequences: number;
  readonly repetitionPenalty: number;
  readonly noRepeatNgramSize: number;
  readonly badWordsIds: readonly (readonly number[])[];
  readonly forcedBosTokenId: number | undefined;
  readonly forcedEosTokenIds: readonly number[] | undefined;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | undefined;
}

/** transformers' GenerationConfig defaults. */
export const DEFAULT_MAX_LENGTH = 20;
const DEFAULT_TOP_K = 50;

function fail(code: GenerationErrorCode, message: string): never {
  throw new GenerationError(code, message);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function checkInt(
  name: string,
  v: number | undefined,
  min: number,
  code: GenerationErrorCode = 'E_OPTION',
): void {
  if (v === undefined) return;
  if (!isInt(v) || v < min) fail(code, `${name} must be an integer >= ${min}, got ${String(v)}`);
}

function checkFinite(name: string, v: number | undefined): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v))
    fail('E_OPTION', `${name} must be a finite number, got ${String(v)}`);
}

function tokenList(name: string, v: number | number[] | undefined, vocabSize: number): number[] | undefined {
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : [v];
  for (const id of list) {
    if (!isInt(id) || id < 0 || id >= vocabSize) {
      fail('E_TOKEN_ID', `${name} holds ${String(id)}, not a token id in [0, ${vocabSize})`);
    }
  }
  return list;
}

export interface LengthContext {
  readonly kind: 'decoder-only' | 'encoder-decoder';
  readonly vocabSize: number;
  /** length of inputsEmbeds */
  readonly embedsLength: number;
  /** length of the ids the processors see (decoder-only: inputIds or 0; encoder-decoder: 1) */
  readonly promptLength: number;
  readonly hasInputIds: boolean;
  readonly maxPositions: number | undefined;
}

/**
 * The checks of `options` that need no model: types and ranges of every setting and
 * how they combine (numReturnSequences against numBeams). `resolveOptions` runs them
 * first; callers that take options from users (the CLI) run them before loading anything.
 */
/** Every option `generate` reads: anything else is a typo to refuse by name (`numBeems`). */
const OPTION_NAMES = Object.keys({
  stepMemoryBytes: true,
  maxInputTokens: true,
  maxNewTokens: true,
  maxLength: true,
  minNewTokens: true,
  minLength: true,
  numBeams: true,
  lengthPenalty: true,
  earlyStopping: true,
  doSample: true,
  temperature: true,
  topK: true,
  topP: true,
  seed: true,
  numReturnSequences: true,
  repetitionPenalty: true,
  noRepeatNgramSize: true,
  badWordsIds: true,
  forcedBosTokenId: true,
  forcedEosTokenId: true,
  eosTokenId: true,
  padTokenId: true,
  bosTokenId: true,
  signal: true,
  onToken: true,
} satisfies Record<keyof GenerationOptions, true>);

/**
 * Refuses option names outside `known` (default: generate's own), suggesting the closest;
 * callers with options of their own (the SDK's `prompt`, `template`) pass those too.
 */
export function checkOptionNames(
  options: object,
  known: readonly string[] = OPTION_NAMES,
  where = 'generation options',
): void {
  if (typeof options !== 'object' || options === null)
    fail('E_OPTION', `${where} must be an object, got ${options === null ? 'null' : typeof options}`);
  const unknown = unknownOptionMessage(options, known, where);
  if (unknown) fail('E_OPTION', unknown);
}

export const GENERATION_OPTION_NAMES: readonly string[] = OPTION_NAMES;

export function checkGenerationOptions(options: GenerationOptions): void {
  checkOptionNames(options);
  const numBeams = options.numBeams ?? 1;
  checkInt('numBeams', numBeams, 1, 'E_NUM_BEAMS');
  checkInt('maxNewTokens', options.maxNewTokens, 0, 'E_MAX_NEW_TOKENS');
  checkInt('maxInputTokens', options.maxInputTokens, 1);
  checkInt('maxLength', options.maxLength, 0, 'E_MAX_LENGTH');
  checkInt('minNewTokens', options.minNewTokens, 0);
  checkInt('minLength', options.minLength, 0);
  checkInt('noRepeatNgramSize', options.noRepeatNgramSize, 0);
  checkInt('topK', options.topK, 0, 'E_TOP_K');
  checkFinite('lengthPenalty', options.lengthPenalty);
  if (options.seed !== undefined && (!isInt(options.seed) || options.seed < 0)) {
    fail('E_OPTION', `seed must be a non-negative safe integer, got ${String(options.seed)}`);
  }
  if (options.doSample !== undefined && typeof options.doSample !== 'boolean') {
    fail('E_OPTION', `doSample must be a boolean, got ${String(options.doSample)}`);
  }
  const es = options.earlyStopping ?? false;
  if (es !== true && es !== false && es !== 'never') {
    fail('E_OPTION', `earlyStopping must be true, false or 'never', got ${String(es)}`);
  }
  const doSample = options.doSample ?? false;
  const temperature = options.temperature ?? 1;
  if (doSample && !(typeof temperature === 'number' && temperature > 0 && Number.isFinite(temperature))) {
    fail('E_TEMPERATURE', `temperature must be > 0 when sampling, got ${String(temperature)}`);
  }
  const topP = options.topP ?? 1;
  if (!(typeof topP === 'number' && topP > 0 && topP <= 1))
    fail('E_TOP_P', `topP must be in (0, 1], got ${String(topP)}`);
  const repetitionPenalty = options.repetitionPenalty ?? 1;
  if (
    !(typeof repetitionPenalty === 'number' && repetitionPenalty > 0 && Number.isFinite(repetitionPenalty))
  ) {
    fail('E_OPTION', `repetitionPenalty must be a positive number, got ${String(repetitionPenalty)}`);
  }
  const numReturnSequences = options.numReturnSequences ?? 1;
  checkInt('numReturnSequences', numReturnSequences, 1, 'E_NUM_RETURN_SEQUENCES');
  if (numBeams > 1 && numReturnSequences > numBeams) {
    fail(
      'E_NUM_RETURN_SEQUENCES',
      `numReturnSequences (${numReturnSequences}) must be <= numBeams (${numBeams})`,
    );
  }
  if (numBeams === 1 && !doSample && numReturnSequences > 1) {
    fail(
      'E_NUM_RETURN_SEQUENCES',
      `greedy search returns 1 sequence per input, got numReturnSequences ${numReturnSequences}`,
    );
  }
}

/**
 * Validates `options` and resolves lengths as transformers' `_prepare_generated_length`:
 * `maxNewTokens` wins over `maxLength`; with neither, 20 new tokens (capped by the
 * position table); decoder-only without prompt ids counts an explicit `maxLength`
 * / `minLength` over the embeddings too.
 */
/**
 * The default of `maxInputTokens`: 2048 tokens, 4x the 512 Flan-T5 was trained on and 64x
 * LAVIS's 32 prompt ids. One encoder layer's attention scores for one row are then
 * heads x 2048^2 x 4 bytes: 512 MiB for Flan-T5-XL (32 heads), 1 GiB for XXL (64 heads);
 * the 10K-token prompt that once took 5.9 GB is refused (docs/reliability.md).
 */
export const DEFAULT_MAX_INPUT_TOKENS = 2048;

/**
 * Refuses an encoder input longer than `maxInputTokens` for a model with relative positions
 * (no `maxPositions`), before any session runs: `length` counts every position the encoder
 * attends over (the query embeddings and the prompt ids).
 */
export function checkInputLength(
  adapter: { readonly kind: 'decoder-only' | 'encoder-decoder'; readonly maxPositions?: number },
  length: number,
  options: Pick<GenerationOptions, 'maxInputTokens'>,
): void {
  if (adapter.kind !== 'encoder-decoder' || adapter.maxPositions !== undefined) return;
  const max = options.maxInputTokens ?? DEFAULT_MAX_INPUT_TOKENS;
  checkInt('maxInputTokens', max, 1);
  if (length > max) {
    fail(
      'E_PROMPT_TOO_LONG',
      `the encoder input has ${length} tokens, above maxInputTokens (${max}): a relative-position model has no position table to bound it and its attention memory grows with the square of the length; shorten the prompt or raise maxInputTokens`,
    );
  }
}

/** The default of `stepMemoryBytes`. */
export const DEFAULT_STEP_MEMORY_BYTES = 2 * 1024 ** 3;

/** `stepMemoryBytes`, or its default; anything but a positive number is refused by name. */
export function stepMemoryBudget(options: Pick<GenerationOptions, 'stepMemoryBytes'>): number {
  const budget = options.stepMemoryBytes ?? DEFAULT_STEP_MEMORY_BYTES;
  if (typeof budget !== 'number' || !(budget > 0))
    fail('E_OPTION', `stepMemoryBytes must be a positive number of bytes, got ${String(budget)}`);
  return budget;
}

/**
 * Refuses a search whose per-step scores would not fit `stepMemoryBytes`, naming the figures:
 * `batch x numBeams` rows of `vocabSize` float32 scores, three copies of them per step.
 */
export function checkStepMemory(options: GenerationOptions, batch: number, vocabSize: number): void {
  const budget = stepMemoryBudget(options);
  const numBeams = options.numBeams ?? 1;
  const rows = batch * numBeams;
  const bytes = rows * vocabSize * 4 * 3;
  if (bytes > budget) {
    const gb = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;
    fail(
      'E_NUM_BEAMS',
      `numBeams ${numBeams} x batch ${batch} = ${rows} rows of ${vocabSize} scores need ${gb(bytes)} per step, ` +
        `above the limit of ${gb(budget)} (stepMemoryBytes); at most ${Math.max(1, Math.floor(budget / (batch * vocabSize * 12)))} beams fit`,
    );
  }
}

export function resolveOptions(options: GenerationOptions, ctx: LengthContext): ResolvedOptions {
  checkGenerationOptions(options);
  const numBeams = options.numBeams ?? 1;
  const es = options.earlyStopping ?? false;
  const doSample = options.doSample ?? false;
  const temperature = options.temperature ?? 1;
  const topP = options.topP ?? 1;
  const repetitionPenalty = options.repetitionPenalty ?? 1;
  const numReturnSequences = options.numReturnSequences ?? 1;
  const eosTokenIds = tokenList('eosTokenId', options.eosTokenId, ctx.vocabSize) ?? [];
  const forcedEosTokenIds = tokenList('forcedEosTokenId', options.forcedEosTokenId, ctx.vocabSize);
  const forcedBos = tokenList('forcedBosTokenId', options.forcedBosTokenId, ctx.vocabSize);
  if (forcedBos && forcedBos.length !== 1)
    fail('E_TOKEN_ID', `forcedBosTokenId must be one id, got [${forcedBos}]`);
  // as transformers: without a pad id, rows that finished early are filled with the first EOS id
  const padTokenId = tokenList('padTokenId', options.padTokenId, ctx.vocabSize)?.[0] ?? eosTokenIds[0];
  const badWordsIds = checkBadWords(options.badWordsIds, ctx.vocabSize);

  const embedsOnly = ctx.kind === 'decoder-only' && !ctx.hasInputIds;
  let maxLength: number;
  if (options.maxNewTokens !== undefined) maxLength = options.maxNewTokens + ctx.promptLength;
  else if (options.maxLength !== undefined)
    maxLength = embedsOnly ? options.maxLength - ctx.embedsLength : options.maxLength;
  else {
    maxLength = DEFAULT_MAX_LENGTH + ctx.promptLength;
    if (ctx.kind === 'decoder-only' && ctx.maxPositions !== undefined)
      maxLength = Math.min(maxLength, ctx.maxPositions);
  }
  if (maxLength <= ctx.promptLength && options.maxNewTokens !== 0) {
    fail(
      'E_MAX_LENGTH',
      `maxLength ${options.maxLength ?? maxLength} leaves no room to generate after a prompt of ${ctx.promptLength} tokens; set maxNewTokens instead`,
    );
  }
  const minNewTokens = options.minNewTokens ?? 0;
  let minLength: number;
  if (options.minNewTokens !== undefined) minLength = options.minNewTokens + ctx.promptLength;
  else if (embedsOnly) minLength = Math.max((options.minLength ?? 0) - ctx.embedsLength, 0);
  else minLength = options.minLength ?? 0;

  return {
    promptLength: ctx.promptLength,
    maxLength,
    minLength,
    minNewTokens,
    numBeams,
    lengthPenalty: options.lengthPenalty ?? 1,
    earlyStopping: es,
    doSample,
    temperature,
    topK: options.topK ?? DEFAULT_TOP_K,
    topP,
    seed: options.seed,
    numReturnSequences,
    repetitionPenalty,
    noRepeatNgramSize: options.noRepeatNgramSize ?? 0,
    badWordsIds,
    forcedBosTokenId: forcedBos?.[0],
    forcedEosTokenIds,
    eosTokenIds,
    padTokenId,
  };
}

function checkBadWords(v: number[][] | undefined, vocabSize: number): number[][] {
  if (v === undefined) return [];
  if (!Array.isArray(v))
    fail('E_BAD_WORDS', `badWordsIds must be a list of token id lists, got ${String(v)}`);
  v.forEach((seq, i) => {
    if (!Array.isArray(seq) || seq.length === 0) {
      fail(
        'E_BAD_WORDS',
        `badWordsIds[${i}] must be a non-empty list of token ids, got ${JSON.stringify(seq)}`,
      );
    }
    for (const id of seq) {
      if (!isInt(id) || id < 0 || id >= vocabSize) {
        fail('E_BAD_WORDS', `badWordsIds[${i}] holds ${String(id)}, not a token id in [0, ${vocabSize})`);
      }
    }
  });
  return v;
}

/** generation_config.json keys (snake_case) read into options, with the option they set. */
const CONFIG_KEYS: Record<string, keyof GenerationOptions> = {
  max_new_tokens: 'maxNewTokens',
  max_length: 'maxLength',
  min_new_tokens: 'minNewTokens',
  min_length: 'minLength',
  num_beams: 'numBeams',
  length_penalty: 'lengthPenalty',
  early_stopping: 'earlyStopping',
  do_sample: 'doSample',
  temperature: 'temperature',
  top_k: 'topK',
  top_p: 'topP',
  num_return_sequences: 'numReturnSequences',
  repetition_penalty: 'repetitionPenalty',
  no_repeat_ngram_size: 'noRepeatNgramSize',
  bad_words_ids: 'badWordsIds',
  forced_bos_token_id: 'forcedBosTokenId',
  forced_eos_token_id: 'forcedEosTokenId',
  eos_token_id: 'eosTokenId',
  pad_token_id: 'padTokenId',
  bos_token_id: 'bosTokenId',
};

/** The numbers' allowed ranges, checked where the file is read so the message names it. */
const NUMBER_KEYS: Record<string, { readonly ok: (v: number) => boolean; readonly range: string }> = {
  length_penalty: { ok: () => true, range: 'a finite number' },
  // 0 is common in files that do not sample (the option is only read when sampling)
  temperature: { ok: (v) => v >= 0, range: '>= 0' },
  top_p: { ok: (v) => v > 0 && v <= 1, range: 'in (0, 1]' },
  repetition_penalty: { ok: (v) => v > 0, range: '> 0' },
};
/** int32, as @blip2/configs' CONFIG_LIMITS.int: a larger count or id reaches no tensor whole */
const MAX_INT = 2 ** 31 - 1;
/** The integers' smallest allowed values (the largest is MAX_INT). */
const INT_KEYS: Record<string, number> = {
  max_new_tokens: 0,
  max_length: 0,
  min_new_tokens: 0,
  min_length: 0,
  num_beams: 1,
  top_k: 0,
  num_return_sequences: 1,
  no_repeat_ngram_size: 0,
  forced_bos_token_id: 0,
  pad_token_id: 0,
  bos_token_id: 0,
};
const isId = (v: unknown): boolean => isInt(v) && v >= 0 && v <= MAX_INT;

/**
 * Options from a generation_config.json object (or generate kwargs in snake_case).
 * Unknown keys (output_*, use_cache, transformers_version, ...) are ignored; `null`
 * means unset. `max_length: 20` is transformers' own default, which it treats as
 * "20 new tokens", so it is left unset here to get the same behaviour.
 */
export function generationOptionsFromConfig(
  config: unknown,
  source = 'generation_config.json',
  /**
   * 'ignore' (files: generation_config.json holds output_*, use_cache, ...) or 'refuse'
   * (settings a caller typed, e.g. a pipeline's kwargs: `max_new_token` named, with the closest key)
   */
  unknownKeys: 'ignore' | 'refuse' = 'ignore',
): GenerationOptions {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new GenerationError('E_CONFIG', `${source}: expected a JSON object, got ${JSON.stringify(config)}`);
  }
  if (unknownKeys === 'refuse') {
    const unknown = unknownOptionMessage(config, Object.keys(CONFIG_KEYS), source);
    if (unknown) throw new GenerationError('E_OPTION', unknown);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    const option = CONFIG_KEYS[key];
    if (option === undefined || value === null) continue;
    const bad = (what: string): never => {
      throw new GenerationError(
        'E_CONFIG',
        `${source}: ${key} must be ${what}, got ${typeof value === 'number' ? String(value) : JSON.stringify(value)}`,
      );
    };
    const min = INT_KEYS[key];
    const number = NUMBER_KEYS[key];
    if (min !== undefined) {
      if (!isInt(value)) bad('an integer');
      if (value < min || value > MAX_INT) bad(`an integer in [${min}, ${MAX_INT}]`);
    } else if (number !== undefined) {
      if (typeof value !== 'number' || !Number.isFinite(value)) bad('a number');
      if (!number.ok(value)) bad(number.range);
    } else if (key === 'do_sample') {
      if (typeof value !== 'boolean') bad('true or false');
    } else if (key === 'early_stopping') {
      if (value !== true && value !== false && value !== 'never') bad('true, false or "never"');
    } else if (key === 'eos_token_id' || key === 'forced_eos_token_id') {
      if (!isId(value) && !(Array.isArray(value) && value.length > 0 && value.every(isId)))
        bad(`an id or a list of ids in [0, ${MAX_INT}]`);
    } else if (key === 'bad_words_ids') {
      if (!Array.isArray(value) || !value.every((s) => Array.isArray(s) && s.every(isId)))
        bad(`a list of id lists (ids in [0, ${MAX_INT}])`);
    }
    if (key === 'max_length' && value === DEFAULT_MAX_LENGTH) continue;
    out[option] = value;
  }
  return out as GenerationOptions;
}
