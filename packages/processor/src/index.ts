export {
  type Blip2Call,
  type Blip2Inputs,
  Blip2Processor,
  type Blip2ProcessorOptions,
  type ImageDecoder,
  processorSettingsFromConfigs,
} from './blip2-processor.js';
export { decodeBmp, isBmp } from './bmp.js';
export { type BrowserImageInput, decodeImageBrowser, sniff } from './decode-browser.js';
export { ProcessorError, type ProcessorErrorCode } from './errors.js';
export { isRawImage, type RawImage, type RgbImage, toRgb } from './image.js';
export {
  CLIP_MEAN,
  CLIP_STD,
  DEFAULT_IMAGE_PROCESSOR_OPTIONS,
  ImageProcessor,
  type ImageProcessorOptions,
  imageOptionsFromConfig,
} from './image-processor.js';
export { MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS } from './limits.js';
export { type Coefficients, precomputeCoefficients, resizeBicubic } from './resize.js';
export type { Decoder } from './tokenizer/decoders.js';
export type { Model, ModelToken } from './tokenizer/models.js';
export { NormalizedString } from './tokenizer/normalized.js';
export type { Normalizer } from './tokenizer/normalizers.js';
export type { PostProcessor } from './tokenizer/post-processors.js';
export type { PreTokenizer } from './tokenizer/pre-tokenizers.js';
export { Precompiled } from './tokenizer/precompiled.js';
export {
  type AddedToken,
  type DecodeOptions,
  type EncodeOptions,
  type Encoding,
  Tokenizer,
} from './tokenizer/tokenizer.js';
