/**
 * The real answerer: a BLIP-2 checkpoint run by @blip2/sdk. One `answer` call is one padded
 * batch, built the way the reference (transformers' Blip2Processor + `generate`) builds it:
 * `[<image> x num_query_tokens]` then the tokenized prompt, padded to the longest prompt on the
 * run's padding side, then `generate` with the run's settings.
 */
import type { VqaProtocol, VqaSettings } from '@blip2/generation';
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
  /** The weight format, as the SDK's `dtype` (e.g. 'q4', or per module); default the checkpoint's. */
  dtype?: Blip2FromPretrainedOptions['dtype'];
  /** Where the SDK keeps a checkpoint it quantizes at load (default its cache). */
  cacheDir?: string;
}

type Blip2FromPretrainedOptions = NonNullable<
  Parameters<typeof Blip2ForConditionalGeneration.fromPretrained>[1]
>;

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
      ...(opts.dtype !== undefined ? { dtype: opts.dtype } : {}),
      ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
      onWarning: (message) => process.stderr.write(`vqa-eval: ${message}\n`),
    });
  } catch (e) {
    throw new VqaEvalError('E_MODEL', `cannot load model "${opts.model}": ${describeError(e)}`);
  }
  return new SdkAnswerer(opts.model, model.config.textConfig.modelType, model);
}

class SdkAnswerer implements VqaAnswerer {
  readonly backend: string;

  constructor(
    readonly model: string,
    readonly family: string,
    private readonly blip2: Blip2ForConditionalGeneration,
  ) {
    this.backend = blip2.backendName;
  }

  vqaSettings(protocol: VqaProtocol): VqaSettings {
    try {
      return this.blip2.vqaSettings(protocol);
    } catch (e) {
      throw new VqaEvalError('E_MODEL', `${this.model}: ${describeError(e)}`);
    }
  }

  // No AbortSignal is taken: an interrupted run lets the batch in flight finish and keeps its
  // answers (cli.ts promises that), and runEvaluation stops before the next batch.
  // The prompts are complete ('{}' as the template); `ask` preprocesses each distinct image
  // once and runs its vision encoder and Q-Former once for all of its questions.
  async answer(items: readonly VqaItem[], settings: GenerationSettings): Promise<string[]> {
    if (items.length === 0) return [];
    try {
      return await this.blip2.ask(
        items.map((it) => it.imagePath),
        items.map((it) => it.prompt),
        {
          template: '{}',
          numBeams: settings.numBeams,
          maxNewTokens: settings.maxNewTokens,
          minNewTokens: settings.minNewTokens,
          lengthPenalty: settings.lengthPenalty,
          ...(settings.eosTokenIds ? { eosTokenId: settings.eosTokenIds } : {}),
          ...(settings.paddingSide ? { paddingSide: settings.paddingSide } : {}),
          maxPromptTokens: settings.maxPromptTokens ?? null,
          ...(settings.maxInputTokens !== undefined ? { maxInputTokens: settings.maxInputTokens } : {}),
        },
      );
    } catch (e) {
      throw imageError(e);
    }
  }

  async caption(
    imagePaths: readonly string[],
    settings: GenerationSettings,
    prompt?: string,
  ): Promise<string[]> {
    if (imagePaths.length === 0) return [];
    try {
      // an array in, an array out: the image side runs once per image, one greedy/beam batch
      return [
        await this.blip2.caption(imagePaths, {
          ...(prompt === undefined ? {} : { prompt }),
          numBeams: settings.numBeams,
          maxNewTokens: settings.maxNewTokens,
          minNewTokens: settings.minNewTokens,
          lengthPenalty: settings.lengthPenalty,
        }),
      ].flat();
    } catch (e) {
      throw imageError(e);
    }
  }

  async close(): Promise<void> {
    await this.blip2.dispose();
  }
}

/** The SDK's image errors as E_IMAGE; anything else as it came. */
function imageError(e: unknown): unknown {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('E_IMAGE')
    ? new VqaEvalError('E_IMAGE', `cannot preprocess the batch's images: ${describeError(e)}`)
    : e;
}

function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
