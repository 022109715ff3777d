/**
 * BLIP-2's image preprocessing as LAVIS and transformers 4.x's `BlipImageProcessor` do
 * it: convert to RGB, PIL bicubic resize to a square (aspect ratio not kept), multiply
 * by 1/255, normalize with the CLIP mean/std, channels first, float32.
 */
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, parseImageProcessorConfig } from '@blip2/configs';
import { type Tensor, tensor } from '@blip2/tensor';
import { checkOptionNames, ProcessorError } from './errors.js';
import { checkRgb, type RgbImage } from './image.js';
import { resizeBicubic } from './resize.js';

/** OpenAI CLIP's statistics, which BLIP-2 uses (`OPENAI_CLIP_MEAN`/`STD` in transformers): @blip2/configs' defaults. */
export const CLIP_MEAN: readonly [number, number, number] = OPENAI_CLIP_MEAN;
export const CLIP_STD: readonly [number, number, number] = OPENAI_CLIP_STD;

export interface ImageProcessorOptions {
  /** output size; BLIP-2 checkpoints use 224 (364 for some), the fixtures 32 and 64 */
  readonly size: { readonly height: number; readonly width: number };
  readonly imageMean: readonly number[];
  readonly imageStd: readonly number[];
  readonly rescaleFactor: number;
  readonly doResize: boolean;
  readonly doRescale: boolean;
  readonly doNormalize: boolean;
  /**
   * Kept for config parity: decoders here always hand over RGB (gray expanded, alpha
   * dropped), which is what `do_convert_rgb: true` means; `false` is rejected because
   * the model needs three channels anyway.
   */
  readonly doConvertRgb: boolean;
}

export const DEFAULT_IMAGE_PROCESSOR_OPTIONS: ImageProcessorOptions = {
  size: { height: 224, width: 224 },
  imageMean: CLIP_MEAN,
  imageStd: CLIP_STD,
  rescaleFactor: 1 / 255,
  doResize: true,
  doRescale: true,
  doNormalize: true,
  doConvertRgb: true,
};

const isPositive = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
const isTriple = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
const isSizeInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/**
 * Options from a checkpoint's preprocessing config, as @blip2/configs parses it
 * (transformers 4.x `preprocessor_config.json` or 5.x `processor_config.json`),
 * refusing what this processor does not implement.
 */
export function imageOptionsFromConfig(
  json: unknown,
  where = 'preprocessor_config.json',
): ImageProcessorOptions {
  const c = parseImageProcessorConfig(json, where);
  if (c.resample !== 3) {
    // 3 is PIL.Image.BICUBIC; BLIP-2 checkpoints all use it and it is the only filter implemented
    throw new ProcessorError(
      'E_CONFIG',
      `${where}: "resample" ${c.resample} is not supported (only 3 = bicubic)`,
    );
  }
  if (!c.doConvertRgb) {
    throw new ProcessorError(
      'E_CONFIG',
      `${where}: "do_convert_rgb": false is not supported (the model needs RGB)`,
    );
  }
  const triple = (v: readonly number[]) =>
    (v.length === 1 ? [v[0], v[0], v[0]] : [v[0], v[1], v[2]]) as [number, number, number];
  return {
    size: { height: c.size.height, width: c.size.width },
    imageMean: triple(c.imageMean),
    imageStd: triple(c.imageStd),
    rescaleFactor: c.rescaleFactor,
    doResize: c.doResize,
    doRescale: c.doRescale,
    doNormalize: c.doNormalize,
    doConvertRgb: c.doConvertRgb,
  };
}

export class ImageProcessor {
  readonly options: ImageProcessorOptions;

  constructor(options: Partial<ImageProcessorOptions> = {}) {
    checkOptionNames(options, Object.keys(DEFAULT_IMAGE_PROCESSOR_OPTIONS), 'ImageProcessor options');
    const o = { ...DEFAULT_IMAGE_PROCESSOR_OPTIONS, ...options };
    if (!isSizeInt(o.size?.height) || !isSizeInt(o.size?.width)) {
      throw new ProcessorError(
        'E_CONFIG',
        `image processor: size must have positive integer height and width, got ${JSON.stringify(o.size)}`,
      );
    }
    if (!isTriple(o.imageMean) || !isTriple(o.imageStd) || o.imageStd.some((s) => s === 0)) {
      throw new ProcessorError(
        'E_CONFIG',
        `image processor: imageMean and imageStd must be three numbers (std non-zero), got ${JSON.stringify([o.imageMean, o.imageStd])}`,
      );
    }
    if (!isPositive(o.rescaleFactor))
      throw new ProcessorError(
        'E_CONFIG',
        `image processor: rescaleFactor must be positive, got ${o.rescaleFactor}`,
      );
    this.options = o;
  }

  static fromPreprocessorConfig(json: unknown): ImageProcessor {
    return new ImageProcessor(imageOptionsFromConfig(json));
  }

  /**
   * `pixel_values` [B, 3, H, W] float32 for decoded RGB images. Without `doResize`
   * every image must already have the same size.
   */
  preprocess(images: readonly RgbImage[]): Tensor<'float32'> {
    if (images.length === 0) throw new ProcessorError('E_IMAGE_INPUT', 'image processor: no images given');
    const { size, doResize } = this.options;
    const resized = images.map((img, i) => {
      const rgb = checkRgb(img, `image ${i}`);
      return doResize ? resizeBicubic(rgb, size.width, size.height) : rgb;
    });
    const { width, height } = resized[0];
    resized.forEach((img, i) => {
      if (img.width !== width || img.height !== height) {
        throw new ProcessorError(
          'E_BATCH',
          `image ${i} is ${img.width} x ${img.height} but image 0 is ${width} x ${height}; enable doResize to batch them`,
        );
      }
    });
    const plane = width * height;
    const out = new Float32Array(images.length * 3 * plane);
    resized.forEach((img, b) => {
      this.writeChannelsFirst(img, out, b * 3 * plane);
    });
    return tensor('float32', [images.length, 3, height, width], out);
  }

  /** HWC uint8 -> CHW float32, with `(x * rescale - mean) / std` computed in float64 and stored once. */
  private writeChannelsFirst(img: RgbImage, out: Float32Array, offset: number): void {
    const { doRescale, doNormalize, rescaleFactor, imageMean, imageStd } = this.options;
    const plane = img.width * img.height;
    for (let c = 0; c < 3; c++) {
      // a 256-entry table per channel: every pixel is one lookup
      const table = new Float32Array(256);
      for (let v = 0; v < 256; v++) {
        let x = doRescale ? Math.fround(v * rescaleFactor) : v;
        if (doNormalize) x = (x - imageMean[c]) / imageStd[c];
        table[v] = x;
      }
      const base = offset + c * plane;
      for (let i = 0; i < plane; i++) out[base + i] = table[img.data[i * 3 + c]];
    }
  }
}
