/**
 * blip2-ts for Node.js: BLIP-2 captioning and visual question answering on
 * onnxruntime-node, from a checkpoint folder, a URL or a Hugging Face hub id.
 *
 *   const model = await Blip2ForConditionalGeneration.fromPretrained('Salesforce/blip2-opt-2.7b');
 *   await model.caption('photo.jpg');
 *   await model.ask('photo.jpg', 'what is the man holding?');
 */
import { setPlatform } from './core/platform.js';
import { nodePlatform } from './node-platform.js';

setPlatform(nodePlatform);

export * from './common.js';
export {
  type ExportOptions,
  type ExportResult,
  exportModel,
  quantizeIntoCache,
  writeWeightsFolder,
} from './export.js';
export {
  BACKEND_DEVICES,
  createBackend,
  createBackendNode,
  folderFiles,
  nodePlatform,
} from './node-platform.js';
export { type ParityOptions, type ParityReport, runParity } from './parity/index.js';
export { download, probe, type RemoteFile } from './sources/download.js';
export {
  defaultCacheDir,
  type ModelSourceOptions,
  type ResolvedModel,
  resolveModel,
} from './sources/resolve.js';
