/**
 * `Blip2Processor`: images and prompts in, the model's three inputs out, laid out as
 * transformers' Blip2Processor does:
 *
 *   input_ids = [<image> x num_query_tokens] + tokenizer(text) (with its special tokens)
 *
 * Padding goes between the image tokens and the text, so for decoder-only models padded
 * on the LEFT a row reads `[<image> x N, <pad>.., </s>, text..]`. Checkpoints saved before
 * transformers 4.47 have no `image_token_index` and no `<image>` token: then
 * `imageTokenId` is null, no image tokens are inserted and the model prepends the query
 * embeddings to the text embeddings itself.
 */
import { type Blip2Config, textConfigFamily } from '@blip2/configs';
import { int64, type Tensor } from '@blip2/tensor';
import { decodeImageBrowser } from './decode-browser.js';
import { checkOptionNames, describe, ProcessorError } from './errors.js';
import type { RgbImage } from './image.js';
import type { ImageProcessor } from './image-processor.js';
import { pushAll } from './tokenizer/arrays.js';
import type { DecodeOptions, Tokenizer } from './tokenizer/tokenizer.js';

export type ImageDecoder = (input: unknown, what: string) => Promise<RgbImage>;

export interface Blip2ProcessorOptions {
  readonly imageProcessor: ImageProcessor;
  readonly tokenizer: Tokenizer;
  /** Q-Former query count (32 for the published checkpoints) */
  readonly numQueryTokens: number;
  /** id of `<image>`; undefined = look it up in the tokenizer; null = older checkpoint, no image tokens */
  readonly imageTokenId?: number | null;
  /** decoder-only LMs (OPT) pad left, encoder-decoder (T5) right; default 'right' */
  readonly paddingSide?: 'left' | 'right';
  /** how non-raw images are decoded; the Node entry passes sharp, the default uses the browser */
  readonly decodeImage?: ImageDecoder;
}

export interface Blip2Inputs {
  /** float32 [B, 3, S, S] */
  pixelValues?: Tensor<'float32'>;
  /** int64 [B, T] */
  inputIds?: Tensor<'int64'>;
  /** int64 [B, T], 0 on padding */
  attentionMask?: Tensor<'int64'>;
}

export interface Blip2Call {
  images?: unknown;
  text?: string | readonly string[];
}

const BLIP2_PROCESSOR_OPTION_NAMES = Object.keys({
  imageProcessor: true,
  tokenizer: true,
  numQueryTokens: true,
  imageTokenId: true,
  paddingSide: true,
  decodeImage: true,
} satisfies Record<keyof Blip2ProcessorOptions, true>);
const BLIP2_CALL_NAMES = Object.keys({ images: true, text: true } satisfies Record<keyof Blip2Call, true>);

export class Blip2Processor {
  readonly imageProcessor: ImageProcessor;
  readonly tokenizer: Tokenizer;
  readonly numQueryTokens: number;
  readonly imageTokenId: number | null;
  readonly paddingSide: 'left' | 'right';
  readonly padTokenId: number;
  private readonly decodeImage: ImageDecoder;

  constructor(options: Blip2ProcessorOptions) {
    checkOptionNames(options, BLIP2_PROCESSOR_OPTION_NAMES, 'Blip2Processor options');
    const { numQueryTokens, tokenizer } = options;
    if (!Number.isInteger(numQueryTokens) || numQueryTokens < 0) {
      throw new ProcessorError(
        'E_CONFIG',
        `Blip2Processor: numQueryTokens must be a non-negative integer, got ${describe(numQueryTokens)}`,
      );
    }
    if (
      options.paddingSide !== undefined &&
      options.paddingSide !== 'left' &&
      options.paddingSide !== 'right'
    ) {
      throw new ProcessorError(
        'E_CONFIG',
        `Blip2Processor: paddingSide must be 'left' or 'right', got ${describe(options.paddingSide)}`,
      );
    }
    this.imageProcessor = options.imageProcessor;
    this.tokenizer = tokenizer;
    this.numQueryTokens = numQueryTokens;
    this.imageTokenId =
      options.imageTokenId === undefined ? (tokenizer.tokenToId('<image>') ?? null) : options.imageTokenId;
    if (this.imageTokenId !== null && (!Number.isInteger(this.imageTokenId) || this.imageTokenId < 0)) {
      throw new ProcessorError(
        'E_CONFIG',
        `Blip2Processor: imageTokenId must be a token id or null, got ${describe(this.imageTokenId)}`,
      );
    }
    this.paddingSide = options.paddingSide ?? 'right';
    const pad = tokenizer.namedTokenId('pad_token') ?? tokenizer.tokenToId('<pad>');
    if (pad === undefined)
      throw new ProcessorError(
        'E_CONFIG',
        'Blip2Processor: the tokenizer has no pad token (tokenizer_config.json "pad_token" or "<pad>")',
      );
    this.padTokenId = pad;
    this.decodeImage = options.decodeImage ?? decodeImageBrowser;
  }

  /** Images and/or text -> tensors. A single image or string makes a batch of one. */
  async process(call: Blip2Call): Promise<Blip2Inputs> {
    checkOptionNames(call, BLIP2_CALL_NAMES, 'Blip2Processor.process input');
    const { images, text } = call ?? {};
    const out: Blip2Inputs = {};
    if (images !== undefined) {
      const list = Array.isArray(images) ? images : [images];
      const decoded = await Promise.all(list.map((img, i) => this.decodeImage(img, `image ${i}`)));
      out.pixelValues = this.imageProcessor.preprocess(decoded);
    }
    if (text !== undefined) {
      const texts = typeof text === 'string' ? [text] : text;
      if (!Array.isArray(texts))
        throw new ProcessorError(
          'E_TEXT',
          `text must be a string or an array of strings, got ${describe(text)}`,
        );
      const { inputIds, attentionMask } = this.encodeText(texts);
      out.inputIds = inputIds;
      out.attentionMask = attentionMask;
    }
    if (out.pixelValues && out.inputIds && out.pixelValues.dims[0] !== out.inputIds.dims[0]) {
      throw new ProcessorError(
        'E_BATCH',
        `${out.pixelValues.dims[0]} images but ${out.inputIds.dims[0]} texts; give one text per image`,
      );
    }
    if (!out.pixelValues && !out.inputIds)
      throw new ProcessorError('E_BATCH', 'Blip2Processor: give images, text or both');
    return out;
  }

  /**
   * `input_ids` / `attention_mask` for prompts, padded to the longest on `paddingSide` (default
   * the processor's). `maxTextTokens` keeps each prompt's first that many text ids (special tokens
   * included), as transformers' `truncation=True, max_length=N` on the right; the image tokens
   * come on top, as LAVIS concatenates the query embeddings after tokenizing.
   */
  encodeText(
    texts: readonly string[],
    paddingSide: 'left' | 'right' = this.paddingSide,
    maxTextTokens: number | null = null,
  ): { inputIds: Tensor<'int64'>; attentionMask: Tensor<'int64'> } {
    if (texts.length === 0) throw new ProcessorError('E_TEXT', 'text batch is empty');
    if (paddingSide !== 'left' && paddingSide !== 'right') {
      throw new ProcessorError(
        'E_CONFIG',
        `paddingSide must be 'left' or 'right', got ${describe(paddingSide)}`,
      );
    }
    if (maxTextTokens !== null && !(Number.isInteger(maxTextTokens) && maxTextTokens >= 1)) {
      throw new ProcessorError(
        'E_CONFIG',
        `maxTextTokens must be an integer >= 1 or null, got ${describe(maxTextTokens)}`,
      );
    }
    const rows = this.tokenizer
      .encodeBatch(texts)
      .map((e) => (maxTextTokens === null ? e.ids : e.ids.slice(0, maxTextTokens)));
    const longest = rows.reduce((m, r) => Math.max(m, r.length), 0);
    const prefix =
      this.imageTokenId === null ? [] : new Array<number>(this.numQueryTokens).fill(this.imageTokenId);
    const width = prefix.length + longest;
    const ids: number[] = [];
    const mask: number[] = [];
    for (const row of rows) {
      const pad = new Array<number>(longest - row.length).fill(this.padTokenId);
      const zeros = new Array<number>(pad.length).fill(0);
      const ones = new Array<number>(row.length).fill(1);
      const imageOnes = new Array<number>(prefix.length).fill(1);
      const left = paddingSide === 'left';
      for (const part of left ? [prefix, pad, row] : [prefix, row, pad]) pushAll(ids, part);
      for (const part of left ? [imageOnes, zeros, ones] : [imageOnes, ones, zeros]) pushAll(mask, part);
    }
    return { inputIds: int64([rows.length, width], ids), attentionMask: int64([rows.length, width], mask) };
  }

  decode(ids: readonly (number | bigint)[], options: DecodeOptions = { skipSpecialTokens: true }): string {
    return this.tokenizer.decode(ids, options);
  }

  batchDecode(
    batch: readonly (readonly (number | bigint)[])[] | Tensor<'int64'>,
    options: DecodeOptions = { skipSpecialTokens: true },
  ): string[] {
    if ('dims' in batch) {
      const [b, t] = batch.dims;
      return Array.from({ length: b }, (_, i) =>
        this.tokenizer.decode(Array.from(batch.data.subarray(i * t, (i + 1) * t)), options),
      );
    }
    return this.tokenizer.batchDecode(batch, options);
  }
}

type Json = Record<string, unknown>;

/**
 * Processor settings from the parsed model config (@blip2/configs' `parseBlip2Config`;
 * undefined for a folder without config.json) and the preprocessor JSON: `num_query_tokens`
 * from the processor config (5.x) or the preprocessor config / model config (4.x),
 * `image_token_index` from the model config (absent before transformers 4.47 -> null), and
 * the padding side of the language-model module (`paddingSide`; by default that of the
 * family registered for `text_config.model_type`).
 */
export function processorSettingsFromConfigs(
  config: Blip2Config | undefined,
  preprocessorConfig: unknown,
  paddingSide?: 'left' | 'right',
): { numQueryTokens: number; imageTokenId: number | null; paddingSide: 'left' | 'right' } {
  const p = (preprocessorConfig ?? {}) as Json;
  const n = p.num_query_tokens ?? config?.numQueryTokens;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw new ProcessorError(
      'E_CONFIG',
      `num_query_tokens missing or invalid (processor config / config.json): ${describe(n)}`,
    );
  }
  const side =
    paddingSide ??
    (config ? textConfigFamily(config.textConfig.modelType)?.paddingSide : undefined) ??
    // no config.json: the tokenizer's own default, as the reference's processor has
    'left';
  return { numQueryTokens: n, imageTokenId: config?.imageTokenIndex ?? null, paddingSide: side };
}
