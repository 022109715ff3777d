/**
 * The entry point transformers.js users know: `pipeline(task, model, options)` gives
 * a function that takes images and returns what transformers.js's pipeline of that
 * task returns, with the same load options (`device`, `dtype`, `progress_callback`)
 * and the same progress events, so code written for transformers.js moves over with
 * the import changed. Underneath it is `Blip2ForConditionalGeneration`: captions are
 * `model.caption`, answers `model.ask` (the family's zero-shot prompt, VQA decoding).
 */
import { type GenerationOptions, generationOptionsFromConfig } from '@blip2/generation';
import { SdkError } from '../errors.js';
import type { LoadProgress } from '../sources/progress.js';
import { type DTypeOption, resolveDTypes } from './dtype.js';
import type { FromPretrainedOptions } from './load.js';
import { Blip2ForConditionalGeneration, type ImageInput } from './models.js';
import { checkFromPretrainedOptions, FROM_PRETRAINED_OPTION_NAMES } from './option-names.js';

export type PipelineTask = 'image-to-text' | 'visual-question-answering';
const TASKS: readonly PipelineTask[] = ['image-to-text', 'visual-question-answering'];

/** transformers.js's progress events (`ProgressInfo`), with its field names: per file, then once `ready`. */
export type ProgressInfo =
  | { readonly status: 'initiate'; readonly name: string; readonly file: string }
  | { readonly status: 'download'; readonly name: string; readonly file: string }
  | {
      readonly status: 'progress';
      readonly name: string;
      readonly file: string;
      /** 0 to 100 */
      readonly progress: number;
      readonly loaded: number;
      readonly total: number;
    }
  | { readonly status: 'done'; readonly name: string; readonly file: string }
  | { readonly status: 'ready'; readonly task: PipelineTask; readonly model: string };

/** transformers.js's names, per module too ('auto': the checkpoint's own, i.e. fromPretrained's default). */
export type PipelineDtype = 'auto' | DTypeOption;

export interface PretrainedPipelineOptions
  extends Omit<FromPretrainedOptions, 'device' | 'dtype' | 'onProgress' | 'backend'> {
  /** 'cpu', 'cuda', 'webgpu', 'wasm' (in Node: onnxruntime-web's wasm), 'webnn', 'dml', 'coreml', or 'auto' */
  readonly device?: string;
  readonly dtype?: PipelineDtype;
  readonly progress_callback?: (info: ProgressInfo) => void;
  /** transformers.js's spelling of `cacheDir` */
  readonly cache_dir?: string;
}

/** fromPretrained's names with transformers.js's spellings for progress and the cache. */
const PIPELINE_OPTION_NAMES: readonly string[] = [
  ...FROM_PRETRAINED_OPTION_NAMES.filter((n) => n !== 'onProgress' && n !== 'backend'),
  ...(['progress_callback', 'cache_dir'] satisfies (keyof PretrainedPipelineOptions)[]),
];

/** Generation settings as transformers.js passes them: generation_config.json's snake_case keys. */
export type GenerateKwargs = Readonly<Record<string, unknown>>;

export interface ImageToTextSingle {
  readonly generated_text: string;
}
export interface VisualQuestionAnsweringSingle {
  readonly answer: string;
}

interface PipelineBase {
  readonly task: PipelineTask;
  readonly model: Blip2ForConditionalGeneration;
  /** Releases the model's sessions. */
  dispose(): Promise<void>;
}

export interface ImageToTextPipeline extends PipelineBase {
  (image: ImageInput, options?: GenerateKwargs): Promise<ImageToTextSingle[]>;
  (images: readonly ImageInput[], options?: GenerateKwargs): Promise<ImageToTextSingle[][]>;
}

export interface VisualQuestionAnsweringPipeline extends PipelineBase {
  (image: ImageInput, question: string, options?: GenerateKwargs): Promise<VisualQuestionAnsweringSingle[]>;
}

/**
 * The SDK's byte counts per file as transformers.js's events: `initiate` and
 * `download` when a file starts, `progress` with a percentage, `done` when all its
 * bytes are in. Files read in place (a local folder) are not downloaded and send none.
 */
function progressEvents(name: string, emit: (info: ProgressInfo) => void) {
  const started = new Set<string>();
  const finished = new Set<string>();
  const done = (file: string) => {
    if (finished.has(file)) return;
    finished.add(file);
    emit({ status: 'done', name, file });
  };
  return {
    onProgress(e: LoadProgress) {
      if (e.phase !== 'download') return;
      const { file, loaded, total } = e;
      if (!started.has(file)) {
        started.add(file);
        emit({ status: 'initiate', name, file });
        emit({ status: 'download', name, file });
      }
      emit({
        status: 'progress',
        name,
        file,
        progress: total > 0 ? (loaded / total) * 100 : 100,
        loaded,
        total,
      });
      if (loaded >= total) done(file);
    },
    /** every file has arrived once the model loaded */
    finish() {
      for (const file of started) done(file);
    },
  };
}

function generationKwargs(options: GenerateKwargs | undefined): GenerationOptions {
  if (options === undefined) return {};
  return generationOptionsFromConfig(options, 'pipeline generation options', 'refuse');
}

/**
 * `pipeline('image-to-text', model)` captions: `await captioner(image)` is
 * `[{ generated_text }]` (an array of images: one such array each).
 * `pipeline('visual-question-answering', model)` answers: `await vqa(image, question)`
 * is `[{ answer }]`, the shape of transformers.js's question-answering pipelines.
 */
export async function pipeline(
  task: 'image-to-text',
  model: string,
  options?: PretrainedPipelineOptions,
): Promise<ImageToTextPipeline>;
export async function pipeline(
  task: 'visual-question-answering',
  model: string,
  options?: PretrainedPipelineOptions,
): Promise<VisualQuestionAnsweringPipeline>;
export async function pipeline(
  task: PipelineTask,
  model: string,
  options: PretrainedPipelineOptions = {},
): Promise<ImageToTextPipeline | VisualQuestionAnsweringPipeline> {
  if (!TASKS.includes(task)) {
    throw new SdkError(
      'E_OPTION',
      `pipeline task must be ${TASKS.map((t) => `'${t}'`).join(' or ')} (BLIP-2 captions and answers), got ${JSON.stringify(task)}`,
    );
  }
  if (options !== null && typeof options === 'object' && 'onProgress' in options) {
    // fromPretrained's name, which no spelling distance leads from
    throw new SdkError(
      'E_OPTION',
      `unknown option "onProgress" in pipeline options (did you mean 'progress_callback'? pipeline takes transformers.js's names)`,
    );
  }
  checkFromPretrainedOptions(options, 'pipeline options', PIPELINE_OPTION_NAMES);
  const { device, dtype = 'auto', progress_callback, cache_dir, ...rest } = options;
  // checked before anything loads: an unknown name or module is E_DTYPE naming it
  if (dtype !== 'auto') resolveDTypes(dtype);
  const progress = progress_callback ? progressEvents(model, progress_callback) : undefined;
  const loaded = await Blip2ForConditionalGeneration.fromPretrained(model, {
    ...rest,
    ...(cache_dir === undefined ? {} : { cacheDir: cache_dir }),
    // transformers.js's 'wasm' in Node is onnxruntime-web; 'auto' is the platform's default
    ...(device === 'wasm'
      ? { backend: 'web' as const, device }
      : device && device !== 'auto'
        ? { device }
        : {}),
    ...(dtype === 'auto' ? {} : { dtype }),
    ...(progress ? { onProgress: progress.onProgress } : {}),
  });
  progress?.finish();
  progress_callback?.({ status: 'ready', task, model });
  const base = { task, model: loaded, dispose: () => loaded.dispose() };
  if (task === 'image-to-text') {
    const captioner = async (images: ImageInput | readonly ImageInput[], kwargs?: GenerateKwargs) => {
      const gen = generationKwargs(kwargs);
      if (Array.isArray(images)) {
        const texts = await loaded.caption(images as readonly ImageInput[], gen);
        return texts.map((generated_text) => [{ generated_text }]);
      }
      return [{ generated_text: await loaded.caption(images as ImageInput, gen) }];
    };
    return Object.assign(captioner, base) as ImageToTextPipeline;
  }
  const vqa = async (image: ImageInput, question: string, kwargs?: GenerateKwargs) => {
    if (typeof question !== 'string') {
      throw new SdkError('E_INPUT', `the question must be a string, got ${JSON.stringify(question)}`);
    }
    return [{ answer: await loaded.ask(image, question, generationKwargs(kwargs)) }];
  };
  return Object.assign(vqa, base) as VisualQuestionAnsweringPipeline;
}
