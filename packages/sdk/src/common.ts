// What both entries (Node and browser) export.
export {
  Blip2Config,
  type Blip2QFormerConfig,
  type Blip2VisionConfig,
  getPreset,
  parseBlip2Config,
  presetNames,
} from '@blip2/configs';
export {
  DEFAULT_MAX_INPUT_TOKENS,
  GenerationError,
  type GenerationOptions,
  type GenerationOutput,
  type QuestionPreprocess,
  VQA_PROTOCOLS,
  type VqaPreset,
  type VqaPresets,
  type VqaProtocol,
  type VqaSettings,
  type VqaStopTokens,
} from '@blip2/generation';
export type { RawImage } from '@blip2/processor';
export {
  type DTypeOption,
  HALF_CHECKPOINT_CPU_DTYPE,
  isHalfCheckpoint,
  parseDTypeFlag,
  planQuantization,
  type QuantizationPlan,
  resolveDTypes,
} from './core/dtype.js';
export { LANGUAGE_MODELS, type LanguageModelModule, optModule, t5Module } from './core/families.js';
export { type FromPretrainedOptions, loadParts } from './core/load.js';
export {
  type AskOptions,
  Blip2ForConditionalGeneration,
  type Blip2ForwardInputs,
  type Blip2ForwardOutputs,
  Blip2Model,
  Blip2QFormerModel,
  Blip2VisionModel,
  type GenerateInputs,
  type ImageInput,
  languageModelingLoss,
  type PipelineOptions,
  type QFormerOutputs,
  type VisionOutputs,
  vqaGenerationOptions,
} from './core/models.js';
export {
  type GenerateKwargs,
  type ImageToTextPipeline,
  type ImageToTextSingle,
  type PipelineDtype,
  type PipelineTask,
  type PretrainedPipelineOptions,
  type ProgressInfo,
  pipeline,
  type VisualQuestionAnsweringPipeline,
  type VisualQuestionAnsweringSingle,
} from './core/pipeline.js';
export type { BackendChoice, ModelFiles, Platform, SourceOptions } from './core/platform.js';
export { setPlatform } from './core/platform.js';
export { Blip2Processor } from './core/processor.js';
export { Blip2Error, type Blip2ErrorCode, SdkError, type SdkErrorCode } from './errors.js';
export type { LoadProgress, ProgressCallback } from './sources/progress.js';
