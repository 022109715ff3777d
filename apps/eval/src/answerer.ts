import type { VqaProtocol, VqaSettings } from '@blip2/generation';

/** Generation settings of one VQA run, resolved: what `answer` decodes with. */
export interface GenerationSettings {
  numBeams: number;
  maxNewTokens: number;
  minNewTokens: number;
  lengthPenalty: number;
  /** Generation stops on any of these ids (absent: the checkpoint's generation_config.json EOS). */
  eosTokenIds?: number[];
  /** The side a batch of prompts is padded on (absent: the processor's, OPT left and T5 right). */
  paddingSide?: 'left' | 'right';
  /** Each prompt's first this many text ids are kept (null: all; absent: the SDK's default, none). */
  maxPromptTokens?: number | null;
  /** T5: the longest encoder input (queries + prompt) accepted (absent: the SDK's DEFAULT_MAX_INPUT_TOKENS). */
  maxInputTokens?: number;
}

/** One question to answer: the image file and the full prompt (template already applied). */
export interface VqaItem {
  imagePath: string;
  prompt: string;
}

/**
 * The only thing the evaluation app knows about a model. The SDK provides the real one
 * (see load-answerer.ts); tests provide deterministic ones to exercise the mechanics.
 */
export interface VqaAnswerer {
  /** Name for reports. */
  readonly model: string;
  /** The language model's `text_config.model_type` (e.g. 'opt', 't5'), for reports. */
  readonly family: string;
  /** E.g. 'node:cpu'. */
  readonly backend: string;
  /** A zero-shot protocol of the model's family, its stop tokens looked up in this checkpoint. */
  vqaSettings(protocol: VqaProtocol): VqaSettings;
  /** One answer per item, same order. Items of one call form one padded batch; image paths repeat when questions share an image (decode each once). */
  answer(items: readonly VqaItem[], settings: GenerationSettings, signal?: AbortSignal): Promise<string[]>;
  /** One caption per image, same order, continuing `prompt` when given (`vqa-eval captions`). */
  caption?(imagePaths: readonly string[], settings: GenerationSettings, prompt?: string): Promise<string[]>;
  close(): Promise<void>;
}
