/**
 * blip2-ts for browsers: BLIP-2 captioning and visual question answering on
 * onnxruntime-web (WebGPU, or wasm), from a checkpoint folder served over HTTP or a
 * Hugging Face hub id.
 *
 *   import { Blip2ForConditionalGeneration, configureWebRuntime } from '@blip2/sdk/browser';
 *   configureWebRuntime({ wasmPaths: '/ort/' });
 *   const model = await Blip2ForConditionalGeneration.fromPretrained('/models/blip2-opt/');
 *   await model.caption(imageElement);
 *   await model.ask('/photo.jpg', 'what is the man holding?');
 */
import { browserPlatform } from './browser-platform.js';
import { setPlatform } from './core/platform.js';

setPlatform(browserPlatform);

export { doctor as webDoctor, type WebDoctorReport } from '@blip2/backend-web';
export {
  browserPlatform,
  configureWebRuntime,
  createBackend,
  createBackendBrowser,
  resolveBrowserSource,
  urlFiles,
  type WebRuntimeOptions,
} from './browser-platform.js';
export * from './common.js';
