/**
 * Zero-shot VQAv2 protocols for BLIP-2 Flan-T5 (blip2-flan-t5-xl / -xxl).
 *
 * `lavis` is LAVIS's code as it runs (salesforce/LAVIS, transformers 4.33 as its requirements pin):
 * `Blip2T5.predict_answers` (lavis/models/blip2_models/blip2_t5.py, default length penalty -1)
 * with the run config of lavis/projects/blip2/eval/vqav2_zeroshot_flant5xl_eval.yaml, whose
 * comment records 63.13 val for Flan-T5-XL. Generation stops on the model's `</s>`; prompts are
 * padded on the right (the T5 tokenizer's side). Its `min_length=1` counts the decoder sequence,
 * which starts with `decoder_start_token_id`, so it never masks anything: no minimum of new tokens.
 * Unlike blip2_opt.py, its `predict_answers` tokenizes the prompts without `truncation` (its
 * `max_txt_len` of 32 applies to training and `generate` only): no prompt truncation.
 *
 * `paper` is what the BLIP-2 paper states for Flan-T5: the same prompt, 5 beams, length
 * penalty -1, and for what it leaves unsaid LAVIS's code: for Flan-T5 the two protocols agree.
 */
import type { VqaPreset, VqaPresets } from '@blip2/generation';

const LAVIS: VqaPreset = {
  prompt: 'Question: {} Short answer:',
  questionPreprocess: 'lavis',
  numBeams: 5,
  lengthPenalty: -1,
  stopOn: 'eos',
  maxNewTokens: 10,
  minNewTokens: 0,
  paddingSide: 'right',
  maxPromptTokens: null,
};

// the paper leaves nothing for Flan-T5 that LAVIS's code does otherwise: one preset under both names
export const T5_VQA_PRESETS: VqaPresets = { lavis: LAVIS, paper: LAVIS };
