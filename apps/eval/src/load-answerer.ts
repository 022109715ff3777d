/**
 * The real answerer: a BLIP-2 checkpoint run by @blip2/sdk. One `answer` call is one padded
 * batch, built the way the reference (transformers' Blip2Processor + `generate`) builds it:
 * `[<image> x num_query_tokens]` then the tokenized prompt, padded to the longest prompt on the
 * side the language model wants (OPT left, T5 right), then `generate` with the run's settings.
 */
import type { Blip2ForConditionalGeneration } from '@blip2/sdk';
import type { GenerationSettings, VqaAnswerer, VqaItem } from './answerer.js';
import { VqaEvalError } from './errors.js';

export interface LoadAnswererOptions {
  /** A model folder, URL or hub id, as the SDK understands it. */
  model: string;
  /** 'node' (onnxruntime-node, the default) or 'web' (onnxruntime-web). */
  backend?: string;
  /** The backend's device, e.g. 'cpu', 'cuda' (node) or 'wasm' (web). */
  device?: string;
}

const BACKENDS = ['node', 'web'] as const;
type BackendName = (typeof BACKENDS)[number];

export async function loadAnswerer(opts: LoadAnswererOptions): Promise<VqaAnswerer> {
  const backend = opts.backend ?? 'node';
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw new VqaEvalError('E_ARGS', `--backend "${backend}": expected ${BACKENDS.join(' or ')}`);
  }
  // Imported here, not at the top: `score`, `merge` and --answerer-module runs never need
  // onnxruntime, sharp or the tokenizers binaries.
  const { Blip2ForConditionalGeneration } = await import('@blip2/sdk');
  let model: Blip2ForConditionalGeneration;
  try {
    model = await Blip2ForConditionalGeneration.fromPretrained(opts.model, {
      backend: backend as BackendName,
      ...(opts.device !== undefined ? { device: opts.device } : {}),
      onWarning: (message) => process.stderr.write(`vqa-eval: ${message}\n`),
    });
  } catch (e) {
    throw new VqaEvalError('E_MODEL', `cannot load model "${opts.model}": ${describeError(e)}`);
  }
  const modelType = model.config.textConfig.modelType;
  if (modelType !== 'opt' && modelType !== 't5') {
    await model.dispose();
    throw new VqaEvalError(
      'E_MODEL',
      `${opts.model}: config.json text_config.model_type is "${modelType}"; the VQA prompts exist for opt and t5`,
    );
  }
  return new SdkAnswerer(opts.model, modelType, model);
}

class SdkAnswerer implements VqaAnswerer {
  readonly backend: string;

  constructor(
    readonly model: string,
    readonly family: 'opt' | 't5',
    private readonly blip2: Blip2ForConditionalGeneration,
  ) {
    this.backend = blip2.backendName;
  }

  // No AbortSignal is taken: an interrupted run lets the batch in flight finish and keeps its
  // answers (cli.ts promises that), and runEvaluation stops before the next batch.
  async answer(items: readonly VqaItem[], settings: GenerationSettings): Promise<string[]> {
    if (items.length === 0) return [];
    const processor = this.blip2.processor;
    const pixelValues = await pixelValuesFor(processor, items);
    const { inputIds, attentionMask } = processor.encodeText(items.map((it) => it.prompt));
    const { sequences } = await this.blip2.generate(
      { pixelValues, inputIds, attentionMask },
      {
        numBeams: settings.numBeams,
        maxNewTokens: settings.maxNewTokens,
        minNewTokens: settings.minNewTokens,
        lengthPenalty: settings.lengthPenalty,
      },
    );
    // T5 sequences start with decoder_start_token_id (the pad token); OPT's are the continuation only.
    const skip = this.family === 't5' ? 1 : 0;
    return sequences.map((ids) => processor.decode(ids.slice(skip), { skipSpecialTokens: true }).trim());
  }

  async close(): Promise<void> {
    await this.blip2.dispose();
  }
}

type PixelValues = Parameters<Blip2ForConditionalGeneration['generate']>[0]['pixelValues'];
type Processor = Blip2ForConditionalGeneration['processor'];

/**
 * VQAv2 asks several questions per image and the app keeps them together, so each distinct
 * path is decoded and resized once; rows of the same image copy its preprocessed row.
 */
async function pixelValuesFor(processor: Processor, items: readonly VqaItem[]): Promise<PixelValues> {
  const firstRow = new Map<string, number>();
  for (const it of items) if (!firstRow.has(it.imagePath)) firstRow.set(it.imagePath, firstRow.size);
  const paths = [...firstRow.keys()];
  let distinct: PixelValues | undefined;
  try {
    distinct = (await processor.process({ images: paths })).pixelValues;
  } catch (e) {
    throw new VqaEvalError('E_IMAGE', `cannot preprocess the batch's images: ${describeError(e)}`);
  }
  if (distinct?.dtype !== 'float32') {
    throw new VqaEvalError('E_IMAGE', `the processor returned no float32 pixel values for ${paths[0]}...`);
  }
  if (paths.length === items.length) return distinct;
  const [, c, h, w] = distinct.dims as [number, number, number, number];
  const row = c * h * w;
  const source = distinct.data as Float32Array;
  const data = new Float32Array(items.length * row);
  items.forEach((it, i) => {
    const from = firstRow.get(it.imagePath)! * row;
    data.set(source.subarray(from, from + row), i * row);
  });
  return { dtype: 'float32', dims: [items.length, c, h, w], data };
}

function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
