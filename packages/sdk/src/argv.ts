/**
 * `@blip2/sdk/argv`: the long-command-line guard of the `blip2` bin for other bins that
 * create onnxruntime-node sessions (`vqa-eval`), without loading the SDK or onnxruntime.
 * Call it first; when it returns undefined a child with a short command line runs instead.
 */
export {
  ARGV_FILE_ENV,
  argvOrReexec,
  MAX_INLINE_ARGV_BYTES,
  MAX_TEXT_FILE_BYTES,
  readTextArgument,
} from './cli/argv.js';
