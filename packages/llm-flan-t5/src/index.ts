export { T5Adapter, type T5Cache, type T5Sessions } from './adapter.js';
export { type BucketOptions, positionBuckets, relativePositionBucket } from './buckets.js';
export { T5Error, type T5ErrorCode } from './errors.js';
export { buildT5, T5_IO, type T5BuildOptions, type T5Graphs, t5GraphIO } from './modeling.js';
export { t5Module } from './module.js';
export { T5_VQA_PRESETS } from './presets.js';
