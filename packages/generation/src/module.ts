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
 * What a family writes (`defineLanguageModel` makes its module of it): the spec without its
 * version, typed with the family's own graphs, weights, options and adapter. The config half
 * (`modelType`, `kind`, `paddingSide`, `parseConfig`, `configClass?`, `checkForBlip2?`) is
 * @blip2/configs' `TextConfigFamily`: `parseBlip2Config` hands `text_config` to the
 * registered module's `parseConfig`.
 */
export interface LanguageModelDefinition<
  Config extends LanguageModelConfig,
  Graphs extends { readonly [K in keyof Graphs]: BuiltGraph },
  Weights extends ModuleWeights,
  BuildOptions extends object,
  LoadOptions extends object,
  Adapter extends LoadedLanguageModel,
> extends TextConfigFamily<Config> {
  /** the family's zero-shot VQA protocols (prompt, decoding, stop tokens, padding side), LAVIS's and the paper's */
  readonly vqaPresets: VqaPresets;
  /** The family's graphs over the checkpoint's weights (`options`: the family's build options). */
  build(config: Config, weights: Weights, options?: BuildOptions): Graphs;
  /** The graphs loaded on `backend` behind a generation adapter (`options`: the family's load options, e.g. `batchedStep`). */
  load(config: Config, graphs: Graphs, backend: Backend, options?: LoadOptions): Promise<Adapter>;
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
    adapter: Adapter,
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
  ): Promise<Tensor<'float32'>>;
}

/**
 * A family's module as the SDK, `inspect`, parity and the eval app see it: its definition
 * over untyped graphs, weights and options, and the spec version it implements.
 */
export interface LanguageModelModule<Config extends LanguageModelConfig = LanguageModelConfig>
  extends LanguageModelDefinition<
    Config,
    Record<string, BuiltGraph>,
    ModuleWeights,
    object,
    object,
    LoadedLanguageModel
  > {
  /** The version of this spec the module implements: a breaking change of the spec bumps it. */
  readonly specificationVersion: 'v1';
}

/**
 * The `v1` module of a family's definition: the spec's untyped graphs, weights and options
 * are the ones this module's own `build` made and its users passed for it, handed back as
 * the family's types; `encoderLastHiddenState` refuses an adapter its `load` did not make.
 */
export function defineLanguageModel<
  Config extends LanguageModelConfig,
  Graphs extends { readonly [K in keyof Graphs]: BuiltGraph },
  Weights extends ModuleWeights,
  BuildOptions extends object,
  LoadOptions extends object,
  Adapter extends LoadedLanguageModel,
>(
  definition: LanguageModelDefinition<Config, Graphs, Weights, BuildOptions, LoadOptions, Adapter>,
): LanguageModelModule<Config> {
  const loaded = new WeakSet<LoadedLanguageModel>();
  const { encoderLastHiddenState } = definition;
  return {
    ...definition,
    specificationVersion: 'v1',
    build: (config, weights, options) => ({
      ...definition.build(config, weights as Weights, options as BuildOptions | undefined),
    }),
    load: async (config, graphs, backend, options) => {
      const adapter = await definition.load(
        config,
        graphs as unknown as Graphs,
        backend,
        options as LoadOptions | undefined,
      );
      loaded.add(adapter);
      return adapter;
    },
    ...(encoderLastHiddenState && {
      encoderLastHiddenState: async (adapter, inputsEmbeds, attentionMask) => {
        if (!loaded.has(adapter)) {
          throw new GenerationError(
            'E_ADAPTER',
            `encoderLastHiddenState: the adapter was not loaded by the '${definition.modelType}' module`,
          );
        }
        return encoderLastHiddenState.call(definition, adapter as Adapter, inputsEmbeds, attentionMask);
      },
    }),
  };
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
