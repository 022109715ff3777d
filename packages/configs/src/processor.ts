/**
 * The image processor's settings (transformers' `BlipImageProcessor`), from either
 * layout a checkpoint may carry:
 * - transformers 4.x `preprocessor_config.json`: the image processor's fields at the
 *   top level (every published Salesforce checkpoint);
 * - transformers 5.x `processor_config.json`: the processor's own fields
 *   (`num_query_tokens`) with the image processor nested under `image_processor`.
 */
import { CONFIG_LIMITS, ConfigError, Fields, isObject, show } from './fields.js';

/** OpenAI CLIP's normalization, BlipImageProcessor's default. */
export const OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** PIL's resampling filters, by the integer the JSON stores. */
export const PIL_RESAMPLE = {
  0: 'nearest',
  1: 'lanczos',
  2: 'bilinear',
  3: 'bicubic',
  4: 'box',
  5: 'hamming',
} as const;
export type PilResample = keyof typeof PIL_RESAMPLE;

export interface ImageProcessorConfig {
  /** which file layout it came from */
  readonly layout: 'preprocessor_config' | 'processor_config';
  readonly imageProcessorType: string;
  readonly doResize: boolean;
  /** target size; BLIP resizes to exactly this, ignoring the aspect ratio */
  readonly size: { readonly height: number; readonly width: number };
  /** PIL filter id (3 = bicubic) */
  readonly resample: PilResample;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  /** per channel (a single value applies to all three) */
  readonly imageMean: readonly number[];
  readonly imageStd: readonly number[];
  readonly doConvertRgb: boolean;
  /** image tokens the processor inserts per image, when the file says */
  readonly numQueryTokens: number | undefined;
  readonly processorClass: string | undefined;
}

function parseSize(f: Fields): { height: number; width: number } {
  const v = f.raw('size');
  if (v === undefined) return { height: 384, width: 384 };
  // get_size_dict(size, default_to_square=True): an int means a square
  if (typeof v === 'number') {
    const s = f.size('size', 0, CONFIG_LIMITS.imageSize);
    return { height: s, width: s };
  }
  if (!isObject(v)) throw f.typeError('size', 'an integer or {"height", "width"}');
  const s = f.sub('size');
  if (!s.has('height') || !s.has('width')) {
    throw new ConfigError(
      'E_CONFIG_FIELD',
      f.file,
      `${f.path('size')} must have "height" and "width" (BLIP resizes to a fixed size), got ${show(v)}`,
      f.path('size'),
    );
  }
  // the resize target is allocated per image before the model sees it
  return {
    height: s.size('height', 0, CONFIG_LIMITS.imageSize),
    width: s.size('width', 0, CONFIG_LIMITS.imageSize),
  };
}

function parseImageProcessor(
  f: Fields,
  layout: ImageProcessorConfig['layout'],
  top: Fields,
): ImageProcessorConfig {
  const resample = f.int('resample', 3);
  if (!(resample in PIL_RESAMPLE)) {
    throw f.fieldError('resample', `(${resample}) is not a PIL filter (0..5)`);
  }
  const imageStd = f.numbers('image_std', OPENAI_CLIP_STD, [1, 3]);
  if (imageStd.some((s) => !(s > 0))) throw f.fieldError('image_std', `must be > 0, got ${show(imageStd)}`);
  return {
    layout,
    imageProcessorType: f.string('image_processor_type', 'BlipImageProcessor'),
    doResize: f.bool('do_resize', true),
    size: parseSize(f),
    resample: resample as PilResample,
    doRescale: f.bool('do_rescale', true),
    rescaleFactor: f.positive('rescale_factor', 1 / 255),
    doNormalize: f.bool('do_normalize', true),
    imageMean: f.numbers('image_mean', OPENAI_CLIP_MEAN, [1, 3]),
    imageStd,
    doConvertRgb: f.bool('do_convert_rgb', true),
    numQueryTokens: top.has('num_query_tokens')
      ? top.size('num_query_tokens', 0, CONFIG_LIMITS.queryTokens)
      : undefined,
    processorClass: top.optionalString('processor_class'),
  };
}

/**
 * Parses `preprocessor_config.json` (4.x, flat) or `processor_config.json` (5.x,
 * nested under `image_processor`); the layout is told by the content, not the name.
 */
export function parseImageProcessorConfig(
  json: unknown,
  file = 'preprocessor_config.json',
): ImageProcessorConfig {
  const top = Fields.of(json, file);
  if (top.has('image_processor'))
    return parseImageProcessor(top.sub('image_processor'), 'processor_config', top);
  return parseImageProcessor(top, 'preprocessor_config', top);
}
