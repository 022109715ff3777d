/**
 * The seam between BLIP-2's config and its language model. A BLIP-2 `config.json` is an
 * envelope (vision_config, qformer_config, num_query_tokens, image_token_index, ...)
 * around a `text_config` whose meaning belongs to one family of language models, named
 * by `text_config.model_type`. `parseBlip2Config` reads the envelope and hands
 * `text_config` to the family registered for that type, as transformers' CONFIG_MAPPING
 * does. A language-model module (@blip2/generation's `LanguageModelModule`) is such a
 * family: `registerLanguageModel(module)` registers it here too, so one call makes a new
 * `model_type` loadable.
 */
import { ConfigError, Fields, show } from './fields.js';

/** What BLIP-2 itself reads of any language model's config; a family's config extends it. */
export interface LanguageModelConfig {
  /** `text_config.model_type`, e.g. 'opt' */
  readonly modelType: string;
  /** rows of the word embedding table (`image_token_index` must be one of them) */
  readonly vocabSize: number;
  /**
   * The special tokens once the config class has applied its defaults, where
   * `GenerationConfig.from_model_config` falls back to them (absent: the class has none).
   */
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
}

/** A family's reading of `text_config`: the part of a language-model module @blip2/configs calls. */
export interface TextConfigFamily<Config extends LanguageModelConfig = LanguageModelConfig> {
  /** the `text_config.model_type` it reads, e.g. 'opt' */
  readonly modelType: string;
  /**
   * decoder-only models take the query embeddings before the prompt; encoder-decoder ones
   * feed them to the encoder (Blip2Config's `use_decoder_only_language_model`)
   */
  readonly kind: 'decoder-only' | 'encoder-decoder';
  /**
   * where the processor pads prompt batches: 'left' for decoder-only models (the prompt
   * flush against the first generated token), 'right' for encoder-decoder ones
   */
  readonly paddingSide: 'left' | 'right';
  /**
   * transformers' config class, e.g. 'OPTConfig': where a class default came from, for
   * reports (absent: "<model_type> config")
   */
  readonly configClass?: string;
  /**
   * `text_config` of a BLIP-2 config.json (a JSON object, `{}` when absent), validated with
   * the family's defaults; a bad value throws a ConfigError naming `file` and the
   * `text_config.` field (`textConfigFields` gives a reader that does).
   */
  parseConfig(textConfig: unknown, file: string): Config;
  /**
   * What BLIP-2 needs of this family beyond a valid text config (OPT: word embeddings as
   * wide as the hidden states, which the query embeddings take the place of); throws a
   * ConfigError naming the field.
   */
  checkForBlip2?(config: Config, file: string): void;
}

/** The reference builds an OPTConfig when `text_config` names no model type (Blip2Config.__init__). */
export const DEFAULT_TEXT_MODEL_TYPE = 'opt';

const families = new Map<string, TextConfigFamily>();

/**
 * Makes `family` the reader of `text_config.model_type === family.modelType`; a later
 * registration of the same type replaces it. @blip2/generation's `registerLanguageModel`
 * calls it, so a module's own parser is the one that runs.
 */
export function registerTextConfig<C extends LanguageModelConfig>(family: TextConfigFamily<C>): void {
  families.set(family.modelType, family as unknown as TextConfigFamily);
}

/** The family registered for `modelType`, or undefined. */
export function textConfigFamily(modelType: string): TextConfigFamily | undefined {
  return families.get(modelType);
}

/** Every `text_config.model_type` @blip2/configs can read, in registration order. */
export function registeredTextModelTypes(): string[] {
  return [...families.keys()];
}

/** A field reader over a `text_config` object: its errors name `file` and `text_config.<field>`. */
export function textConfigFields(textConfig: unknown, file: string): Fields {
  return Fields.of(textConfig, file, 'text_config.');
}

/** The family for `f.model_type` (its default when absent), or a typed error listing the registered ones. */
export function familyOf(f: Fields, override?: TextConfigFamily): TextConfigFamily {
  const modelType = f.string('model_type', DEFAULT_TEXT_MODEL_TYPE);
  const family = override?.modelType === modelType ? override : textConfigFamily(modelType);
  if (family) return family;
  const known = [...new Set([...registeredTextModelTypes(), ...(override ? [override.modelType] : [])])];
  throw new ConfigError(
    'E_MODEL_TYPE',
    f.file,
    `${f.path('model_type')} ${show(modelType)} is not supported (supported: ${known.map((t) => `'${t}'`).join(', ')})`,
    f.path('model_type'),
  );
}
