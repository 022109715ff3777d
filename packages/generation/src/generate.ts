/**
 * `generate`: checks everything it is given before the adapter runs, prefills the
 * prompt once, then runs greedy search, sampling or beam search over the adapter.
 */
import type { Tensor } from '@blip2/tensor';
import type { LanguageModelAdapter } from './adapter.js';
import { beamSearch } from './beam-search.js';
import { GenerationError } from './errors.js';
import { buildLogitsProcessors } from './logits-process.js';
import {
  checkInputLength,
  checkStepMemory,
  type GenerationOptions,
  type ResolvedOptions,
  resolveOptions,
  type TokenEvent,
} from './options.js';
import { ModelRunner } from './runner.js';
import { greedyOrSample } from './sample.js';
import type { SearchContext } from './search.js';

export interface GenerationInputs {
  /** float32 [B, T, D]: the prompt as embeddings (BLIP-2: query embeddings merged with text embeddings). */
  readonly inputsEmbeds: Tensor<'float32'>;
  /** int64 [B, T]: 1 on tokens, 0 on padding (OPT pads left, T5 right). */
  readonly attentionMask: Tensor<'int64'>;
  /**
   * int64 [B, T], decoder-only only: the prompt ids behind `inputsEmbeds` (image
   * token ids and pads included). The processors see them, as in transformers'
   * BLIP-2, and `maxLength` / `minLength` count them. Ignored for encoder-decoder
   * models, whose processors see only the decoder's ids.
   */
  readonly inputIds?: Tensor<'int64'>;
}

export interface GenerationOutput {
  /**
   * One row per input row x returned sequence. Decoder-only: the generated
   * continuation only (no prompt). Encoder-decoder: the decoder sequence, starting
   * with `decoderStartTokenId`. Rows that ended early are padded (greedy/sampling:
   * `padTokenId`; beam search: as transformers, `padTokenId || eosTokenId[0]`).
   */
  readonly sequences: number[][];
  /** Beam search only: each returned hypothesis' score, sumLogprobs / length ** lengthPenalty. */
  readonly sequencesScores?: number[];
}

interface Plan {
  readonly options: ResolvedOptions;
  readonly prompts: number[][];
}

function checkTensor(name: string, t: Tensor | undefined, dtype: string, rank: number): void {
  if (t === undefined || t === null || typeof t !== 'object' || !Array.isArray(t.dims)) {
    throw new GenerationError('E_INPUT', `${name} is missing or not a tensor`);
  }
  if (t.dtype !== dtype || t.dims.length !== rank) {
    throw new GenerationError(
      'E_INPUT',
      `${name} must be ${dtype} of rank ${rank}, got ${t.dtype} [${t.dims.join(', ')}]`,
    );
  }
}

/** Every check that can fail, done before any adapter call. */
export function planGeneration(
  adapter: LanguageModelAdapter<unknown>,
  inputs: GenerationInputs,
  options: GenerationOptions,
): Plan {
  const { inputsEmbeds, attentionMask, inputIds } = inputs;
  checkTensor('inputsEmbeds', inputsEmbeds, 'float32', 3);
  checkTensor('attentionMask', attentionMask, 'int64', 2);
  const [batch, length] = inputsEmbeds.dims;
  if (batch < 1 || length < 1)
    throw new GenerationError('E_INPUT', `inputsEmbeds [${inputsEmbeds.dims.join(', ')}] is empty`);
  if (attentionMask.dims[0] !== batch) {
    throw new GenerationError(
      'E_BATCH',
      `batch sizes disagree: inputsEmbeds has ${batch} rows, attentionMask ${attentionMask.dims[0]}`,
    );
  }
  if (attentionMask.dims[1] !== length) {
    throw new GenerationError(
      'E_BATCH',
      `attentionMask length ${attentionMask.dims[1]} differs from inputsEmbeds length ${length}`,
    );
  }
  const decoderOnly = adapter.kind === 'decoder-only';
  if (inputIds !== undefined) {
    checkTensor('inputIds', inputIds, 'int64', 2);
    if (inputIds.dims[0] !== batch) {
      throw new GenerationError(
        'E_BATCH',
        `batch sizes disagree: inputsEmbeds has ${batch} rows, inputIds ${inputIds.dims[0]}`,
      );
    }
    if (decoderOnly && inputIds.dims[1] !== length) {
      throw new GenerationError(
        'E_BATCH',
        `inputIds length ${inputIds.dims[1]} differs from inputsEmbeds length ${length}`,
      );
    }
  }
  if (!(Number.isInteger(adapter.vocabSize) && adapter.vocabSize > 0)) {
    throw new GenerationError(
      'E_ADAPTER',
      `adapter.vocabSize must be a positive integer, got ${adapter.vocabSize}`,
    );
  }
  if (decoderOnly && adapter.maxPositions !== undefined && length > adapter.maxPositions) {
    throw new GenerationError(
      'E_PROMPT_TOO_LONG',
      `the prompt has ${length} positions but the model has only ${adapter.maxPositions} (maxPositions)`,
    );
  }
  checkInputLength(adapter, length, options);
  let prompts: number[][];
  if (!decoderOnly) {
    const start = adapter.decoderStartTokenId;
    if (start === undefined || !Number.isInteger(start)) {
      throw new GenerationError(
        'E_ADAPTER',
        `an encoder-decoder adapter needs decoderStartTokenId, got ${start}`,
      );
    }
    prompts = Array.from({ length: batch }, () => [start]);
  } else if (inputIds) {
    prompts = Array.from({ length: batch }, (_, b) =>
      Array.from(inputIds.data.subarray(b * length, (b + 1) * length), Number),
    );
  } else {
    prompts = Array.from({ length: batch }, () => []);
  }
  checkStepMemory(options, batch, adapter.vocabSize);
  const resolved = resolveOptions(options, {
    kind: adapter.kind,
    vocabSize: adapter.vocabSize,
    embedsLength: length,
    promptLength: prompts[0].length,
    hasInputIds: inputIds !== undefined,
    maxPositions: adapter.maxPositions,
  });
  if (
    decoderOnly &&
    adapter.maxPositions !== undefined &&
    length + (resolved.maxLength - resolved.promptLength) > adapter.maxPositions + 1
  ) {
    // the last token is chosen but never fed back, hence the + 1
    throw new GenerationError(
      'E_MAX_LENGTH',
      `a prompt of ${length} positions plus ${resolved.maxLength - resolved.promptLength} new tokens exceeds the model's ${adapter.maxPositions} positions (maxPositions)`,
    );
  }
  if (options.onToken !== undefined && typeof options.onToken !== 'function') {
    throw new GenerationError('E_OPTION', `onToken must be a function, got ${typeof options.onToken}`);
  }
  if (options.signal?.aborted) {
    throw new GenerationError('E_ABORTED', 'generation was aborted before it started', {
      cause: options.signal.reason,
    });
  }
  return { options: resolved, prompts };
}

/**
 * Generates token ids with `adapter`. Rejects with a `GenerationError` (code
 * 'E_ABORTED') when `options.signal` aborts; tokens chosen until then were already
 * delivered to `onToken`.
 */
export async function generate<Cache>(
  adapter: LanguageModelAdapter<Cache>,
  inputs: GenerationInputs,
  options: GenerationOptions = {},
): Promise<GenerationOutput> {
  const plan = planGeneration(adapter as LanguageModelAdapter<unknown>, inputs, options);
  const o = plan.options;
  const decoderOnly = adapter.kind === 'decoder-only';
  const rows = plan.prompts.length * o.numReturnSequences;
  if (o.maxLength <= o.promptLength) {
    // maxNewTokens 0: nothing to generate, nothing to run
    const empty = plan.prompts.flatMap((p) =>
      Array.from({ length: o.numReturnSequences }, () => (decoderOnly ? [] : [...p])),
    );
    return { sequences: empty.slice(0, rows) };
  }
  const runner = new ModelRunner(adapter as LanguageModelAdapter<unknown>, options.signal);
  const onToken = options.onToken;
  const ctx: SearchContext = {
    runner,
    options: o,
    processors: buildLogitsProcessors(o),
    prompts: plan.prompts,
    emit: (event: TokenEvent) => onToken?.(event),
  };
  try {
    await runner.prefill(inputs.inputsEmbeds, inputs.attentionMask);
    const result = o.numBeams > 1 ? await beamSearch(ctx) : await greedyOrSample(ctx);
    const sequences = decoderOnly ? result.sequences.map((s) => s.slice(o.promptLength)) : result.sequences;
    return result.sequencesScores ? { sequences, sequencesScores: result.sequencesScores } : { sequences };
  } finally {
    await runner.release();
  }
}
