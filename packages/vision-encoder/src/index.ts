export { VisionEncoderError, type VisionEncoderErrorCode } from './errors.js';
export {
  buildVisionModel,
  numPatches,
  VISION_MODEL_IO,
  type VisionModelOptions,
  visionModelIO,
} from './vision.js';
