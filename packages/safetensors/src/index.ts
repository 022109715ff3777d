/**
 * @blip2/safetensors: safetensors headers, sharded checkpoints and byte-range
 * readers. Browser-safe; the file-system reader lives in `@blip2/safetensors/node`.
 */
export { DTYPES, isSafetensorsDType, type SafetensorsDType, safetensorsDTypeOf } from './dtypes.js';
export { MissingWeightError, SafetensorsError, type SafetensorsErrorCode } from './errors.js';
export {
  DEFAULT_MAX_HEADER_BYTES,
  type HeaderOptions,
  headerLengthOf,
  parseHeader,
  parseHeaderJson,
  readHeader,
  type SafetensorsHeader,
  type TensorInfo,
} from './header.js';
export { HttpByteReader, type HttpByteReaderOptions } from './http.js';
export { type ByteReader, MemoryByteReader } from './reader.js';
export { checkShardName, INDEX_FILE, parseShardIndex, type ShardIndex, SINGLE_FILE } from './shard-index.js';
export {
  dtypeBytes,
  type Opener,
  type OpenWeightsOptions,
  openWeights,
  type WeightFile,
  type WeightIndex,
} from './weights.js';
export { encodeHeader, serializeSafetensors, type TensorBytes, type TensorEntry } from './writer.js';
