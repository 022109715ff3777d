/**
 * @blip2/llm-opt: OPT, the decoder-only language model of blip2-opt-*, built as
 * ONNX graphs over the checkpoint's weights, and its generation adapter.
 */

export { OptAdapter, type OptCache, type OptSessions } from './adapter.js';
export { OptError, type OptErrorCode } from './errors.js';
export { optModule } from './module.js';
export {
  buildOpt,
  OPT_IO,
  OPT_POSITION_OFFSET,
  type OptBuildOptions,
  type OptGraphs,
  optGraphIO,
} from './opt.js';
export { OPT_VQA_PRESETS } from './presets.js';
