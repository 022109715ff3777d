/**
 * The public models, named as in transformers: Blip2VisionModel,
 * Blip2QFormerModel, Blip2Model and Blip2ForConditionalGeneration, plus the
 * pipelines users reach for first (`caption`, `ask`, `stream`).
 */
import type { Blip2Config } from '@blip2/configs';
import {
  checkInputLength,
  GenerationError,
  type GenerationOptions,
  type GenerationOutput,
  mergeQueryEmbeds,
  prependQueryEmbeds,
  generate as runGeneration,
  stepMemoryBudget,
  streamGenerate,
  VQA_PROTOCOLS,
  type VqaProtocol,
  type VqaSettings,
} from '@blip2/generation';
import type { ModelDType, ModuleName } from '@blip2/onnx';
import type { Blip2Processor, RawImage } from '@blip2/processor';
import { QFORMER_IO } from '@blip2/qformer';
import type { WeightFile } from '@blip2/safetensors';
import {
  type BuiltGraph,
  concat,
  firstNonFinite,
  gather,
  int64,
  lastAxisRow,
  logSoftmax,
  type Tensor,
  tensor,
} from '@blip2/tensor';
import { buildVisionModel, numPatches, VISION_MODEL_IO } from '@blip2/vision-encoder';
import { SdkError } from '../errors.js';
import { type FromPretrainedOptions, type LoadedParts, loadParts, type Part, releaseParts } from './load.js';
import { nonFiniteError } from './weights.js';

export interface VisionOutputs {
  /** float32 [B, 1 + patches, Dv] after post_layernorm */
  readonly lastHiddenState: Tensor<'float32'>;
  /** float32 [B, Dv]: post-layernormed CLS */
  readonly poolerOutput: Tensor<'float32'>;
  /** embeddings, then each layer's output (only with `outputHiddenStates`) */
  readonly hiddenStates?: Tensor<'float32'>[];
}

export interface QFormerOutputs {
  /** float32 [B, Q, Dq] */
  readonly lastHiddenState: Tensor<'float32'>;
}

function f32(out: Record<string, Tensor>, name: string, graph: string): Tensor<'float32'> {
  const t = out[name];
  if (t?.dtype !== 'float32')
    throw new SdkError('E_BACKEND', `${graph}: output '${name}' is missing or not float32`);
  return t as Tensor<'float32'>;
}

function checkPixels(pixelValues: Tensor, config: Blip2Config): asserts pixelValues is Tensor<'float32'> {
  const s = config.visionConfig.imageSize;
  const d = pixelValues?.dims;
  if (pixelValues?.dtype !== 'float32' || d.length !== 4 || d[1] !== 3 || d[2] !== s || d[3] !== s) {
    throw new SdkError(
      'E_INPUT',
      `pixelValues must be float32 [batch, 3, ${s}, ${s}], got ${pixelValues?.dtype} [${d?.join(', ')}]`,
    );
  }
}

/** Shared lifetime handling: every model owns its sessions until `dispose`. */
abstract class Loaded {
  protected constructor(protected readonly parts: LoadedParts) {}
  get config(): Blip2Config {
    return this.parts.config;
  }
  /** The ONNX graphs built for this model by name ('vision', 'qformer', 'lm.step', ...), e.g. to save or inspect them. */
  get graphs(): ReadonlyMap<string, BuiltGraph> {
    return this.parts.graphs;
  }
  /** The weight format of each module, e.g. `{ vision: 'q4', qformer: 'q4', language_model: 'q4' }` for a q4 export. */
  get dtypes(): Readonly<Record<ModuleName, ModelDType>> {
    return this.parts.dtypes;
  }
  /** Which backend runs the graphs, e.g. 'node:cpu'. */
  get backendName(): string {
    return this.parts.backend.name;
  }
  /**
   * The weight files the sessions read (for a plain checkpoint loaded in another
   * dtype, the quantized copy in the cache): what the model costs on disk.
   */
  get weightFiles(): readonly WeightFile[] {
    return this.parts.weights.files;
  }
  async dispose(): Promise<void> {
    await releaseParts(this.parts);
  }
}

export class Blip2VisionModel extends Loaded {
  static async fromPretrained(
    source: string,
    options: FromPretrainedOptions = {},
  ): Promise<Blip2VisionModel> {
    return new Blip2VisionModel(await loadParts(source, ['vision'], options));
  }

  protected static async load(
    source: string,
    parts: readonly Part[],
    options: FromPretrainedOptions,
  ): Promise<LoadedParts> {
    return loadParts(source, parts, options);
  }

  /** `Blip2VisionModel.forward`: last hidden state, pooled output, and every layer's hidden states on request. */
  async forward(pixelValues: Tensor, options: { outputHiddenStates?: boolean } = {}): Promise<VisionOutputs> {
    return visionForward(this.parts, pixelValues, options);
  }
}

async function visionForward(
  parts: LoadedParts,
  pixelValues: Tensor,
  options: { outputHiddenStates?: boolean },
): Promise<VisionOutputs> {
  checkPixels(pixelValues, parts.config);
  let key = 'vision';
  if (options.outputHiddenStates) {
    // a second graph over the same mapped weights: only its outputs differ
    key = 'vision.hidden';
    if (!parts.sessions.has(key)) {
      const g = buildVisionModel(parts.config.visionConfig, parts.weights, {
        outputHiddenStates: true,
        name: 'vision_model.hidden_states',
      });
      parts.graphs.set(key, g);
      parts.sessions.set(key, await parts.backend.load(g));
    }
  }
  const session = parts.sessions.get(key);
  if (!session) throw new SdkError('E_BACKEND', 'the vision model was not loaded');
  const out = await session.run({ [VISION_MODEL_IO.pixelValues]: pixelValues });
  const result: VisionOutputs = {
    lastHiddenState: f32(out, VISION_MODEL_IO.lastHiddenState, session.name),
    poolerOutput: f32(out, VISION_MODEL_IO.poolerOutput, session.name),
  };
  if (!options.outputHiddenStates) return result;
  const hiddenStates: Tensor<'float32'>[] = [];
  for (let i = 0; i <= parts.config.visionConfig.numHiddenLayers; i++)
    hiddenStates.push(f32(out, VISION_MODEL_IO.hiddenStates(i), session.name));
  return { ...result, hiddenStates };
}

async function qformerForward(
  parts: LoadedParts,
  imageEmbeds: Tensor,
): Promise<{ lastHiddenState: Tensor<'float32'>; queryEmbeds: Tensor<'float32'> }> {
  const v = parts.config.qformerConfig.encoderHiddenSize;
  if (imageEmbeds?.dtype !== 'float32' || imageEmbeds.dims.length !== 3 || imageEmbeds.dims[2] !== v) {
    throw new SdkError(
      'E_INPUT',
      `imageEmbeds must be float32 [batch, tokens, ${v}], got ${imageEmbeds?.dtype} [${imageEmbeds?.dims}]`,
    );
  }
  const session = parts.sessions.get('qformer');
  if (!session) throw new SdkError('E_BACKEND', 'the Q-Former was not loaded');
  const out = await session.run({ [QFORMER_IO.imageEmbeds]: imageEmbeds });
  return {
    lastHiddenState: f32(out, QFORMER_IO.lastHiddenState, session.name),
    queryEmbeds: f32(out, QFORMER_IO.queryEmbeds, session.name),
  };
}

export class Blip2QFormerModel extends Loaded {
  static async fromPretrained(
    source: string,
    options: FromPretrainedOptions = {},
  ): Promise<Blip2QFormerModel> {
    return new Blip2QFormerModel(await loadParts(source, ['qformer'], options));
  }

  /** `Blip2QFormerModel.forward`: the learned queries after cross-attending to `imageEmbeds` [B, tokens, Dv]. */
  async forward(imageEmbeds: Tensor): Promise<QFormerOutputs> {
    const { lastHiddenState } = await qformerForward(this.parts, imageEmbeds);
    return { lastHiddenState };
  }
}

export interface Blip2ForwardInputs {
  /** float32 [B, 3, S, S] */
  readonly pixelValues: Tensor;
  /** int64 [B, T]: image tokens then text, as Blip2Processor makes them */
  readonly inputIds: Tensor<'int64'>;
  readonly attentionMask?: Tensor<'int64'>;
  /** encoder-decoder (T5) only: decoder ids, starting with decoder_start_token_id (default: shift_right(labels), else the start token) */
  readonly decoderInputIds?: Tensor<'int64'>;
  /** int64 [B, L], -100 where no loss is taken; gives `loss` */
  readonly labels?: Tensor<'int64'>;
}

export interface Blip2ForwardOutputs {
  /** float32 [B, T, V] (OPT: every prompt position; T5: every decoder position) */
  readonly logits: Tensor<'float32'>;
  /** mean token cross-entropy over labels != -100 */
  readonly loss?: number;
  readonly visionOutputs: VisionOutputs;
  readonly qformerOutputs: QFormerOutputs;
  /** float32 [B, Q, D_lm]: language_projection(query outputs) */
  readonly languageModelInputs: Tensor<'float32'>;
}

const IGNORE_INDEX = -100n;

export class Blip2Model extends Loaded {
  static async fromPretrained(source: string, options: FromPretrainedOptions = {}): Promise<Blip2Model> {
    return new Blip2Model(
      await loadParts(source, ['vision', 'qformer', 'languageModel', 'processor'], options),
    );
  }

  get processor(): Blip2Processor {
    if (!this.parts.processor) throw new SdkError('E_BACKEND', 'no processor was loaded');
    return this.parts.processor;
  }

  /**
   * The language model (transformers' `language_model`) behind the generation seam:
   * `embed`, `prefill`, `step`, `reorderCache`, to drive decoding step by step.
   */
  get languageModel() {
    const lm = this.parts.languageModel;
    if (!lm) throw new SdkError('E_BACKEND', 'the language model was not loaded');
    return lm.adapter;
  }

  protected get adapter() {
    return this.languageModel;
  }

  /** The vision model's outputs (transformers' `Blip2Model.get_image_features`). */
  async getImageFeatures(
    pixelValues: Tensor,
    options: { outputHiddenStates?: boolean } = {},
  ): Promise<VisionOutputs> {
    return visionForward(this.parts, pixelValues, options);
  }

  /** The Q-Former's outputs for images (`get_qformer_features`). */
  async getQformerFeatures(pixelValues: Tensor): Promise<QFormerOutputs> {
    const vision = await visionForward(this.parts, pixelValues, {});
    const { lastHiddenState } = await qformerForward(this.parts, vision.lastHiddenState);
    return { lastHiddenState };
  }

  /** The language model alone on text (`get_text_features`): logits [B, T, V]. */
  async getTextFeatures(inputs: {
    inputIds: Tensor<'int64'>;
    attentionMask?: Tensor<'int64'>;
    decoderInputIds?: Tensor<'int64'>;
  }): Promise<{ logits: Tensor<'float32'> }> {
    const mask = inputs.attentionMask ?? ones(inputs.inputIds.dims);
    const embeds = await this.adapter.embed(inputs.inputIds);
    return { logits: await this.languageModelLogits(embeds, mask, inputs.decoderInputIds) };
  }

  /** Query embeddings for the language model: vision -> Q-Former -> language_projection, float32 [B, Q, D]. */
  async getLanguageModelInputs(pixelValues: Tensor): Promise<{
    languageModelInputs: Tensor<'float32'>;
    visionOutputs: VisionOutputs;
    qformerOutputs: QFormerOutputs;
  }> {
    const visionOutputs = await visionForward(this.parts, pixelValues, {});
    // NaN weights give NaN outputs, never an error from the runtime: caught here, per part,
    // before the language model turns them into an empty answer that looks like one
    if (firstNonFinite(visionOutputs.lastHiddenState.data) >= 0)
      throw await nonFiniteError(this.parts.weights, 'vision encoder', 'last hidden state');
    const q = await qformerForward(this.parts, visionOutputs.lastHiddenState);
    if (firstNonFinite(q.queryEmbeds.data) >= 0)
      throw await nonFiniteError(this.parts.weights, 'Q-Former', 'query embeddings');
    return {
      languageModelInputs: q.queryEmbeds,
      visionOutputs,
      qformerOutputs: { lastHiddenState: q.lastHiddenState },
    };
  }

  /** Text embeddings with the query embeddings at the `<image>` positions (or prepended, for checkpoints without image tokens). */
  async mergeInputs(
    queryEmbeds: Tensor<'float32'>,
    inputIds: Tensor<'int64'>,
    attentionMask: Tensor<'int64'>,
  ): Promise<{ inputsEmbeds: Tensor<'float32'>; attentionMask: Tensor<'int64'> }> {
    const text = await this.adapter.embed(inputIds);
    const imageToken = this.config.imageTokenIndex;
    if (imageToken === undefined) return prependQueryEmbeds(queryEmbeds, text, attentionMask);
    return { inputsEmbeds: mergeQueryEmbeds(text, inputIds, queryEmbeds, imageToken), attentionMask };
  }

  /** Full forward (teacher forcing): logits, and the loss when labels are given, e.g. to score candidate answers. */
  async forward(inputs: Blip2ForwardInputs): Promise<Blip2ForwardOutputs> {
    const { pixelValues, inputIds, labels } = inputs;
    const attentionMask = inputs.attentionMask ?? ones(inputIds.dims);
    const { languageModelInputs, visionOutputs, qformerOutputs } =
      await this.getLanguageModelInputs(pixelValues);
    if (languageModelInputs.dims[0] !== inputIds.dims[0]) {
      throw new SdkError(
        'E_INPUT',
        `${languageModelInputs.dims[0]} images but ${inputIds.dims[0]} rows of inputIds`,
      );
    }
    const merged = await this.mergeInputs(languageModelInputs, inputIds, attentionMask);
    let decoderInputIds = inputs.decoderInputIds;
    if (this.adapter.kind === 'encoder-decoder' && !decoderInputIds && labels)
      decoderInputIds = shiftRight(labels, this.adapter.decoderStartTokenId ?? 0, this.padTokenId());
    const logits = await this.languageModelLogits(merged.inputsEmbeds, merged.attentionMask, decoderInputIds);
    const loss = labels
      ? languageModelingLoss(logits, labels, this.adapter.kind === 'decoder-only')
      : undefined;
    return { logits, loss, visionOutputs, qformerOutputs, languageModelInputs };
  }

  private padTokenId(): number {
    return this.parts.processor?.padTokenId ?? 0;
  }

  /** Decoder-only: prefill logits. Encoder-decoder: prefill on the start token, then one step per decoder id. */
  private async languageModelLogits(
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
    decoderInputIds?: Tensor<'int64'>,
  ): Promise<Tensor<'float32'>> {
    const adapter = this.adapter;
    if (adapter.kind === 'decoder-only' && adapter.forward)
      return adapter.forward(inputsEmbeds, attentionMask);
    const first = await adapter.prefill(inputsEmbeds, attentionMask);
    if (adapter.kind === 'decoder-only') {
      await adapter.releaseCache?.(first.cache);
      return first.logits;
    }
    const start = adapter.decoderStartTokenId ?? 0;
    const [b] = inputsEmbeds.dims;
    const ids = decoderInputIds ?? int64([b, 1], new Array(b).fill(start));
    for (let r = 0; r < b; r++) {
      if (ids.data[r * ids.dims[1]] !== BigInt(start)) {
        throw new SdkError(
          'E_INPUT',
          `decoderInputIds row ${r} must start with decoder_start_token_id ${start}`,
        );
      }
    }
    const pieces = [first.logits];
    let cache = first.cache;
    for (let t = 1; t < ids.dims[1]; t++) {
      const col = int64(
        [b, 1],
        Array.from({ length: b }, (_, r) => ids.data[r * ids.dims[1] + t]),
      );
      const next = await adapter.step(col, cache);
      cache = next.cache;
      pieces.push(next.logits);
    }
    await adapter.releaseCache?.(cache);
    return concat(pieces, 1);
  }
}

function ones(dims: readonly number[]): Tensor<'int64'> {
  return tensor('int64', dims, new BigInt64Array(dims[0] * dims[1]).fill(1n));
}

/** T5's `_shift_right`: start token first, labels moved right, -100 replaced by pad. */
function shiftRight(labels: Tensor<'int64'>, start: number, pad: number): Tensor<'int64'> {
  const [b, l] = labels.dims;
  const out = new BigInt64Array(b * l);
  for (let r = 0; r < b; r++) {
    out[r * l] = BigInt(start);
    for (let t = 1; t < l; t++) {
      const v = labels.data[r * l + t - 1];
      out[r * l + t] = v === IGNORE_INDEX ? BigInt(pad) : v;
    }
  }
  return tensor('int64', [b, l], out);
}

/**
 * Mean cross-entropy over labels != -100. Decoder-only: the last L positions of
 * the logits score labels shifted left by one (position t predicts token t+1),
 * as transformers' ForCausalLMLoss; encoder-decoder: position t scores label t.
 */
export function languageModelingLoss(
  logits: Tensor<'float32'>,
  labels: Tensor<'int64'>,
  causal: boolean,
): number {
  const [b, t, v] = logits.dims;
  const [lb, l] = labels.dims;
  if (lb !== b || l > t)
    throw new SdkError('E_INPUT', `labels [${labels.dims}] do not fit logits [${logits.dims}]`);
  let sum = 0;
  let count = 0;
  for (let r = 0; r < b; r++) {
    for (let i = 0; i < l; i++) {
      const target = causal
        ? i + 1 < l
          ? labels.data[r * l + i + 1]
          : IGNORE_INDEX
        : labels.data[r * l + i];
      if (target === IGNORE_INDEX) continue;
      const id = Number(target);
      if (id < 0 || id >= v) throw new SdkError('E_INPUT', `label ${id} is outside the vocabulary (${v})`);
      const pos = t - l + i;
      sum -= logSoftmax(lastAxisRow(logits, r * t + pos))[id];
      count++;
    }
  }
  return count ? sum / count : Number.NaN;
}

export interface PipelineOptions extends GenerationOptions {
  /** text to continue (captioning) — default none: the model captions from the image alone */
  readonly prompt?: string;
}

/**
 * A global class's instance type where the program's libs declare it (lib "dom" for
 * HTMLImageElement), `never` where they do not: the Node entry's .d.ts type-checks
 * without lib "dom", and a browser program gets the DOM image types.
 */
type GlobalInstance<K extends string> =
  typeof globalThis extends Record<K, { prototype: infer T }> ? T : never;

/**
 * What the pipelines take as an image. `string`: a file path in Node, a URL in
 * browsers; `URL`: a file: URL in Node, any URL in browsers; bytes and Blobs: an
 * encoded image (PNG, JPEG, WebP, GIF, BMP; TIFF in Node); `RawImage`: pixels you
 * already have; the DOM's ImageData, ImageBitmap and HTMLImageElement in browsers.
 */
export type ImageInput =
  | string
  | GlobalInstance<'URL'>
  | Uint8Array
  | ArrayBuffer
  | GlobalInstance<'Blob'>
  | RawImage
  | GlobalInstance<'ImageData'>
  | GlobalInstance<'ImageBitmap'>
  | GlobalInstance<'HTMLImageElement'>;

export interface GenerateInputs {
  /** float32 [N, 3, S, S]: the images */
  readonly pixelValues: Tensor;
  /** int64 [B, T]: prompts (default: the image tokens and BOS) */
  readonly inputIds?: Tensor<'int64'>;
  readonly attentionMask?: Tensor<'int64'>;
  /**
   * Which image each prompt row is about (default: row i is image i). Several
   * questions about one image then run the vision encoder and Q-Former once.
   */
  readonly imageRows?: readonly number[];
}

export class Blip2ForConditionalGeneration extends Blip2Model {
  static override async fromPretrained(
    source: string,
    options: FromPretrainedOptions = {},
  ): Promise<Blip2ForConditionalGeneration> {
    return new Blip2ForConditionalGeneration(
      await loadParts(source, ['vision', 'qformer', 'languageModel', 'processor'], options),
    );
  }

  /**
   * A zero-shot VQA protocol of this model's language-model family (see `VqaProtocol`), its
   * stop tokens looked up in this checkpoint: LAVIS's OPT stops on the id the tokenizer gives
   * "\n", `'eos'` presets on the checkpoint's generation_config.json EOS.
   */
  vqaSettings(protocol: VqaProtocol = 'paper'): VqaSettings {
    const lm = this.parts.languageModel;
    if (!lm) throw new SdkError('E_BACKEND', 'the language model was not loaded');
    const preset = (VQA_PROTOCOLS as readonly string[]).includes(protocol)
      ? lm.module.vqaPresets[protocol]
      : undefined;
    if (!preset) {
      throw new SdkError(
        'E_OPTION',
        `VQA protocol ${JSON.stringify(protocol)}: expected ${VQA_PROTOCOLS.join(' or ')}`,
      );
    }
    const { stopOn, ...settings } = preset;
    let eosTokenIds: number[];
    if (stopOn === 'eos') {
      eosTokenIds = [this.parts.generationDefaults.eosTokenId ?? []].flat();
    } else {
      const id = this.processor.tokenizer.encode(stopOn.text, null, { addSpecialTokens: false }).ids[0];
      if (id === undefined) {
        throw new SdkError(
          'E_OPTION',
          `VQA protocol ${protocol} stops on ${JSON.stringify(stopOn.text)}, which this checkpoint's tokenizer.json encodes to no token`,
        );
      }
      eosTokenIds = [id];
    }
    return { ...settings, eosTokenIds };
  }

  /**
   * `generate`: the image side runs once per image (beams and samples share it),
   * then the language model generates. Without `inputIds` the prompt is the image
   * tokens and BOS, as transformers does.
   */
  async generate(inputs: GenerateInputs, options: GenerationOptions = {}): Promise<GenerationOutput> {
    const merged = { ...this.parts.generationDefaults, ...options };
    const prepared = await this.prepare(inputs, merged);
    return runGeneration(this.adapter, prepared, merged).catch((e) => this.nameNonFinite(e));
  }

  /** generate's E_NAN_LOGITS as E_NAN naming the language-model weight at fault; other errors as they are. */
  private async nameNonFinite(e: unknown): Promise<never> {
    if (e instanceof GenerationError && e.code === 'E_NAN_LOGITS')
      throw await nonFiniteError(this.parts.weights, 'language model', 'logits', e);
    throw e;
  }

  private async prepare(inputs: GenerateInputs, options: GenerationOptions) {
    checkPixels(inputs.pixelValues, this.config);
    const images = inputs.pixelValues.dims[0];
    const rows = inputs.imageRows ?? Array.from({ length: images }, (_, i) => i);
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= images) {
        throw new SdkError('E_INPUT', `imageRows holds ${r}, but there are ${images} images`);
      }
    }
    const b = rows.length;
    let inputIds = inputs.inputIds;
    if (!inputIds) {
      const bos = this.config.textConfig.bosTokenId;
      const imageToken = this.config.imageTokenIndex;
      const row = [
        ...(imageToken === undefined ? [] : new Array(this.config.numQueryTokens).fill(imageToken)),
        ...(bos === undefined ? [] : [bos]),
      ];
      inputIds = int64([b, row.length], Array.from({ length: b }, () => row).flat());
    }
    if (inputIds.dims[0] !== b) throw new SdkError('E_INPUT', `${b} images but ${inputIds.dims[0]} prompts`);
    const attentionMask = inputs.attentionMask ?? ones(inputIds.dims);
    // before any session runs: T5's encoder attends over the query embeddings (prepended,
    // or in place of the image tokens) and the prompt, with memory square in the length
    const prepended = this.config.imageTokenIndex === undefined ? this.config.numQueryTokens : 0;
    checkInputLength(this.adapter, inputIds.dims[1] + prepended, options);
    // the image side runs once per distinct image; prompt rows share its query embeddings
    const { languageModelInputs } = await this.getLanguageModelInputs(inputs.pixelValues);
    const queryEmbeds = inputs.imageRows ? gather(languageModelInputs, 0, rows) : languageModelInputs;
    const merged = await this.mergeInputs(queryEmbeds, inputIds, attentionMask);
    // decoder-only: the processors see the prompt ids (image tokens too), as in transformers
    return { ...merged, inputIds: this.config.imageTokenIndex === undefined ? undefined : inputIds };
  }

  /**
   * Preprocesses each distinct image once (the same path or object asked about
   * several times is one image) and tokenizes the prompts; `imageRows` maps each
   * prompt row to its image.
   */
  private async encode(
    images: readonly ImageInput[],
    prompts: readonly string[] | undefined,
    paddingSide?: 'left' | 'right',
    maxPromptTokens: number | null = null,
    stepMemoryBytes?: number,
  ): Promise<GenerateInputs> {
    const processor = this.processor;
    const index = new Map<ImageInput, number>();
    const imageRows = images.map((img) => {
      if (!index.has(img)) index.set(img, index.size);
      return index.get(img) as number;
    });
    this.checkImageBatch(index.size, { stepMemoryBytes });
    const { pixelValues } = await processor.process({ images: [...index.keys()] });
    if (!pixelValues) throw new SdkError('E_IMAGE', 'no image was given');
    const shared = index.size < images.length ? { imageRows } : {};
    if (!prompts) return { pixelValues, ...shared };
    const { inputIds, attentionMask } = processor.encodeText(prompts, paddingSide, maxPromptTokens);
    return { pixelValues, inputIds, attentionMask, ...shared };
  }

  /**
   * Refuses, before any image is decoded, a call whose distinct images the image side could
   * not hold at once: it runs them as one batch, and each image keeps its pixels, the ViT's
   * MLP activations (intermediate + residual streams) and one layer's attention scores live.
   */
  private checkImageBatch(images: number, options: Pick<GenerationOptions, 'stepMemoryBytes'>): void {
    const stepMemoryBytes = stepMemoryBudget(options);
    const v = this.config.visionConfig;
    const tokens = numPatches(v) + 1;
    const perImage =
      4 *
      (3 * v.imageSize * v.imageSize +
        tokens * (v.intermediateSize + 2 * v.hiddenSize) +
        v.numAttentionHeads * tokens * tokens);
    if (images * perImage <= stepMemoryBytes) return;
    const mib = (n: number) => `${(n / 1024 ** 2).toFixed(0)} MiB`;
    throw new SdkError(
      'E_INPUT',
      `${images} distinct images in one call need ${mib(images * perImage)} on the image side ` +
        `(${mib(perImage)} each), above the limit of ${mib(stepMemoryBytes)} (stepMemoryBytes); ` +
        `pass at most ${Math.max(1, Math.floor(stepMemoryBytes / perImage))} images per call`,
    );
  }

  private decode(out: GenerationOutput): string[] {
    const start = this.adapter.kind === 'encoder-decoder' ? 1 : 0;
    return out.sequences.map((s) =>
      this.processor.decode(s.slice(start), { skipSpecialTokens: true }).trim(),
    );
  }

  /** Captions one image (a string) or several (strings); `prompt` conditions the caption ("a photo of"). */
  async caption(image: ImageInput, options?: PipelineOptions): Promise<string>;
  async caption(images: readonly ImageInput[], options?: PipelineOptions): Promise<string[]>;
  async caption(
    image: ImageInput | readonly ImageInput[],
    options: PipelineOptions = {},
  ): Promise<string | string[]> {
    const { prompt, ...gen } = options;
    const list = Array.isArray(image) ? image : [image];
    const enc = await this.encode(
      list,
      prompt === undefined ? undefined : list.map(() => prompt),
      undefined,
      null,
      gen.stepMemoryBytes,
    );
    const texts = this.decode(await this.generate(enc, gen));
    return Array.isArray(image) ? texts : texts[0];
  }

  /**
   * Answers a question about an image with a zero-shot VQA protocol of the family (the paper's
   * unless `protocol` says otherwise: prompt, beams, length penalty, lengths, stop tokens,
   * padding side, prompt truncation); any option given wins over the protocol's. The question is used as written.
   * Arrays answer in one batch: images and questions pair up one to one, and a single
   * image (or question) goes with each of the other side's (the image side then runs once).
   */
  async ask(image: ImageInput, question: string, options?: AskOptions): Promise<string>;
  async ask(image: ImageInput, questions: readonly string[], options?: AskOptions): Promise<string[]>;
  async ask(images: readonly ImageInput[], question: string, options?: AskOptions): Promise<string[]>;
  async ask(
    images: readonly ImageInput[],
    questions: readonly string[],
    options?: AskOptions,
  ): Promise<string[]>;
  async ask(
    image: ImageInput | readonly ImageInput[],
    question: string | readonly string[],
    options: AskOptions = {},
  ): Promise<string | string[]> {
    const {
      protocol,
      template: givenTemplate,
      paddingSide: givenSide,
      maxPromptTokens: givenMax,
      ...gen
    } = options;
    const vqa = this.vqaSettings(protocol);
    const template = givenTemplate ?? vqa.prompt;
    const paddingSide = givenSide ?? vqa.paddingSide;
    const maxPromptTokens = givenMax === undefined ? vqa.maxPromptTokens : givenMax;
    const manyImages = Array.isArray(image);
    const manyQuestions = Array.isArray(question);
    const questions: readonly unknown[] = manyQuestions ? question : [question];
    if (questions.some((q) => typeof q !== 'string')) {
      throw new SdkError(
        'E_INPUT',
        `question must be a string or an array of strings, got ${JSON.stringify(question)}`,
      );
    }
    let images: readonly ImageInput[] = manyImages ? image : [image];
    if (manyImages && manyQuestions && images.length !== questions.length)
      throw new SdkError('E_INPUT', `${images.length} images but ${questions.length} questions`);
    if (!manyImages) images = questions.map(() => image as ImageInput);
    const prompts = manyQuestions ? (questions as string[]) : images.map(() => question as string);
    if (!template.includes('{}'))
      throw new SdkError(
        'E_OPTION',
        `template must contain '{}' where the question goes, got ${JSON.stringify(template)}`,
      );
    const enc = await this.encode(
      images,
      prompts.map((q) => template.replace('{}', q)),
      paddingSide,
      maxPromptTokens,
      gen.stepMemoryBytes,
    );
    const texts = this.decode(await this.generate(enc, { ...vqaGenerationOptions(vqa), ...gen }));
    return manyImages || manyQuestions ? texts : texts[0];
  }

  /**
   * Streams the text of one image's caption (or answer, with `prompt`) as tokens are
   * chosen: each item is the new piece of text. Greedy or sampling; beam search
   * yields its result at the end.
   */
  async *stream(image: ImageInput, options: PipelineOptions = {}): AsyncGenerator<string, string, void> {
    const { prompt, ...gen } = options;
    const enc = await this.encode([image], prompt === undefined ? undefined : [prompt]);
    const merged = { ...this.parts.generationDefaults, ...gen };
    const prepared = await this.prepare(enc, merged);
    const s = streamGenerate(this.adapter, prepared, merged);
    const ids: number[] = [];
    let shown = '';
    const eos = new Set([gen.eosTokenId ?? this.parts.generationDefaults.eosTokenId ?? []].flat());
    try {
      for await (const event of s) {
        const token = event.tokens[0];
        if (eos.has(token)) continue;
        ids.push(token);
        const text = this.processor.decode(ids, { skipSpecialTokens: true });
        // a byte-level BPE piece may end inside a character: wait for the rest
        if (text.endsWith('\uFFFD')) continue;
        if (text.length > shown.length) {
          yield text.slice(shown.length);
          shown = text;
        }
      }
      await s.result;
    } catch (e) {
      await this.nameNonFinite(e);
    }
    return shown.trim();
  }
}

export interface AskOptions extends GenerationOptions {
  /** the zero-shot VQA protocol whose settings are the defaults (default 'paper') */
  readonly protocol?: VqaProtocol;
  /** prompt with '{}' for the question (default: the protocol's, 'Question: {} Answer:' for OPT's paper protocol) */
  readonly template?: string;
  /** side a batch of prompts is padded on (default: the protocol's, OPT left, T5 right) */
  readonly paddingSide?: 'left' | 'right';
  /** each prompt's first this many text ids are kept, null none (default: the protocol's, 32 for OPT's lavis) */
  readonly maxPromptTokens?: number | null;
}

/** The generation options of VQA settings (`model.vqaSettings(protocol)`). */
export function vqaGenerationOptions(settings: VqaSettings): GenerationOptions {
  return {
    numBeams: settings.numBeams,
    lengthPenalty: settings.lengthPenalty,
    maxNewTokens: settings.maxNewTokens,
    minNewTokens: settings.minNewTokens,
    eosTokenId: [...settings.eosTokenIds],
  };
}
