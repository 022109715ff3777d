/**
 * Zero-shot VQA protocols: everything besides the weights that decides a BLIP-2 answer. Each
 * language-model family package states its presets (`OPT_VQA_PRESETS`, `T5_VQA_PRESETS`); the SDK
 * resolves a preset against a checkpoint (`vqaSettings`), looking its stop token up in the
 * checkpoint's own tokenizer, and `vqa-eval` reports the resolved settings.
 */

/**
 * `lavis`: what LAVIS's code runs (`predict_answers` of blip2_opt.py / blip2_t5.py with the
 * `vqav2_zeroshot_*_eval.yaml` run config), whose numbers can be reproduced.
 * `paper`: what the BLIP-2 paper's text states (prompt, 5 beams, length penalty -1).
 */
export type VqaProtocol = 'lavis' | 'paper';

export const VQA_PROTOCOLS: readonly VqaProtocol[] = ['lavis', 'paper'];

/** `lavis`: LAVIS's `BlipQuestionProcessor.pre_question`; `none`: the question as written. */
export type QuestionPreprocess = 'lavis' | 'none';

/** A protocol's settings once resolved against one checkpoint. */
export interface VqaSettings {
  /** Python `str.format` template: `{}` is where the (preprocessed) question goes. */
  readonly prompt: string;
  readonly questionPreprocess: QuestionPreprocess;
  readonly numBeams: number;
  /** Finished beams score `sumLogprobs / generatedLength ** lengthPenalty` (0: plain sum). */
  readonly lengthPenalty: number;
  /** Generation stops on any of these ids. */
  readonly eosTokenIds: readonly number[];
  readonly maxNewTokens: number;
  /** EOS is masked until this many new tokens were generated. */
  readonly minNewTokens: number;
  /** The side a batch of prompts of different lengths is padded on. */
  readonly paddingSide: 'left' | 'right';
  /**
   * Each prompt's text ids (special tokens included, image tokens not) are cut to their first
   * this many, as LAVIS's `tokenizer(..., truncation=True, max_length=max_txt_len)`; null: none.
   */
  readonly maxPromptTokens: number | null;
}

/**
 * Where a preset's stop tokens come from: `'eos'` the checkpoint's own EOS
 * (generation_config.json), or `{ text }` the first id of `text` tokenized without special
 * tokens (LAVIS's `tokenizer("\n", add_special_tokens=False).input_ids[0]`), so that a
 * checkpoint with another vocabulary gets its own id.
 */
export type VqaStopTokens = 'eos' | { readonly text: string };

/** A protocol as a family states it, before a checkpoint's tokenizer resolves its stop tokens. */
export interface VqaPreset extends Omit<VqaSettings, 'eosTokenIds'> {
  readonly stopOn: VqaStopTokens;
}

export type VqaPresets = Readonly<Record<VqaProtocol, VqaPreset>>;
