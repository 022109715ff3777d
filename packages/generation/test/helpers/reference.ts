/**
 * Replays the fixtures' `generate` records (reference.json, computed with
 * transformers) through any adapter: the records' kwargs on top of the checkpoint's
 * generation_config.json, exactly as transformers merged them. Made for the
 * end-to-end tests of every adapter: give it the adapter and the inputs of a record.
 */
import type { LanguageModelAdapter } from '../../src/adapter.js';
import { type GenerationInputs, type GenerationOutput, generate } from '../../src/generate.js';
import { generationOptionsFromConfig } from '../../src/options.js';

export interface GenerateRecord {
  readonly name: string;
  readonly kwargs: Record<string, unknown>;
  readonly raw: number[][];
  /** the continuation (decoder-only) or the decoder sequence (encoder-decoder) */
  readonly new: number[][];
  readonly layout: string[];
  readonly sequences_scores?: number[];
  readonly min_top2_margin: number;
  readonly input_ids?: number[][];
  readonly attention_mask?: number[][];
}

export interface ReplayResult {
  readonly record: GenerateRecord;
  readonly output: GenerationOutput;
  /** token ids equal, every row */
  readonly tokensMatch: boolean;
  /** largest |sequencesScores - sequences_scores| (0 without beam search) */
  readonly scoreDiff: number;
}

export async function replayGenerateRecord<Cache>(
  adapter: LanguageModelAdapter<Cache>,
  record: GenerateRecord,
  inputs: GenerationInputs,
  generationConfig: unknown,
): Promise<ReplayResult> {
  const options = {
    ...generationOptionsFromConfig(generationConfig),
    ...generationOptionsFromConfig(record.kwargs, `${record.name} kwargs`),
  };
  const output = await generate(adapter, inputs, options);
  const tokensMatch = JSON.stringify(output.sequences) === JSON.stringify(record.new);
  let scoreDiff = 0;
  if (record.sequences_scores) {
    if (!output.sequencesScores || output.sequencesScores.length !== record.sequences_scores.length) {
      scoreDiff = Number.POSITIVE_INFINITY;
    } else {
      record.sequences_scores.forEach((s, i) => {
        scoreDiff = Math.max(scoreDiff, Math.abs(s - (output.sequencesScores as number[])[i]));
      });
    }
  }
  return { record, output, tokensMatch, scoreDiff };
}
