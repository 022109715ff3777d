export { closest, unknownOptionMessage } from '@blip2/tensor';
export type { LanguageModelAdapter, StepOutput } from './adapter.js';
export { GenerationError, type GenerationErrorCode } from './errors.js';
export { type GenerationInputs, type GenerationOutput, generate } from './generate.js';
export {
  applyProcessors,
  buildLogitsProcessors,
  ForcedBOSTokenLogitsProcessor,
  ForcedEOSTokenLogitsProcessor,
  type LogitsProcessor,
  MinLengthLogitsProcessor,
  MinNewTokensLengthLogitsProcessor,
  NoBadWordsLogitsProcessor,
  NoRepeatNGramLogitsProcessor,
  RepetitionPenaltyLogitsProcessor,
  TemperatureLogitsWarper,
  TopKLogitsWarper,
  TopPLogitsWarper,
} from './logits-process.js';
export {
  defineLanguageModel,
  type LanguageModelDefinition,
  type LanguageModelModule,
  type LanguageModelSummary,
  type LoadedLanguageModel,
  languageModelModule,
  type ModuleWeights,
  registeredLanguageModels,
  registerLanguageModel,
  type Sourced,
} from './module.js';
export {
  checkGenerationOptions,
  checkInputLength,
  checkOptionNames,
  checkStepMemory,
  DEFAULT_MAX_INPUT_TOKENS,
  DEFAULT_MAX_LENGTH,
  DEFAULT_STEP_MEMORY_BYTES,
  GENERATION_OPTION_NAMES,
  type GenerationOptions,
  generationOptionsFromConfig,
  type ResolvedOptions,
  resolveOptions,
  stepMemoryBudget,
  type TokenEvent,
} from './options.js';
export { mergeQueryEmbeds, prependQueryEmbeds } from './prompt.js';
export { createRng, type Rng, Xoshiro128 } from './rng.js';
export { type GenerationStream, streamGenerate } from './stream.js';
export {
  type QuestionPreprocess,
  VQA_PROTOCOLS,
  type VqaPreset,
  type VqaPresets,
  type VqaProtocol,
  type VqaSettings,
  type VqaStopTokens,
} from './vqa-preset.js';
