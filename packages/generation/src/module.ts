/**
 * The language-model module spec: everything one family of language models (OPT, T5,
 * ...) knows, in its own package, behind one typed and versioned interface, as the
 * Vercel AI SDK's provider spec does for providers. The SDK, `blip2 inspect`, parity
 * and the eval app ask the module registered for `text_config.model_type`; they never
 * branch on a family. A new family is its own package plus one
 * `registerLanguageModel(module)` call (docs/architecture.md shows one).
 */
import { type LanguageModelConfig, registerTextConfig, type TextConfigFamily } from '@blip2/configs';
import type { Backend, BuiltGraph, Tensor } from '@blip2/tensor';
import type { LanguageModelAdapter } from './adapter.js';
import { GenerationError } from './errors.js';
import type { VqaPresets } from './vqa-preset.js';

/** A value a run uses with the file and field it came from (or the default it fell back to), for `inspect`. */
export interface Sourced<T> {
  readonly value: T;
  readonly source: string;
}

/** What `blip2 inspect` shows of a text config: its sizes, and the settings checkpoints differ in. */
export interface LanguageModelSummary {
  /** sizes, e.g. { modelType: 'opt', hiddenSize, layers, heads, vocabSize } */
  readonly text: Readonly<Record<string, unknown>>;
  /** the feed-forward activation (ACT2FN name) */
  readonly activation: Sourced<string>;
  /** encoder-decoder families: the first decoder token */
  readonly decoderStartTokenId?: Sourced<number>;
}

/** Weights a module builds its graphs over (@blip2/onnx's `WeightLookup`; kept structural here). */
export type ModuleWeights = object;

/** An adapter a module loads: what generation drives, plus the release of its sessions. */
export type LoadedLanguageModel = LanguageModelAdapter & { release(): Promise<void> };

/**
 * The config half (`modelType`, `kind`, `paddingSide`, `parseConfig`, `configClass?`, `checkForBlip2?`) is
 * @blip2/configs' `TextConfigFamily`: `parseBlip2Config` hands `text_config` to the
 * registered module's `parseConfig`.
 */
export interface LanguageModelModule<Config extends LanguageModelConfig = LanguageModelConfig>
  extends TextConfigFamily<Config> {
  /** The version of this spec the module implements: a breaking change of the spec bumps it. */
  readonly specificationVersion: 'v1';
  /** the family's zero-shot VQA protocols (prompt, decoding, stop tokens, padding side), LAVIS's and the paper's */
  readonly vqaPresets: VqaPresets;
  /** The family's graphs over the checkpoint's weights (`options`: the family's build options). */
  build(config: Config, weights: ModuleWeights, options?: object): Record<string, BuiltGraph>;
  /** The graphs loaded on `backend` behind a generation adapter (`options`: the family's load options, e.g. `batchedStep`). */
  load(
    config: Config,
    graphs: Record<string, BuiltGraph>,
    backend: Backend,
    options?: object,
  ): Promise<LoadedLanguageModel>;
  /** What `inspect` reports; `rawTextConfig` is the JSON `text_config`, to say where each setting came from. */
  summary(
    config: Config,
    rawTextConfig: Readonly<Record<string, unknown>>,
    file: string,
  ): LanguageModelSummary;
  /**
   * Encoder-decoder families: the encoder's last hidden state for merged prompt embeddings
   * (transformers' `language_model.encoder(inputs_embeds=...)`), for parity reports.
   */
  encoderLastHiddenState?(
    adapter: LoadedLanguageModel,
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
  ): Promise<Tensor<'float32'>>;
}

const registry = new Map<string, LanguageModelModule>();

/**
 * Makes `module` the one `text_config.model_type === module.modelType` parses and loads
 * with (in @blip2/configs' registry too); a later registration of the same type replaces
 * it. One call registers a family everywhere.
 */
export function registerLanguageModel<C extends LanguageModelConfig>(module: LanguageModelModule<C>): void {
  if (module.specificationVersion !== 'v1') {
    throw new GenerationError(
      'E_ADAPTER',
      `language-model module '${module.modelType}' implements spec ${JSON.stringify(module.specificationVersion)}; this version of @blip2/generation runs 'v1'`,
    );
  }
  registerTextConfig(module);
  registry.set(module.modelType, module as unknown as LanguageModelModule);
}

/** The module registered for `modelType`, or undefined. */
export function languageModelModule(modelType: string): LanguageModelModule | undefined {
  return registry.get(modelType);
}

/** Every registered `model_type`, in registration order. */
export function registeredLanguageModels(): string[] {
  return [...registry.keys()];
}
