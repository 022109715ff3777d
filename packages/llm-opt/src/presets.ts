/**
 * Zero-shot VQAv2 protocols for BLIP-2 OPT (blip2-opt-2.7b / -6.7b).
 *
 * `lavis` is LAVIS's code as it runs (salesforce/LAVIS, transformers 4.33 as its requirements pin):
 * `Blip2OPT.predict_answers` (lavis/models/blip2_models/blip2_opt.py) with the run config of
 * lavis/projects/blip2/eval/vqav2_zeroshot_opt_eval.yaml, whose comment records 51.88 val for
 * OPT-2.7b. `tasks/vqa.py` passes no length penalty, so the method's default 0 holds; generation
 * stops on the "\n" token (`self.eos_token_id`, 50118 in OPT's vocabulary), not on `</s>`; the
 * prompts are padded on the left. Its `min_length=1` counts generated tokens only (the prompt goes
 * in as `inputs_embeds`), i.e. one new token at least. It tokenizes the prompts with
 * `truncation=True, max_length=self.max_txt_len` (32, the model's default, which no BLIP-2 OPT
 * config overrides), truncating on the right: a prompt keeps its first 32 ids, the leading `</s>`
 * included; the query embeddings are concatenated after tokenization, so they do not count.
 *
 * `paper` is what the BLIP-2 paper states for OPT: prompt "Question: {} Answer:", beam search
 * with 5 beams, length penalty -1. It states no stop token, so the checkpoint's own EOS (the
 * published config.json of Salesforce's checkpoints sets `text_config.eos_token_id` to the "\n"
 * id); lengths, preprocessing and padding as LAVIS's code. The paper states no prompt
 * truncation: none.
 */
import type { VqaPresets } from '@blip2/generation';

export const OPT_VQA_PRESETS: VqaPresets = {
  lavis: {
    prompt: 'Question: {} Short answer:',
    questionPreprocess: 'lavis',
    numBeams: 5,
    lengthPenalty: 0,
    stopOn: { text: '\n' },
    maxNewTokens: 10,
    minNewTokens: 1,
    paddingSide: 'left',
    maxPromptTokens: 32,
  },
  paper: {
    prompt: 'Question: {} Answer:',
    questionPreprocess: 'lavis',
    numBeams: 5,
    lengthPenalty: -1,
    stopOn: 'eos',
    maxNewTokens: 10,
    minNewTokens: 1,
    paddingSide: 'left',
    maxPromptTokens: null,
  },
};
