export {
  type QuestionPreprocess,
  VQA_PROTOCOLS,
  type VqaProtocol,
  type VqaSettings,
} from '@blip2/generation';
export type { GenerationSettings, VqaAnswerer, VqaItem } from './answerer.js';
export {
  CAPTION_GENERATION,
  type CaptionResult,
  type CaptionRunOptions,
  type CaptionRunOutcome,
  type CaptionScores,
  captionTokens,
  loadCaptions,
  runCaptions,
  scoreCaptions,
  tokenF1,
} from './captions.js';
export { type AnswererModule, type CliIo, formatAccuracy, main } from './command.js';
export {
  annotationsFor,
  compileImagePattern,
  DEFAULT_IMAGE_PATTERN,
  loadAnnotations,
  loadQuestions,
  loadResults,
  parseResults,
  resolveImages,
  type VqaQuestion,
} from './data.js';
export { type EvalErrorCode, VqaEvalError } from './errors.js';
export {
  compilePrompt,
  LAVIS_MAX_WORDS,
  lavisPreQuestion,
  postprocessAnswer,
  preprocessQuestion,
} from './lavis.js';
export { type LoadAnswererOptions, loadAnswerer } from './load-answerer.js';
export { type MergeOptions, mergeResults } from './merge.js';
export { ProgressBar } from './progress-bar.js';
export { type CheckedSettings, readProgress } from './progress-log.js';
export { PY_SUM_MODES, type PySumMode } from './python.js';
export type { EvalReport, ReportExample } from './report.js';
export {
  DEFAULT_BATCH_SIZE,
  progressPathFor,
  type RunOptions,
  type RunOutcome,
  type RunTimings,
  reportPathsFor,
  runEvaluation,
} from './run.js';
export { parseShard, SHARD_ENV, type ShardSpec, selectQuestions, shardFromEnvironment } from './select.js';
export {
  answerAccuracy,
  cleanAnswer,
  processDigitArticle,
  processPunctuation,
  scoreVqa,
  type VqaAccuracy,
  type VqaAnnotation,
  type VqaAnswer,
  type VqaResult,
} from './vqa-eval.js';
