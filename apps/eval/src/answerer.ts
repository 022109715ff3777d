/** Generation settings of one VQA run; the defaults are the BLIP-2 zero-shot protocol (see DEFAULT_GENERATION). */
export interface GenerationSettings {
  numBeams: number;
  maxNewTokens: number;
  minNewTokens: number;
  lengthPenalty: number;
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
  /** Picks the default prompt: OPT and Flan-T5 were evaluated with different ones. */
  readonly family: 'opt' | 't5';
  /** E.g. 'node:cpu'. */
  readonly backend: string;
  /** One answer per item, same order. Items of one call form one padded batch; image paths repeat when questions share an image (decode each once). */
  answer(items: readonly VqaItem[], settings: GenerationSettings, signal?: AbortSignal): Promise<string[]>;
  /** One caption per image, same order, continuing `prompt` when given (`vqa-eval captions`). */
  caption?(imagePaths: readonly string[], settings: GenerationSettings, prompt?: string): Promise<string[]>;
  close(): Promise<void>;
}

/** LAVIS' VQA recipe for BLIP-2 (blip2_opt / blip2_t5 predict_answers defaults used in the paper). */
export const DEFAULT_GENERATION: Readonly<GenerationSettings> = Object.freeze({
  numBeams: 5,
  maxNewTokens: 10,
  minNewTokens: 1,
  lengthPenalty: -1,
});
