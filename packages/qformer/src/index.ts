export { QFormerError, type QFormerErrorCode } from './errors.js';
export { buildQFormer, QFORMER_IO, type QFormerOptions, qformerIO } from './qformer.js';
