/**
 * @blip2/configs: typed BLIP-2, OPT and T5 configs from a checkpoint's JSON files,
 * with the reference's (transformers') defaults and errors that name the file and
 * field at fault. Browser-safe; file-system loaders live in `@blip2/configs/node`.
 */
export {
  Blip2Config,
  type Blip2ConfigExtra,
  type Blip2QFormerConfig,
  type Blip2VisionConfig,
  parseBlip2Config,
  parseBlip2QFormerConfig,
  parseBlip2VisionConfig,
  parseTextConfigJson,
  type TextConfig,
  type TextConfigRegistry,
  UNSUPPORTED_ARCHITECTURES,
} from './blip2.js';
export { DERIVED_FIELDS, type DerivedField, type StoredFieldRule } from './derived.js';
export {
  CONFIG_LIMITS,
  ConfigError,
  type ConfigErrorCode,
  checkHeads,
  Fields,
  parseJsonObject,
} from './fields.js';
export {
  GENERATION_TOKEN_FIELDS,
  type GenerationTokenField,
  generationDefaultsFromModelConfig,
  type ModelGenerationDefaults,
} from './generation.js';
export { type JsonFail, type JsonFault, parseJson } from './json.js';
export { OPT_TEXT_CONFIG, type OPTConfig } from './opt.js';
export { getPreset, type PresetName, presetNames, presets } from './presets.js';
export {
  type ImageProcessorConfig,
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  PIL_RESAMPLE,
  type PilResample,
  parseImageProcessorConfig,
} from './processor.js';
export { T5_TEXT_CONFIG, type T5Config } from './t5.js';
export {
  DEFAULT_TEXT_MODEL_TYPE,
  type LanguageModelConfig,
  registeredTextModelTypes,
  registerTextConfig,
  type TextConfigFamily,
  textConfigFamily,
  textConfigFields,
} from './text-config.js';
