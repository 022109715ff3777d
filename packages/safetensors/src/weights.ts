/**
 * A checkpoint's weights: every tensor's location (file, absolute byte offset,
 * length) from the headers alone, and reads of single tensors on demand. Graph
 * builders use the locations; the bytes are read only for CPU-side needs and tests.
 */
import { asFloat32, type Tensor, tensor } from '@blip2/tensor';
import { DTYPES } from './dtypes.js';
import { MissingWeightError, SafetensorsError } from './errors.js';
import { type HeaderOptions, readHeader, type TensorInfo } from './header.js';
import type { ByteReader } from './reader.js';
import { INDEX_FILE, parseShardIndex, SINGLE_FILE } from './shard-index.js';

export interface WeightFile {
  /** bare file name within the checkpoint */
  readonly name: string;
  /** absolute path (Node, symlinks resolved) or URL */
  readonly uri: string;
  readonly size: number;
}

export interface WeightIndex {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly files: readonly WeightFile[];
  /** the index's or the single file's `__metadata__` */
  readonly metadata: Readonly<Record<string, unknown>>;
  has(name: string): boolean;
  /** throws MissingWeightError (E_MISSING_WEIGHT) naming the weight and the checkpoint */
  get(name: string): TensorInfo;
  /** the tensor's data may share memory with the reader (e.g. an in-memory file): copy before mutating */
  read(name: string): Promise<Tensor>;
  /** any float dtype, widened */
  readFloat32(name: string): Promise<Float32Array>;
  fileOf(info: TensorInfo): WeightFile;
  close(): Promise<void>;
}

export type Opener = (fileName: string) => ByteReader | Promise<ByteReader>;

export interface OpenWeightsOptions extends HeaderOptions {
  /** how the checkpoint is named in errors (default: the first file's uri, minus the file name) */
  readonly checkpoint?: string;
}

async function tryOpen(opener: Opener, name: string): Promise<ByteReader | undefined> {
  try {
    const reader = await opener(name);
    await reader.size();
    return reader;
  } catch (e) {
    if (e instanceof SafetensorsError && e.code === 'E_NOT_FOUND') return undefined;
    throw e;
  }
}

/** Bytes -> a typed array over an aligned copy when the bytes are not aligned. */
function view<T>(
  bytes: Uint8Array,
  elementBytes: number,
  Ctor: new (b: ArrayBuffer, o: number, n: number) => T,
): T {
  const n = bytes.length / elementBytes;
  if (bytes.byteOffset % elementBytes === 0)
    return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  const copy = bytes.slice();
  return new Ctor(copy.buffer, 0, n);
}

// safetensors data is little-endian, as are the typed arrays of every platform JS runs on
function toTensor(info: TensorInfo, bytes: Uint8Array): Tensor {
  const dims = info.shape;
  switch (info.dtype) {
    case 'F32':
      return tensor('float32', dims, view(bytes, 4, Float32Array));
    case 'F16':
      return tensor('float16', dims, view(bytes, 2, Uint16Array));
    case 'BF16':
      return tensor('bfloat16', dims, view(bytes, 2, Uint16Array));
    case 'I64':
      return tensor('int64', dims, view(bytes, 8, BigInt64Array));
    case 'I32':
      return tensor('int32', dims, view(bytes, 4, Int32Array));
    case 'U8':
      return tensor('uint8', dims, bytes);
    case 'BOOL':
      return tensor('bool', dims, bytes);
  }
}

/**
 * Opens a checkpoint: `model.safetensors.index.json` and its shards when the
 * opener finds the index, else `model.safetensors`. `opener` maps a bare file
 * name to a reader and reports an absent file as SafetensorsError E_NOT_FOUND.
 */
export async function openWeights(opener: Opener, options: OpenWeightsOptions = {}): Promise<WeightIndex> {
  const readers = new Map<string, ByteReader>();
  const files: WeightFile[] = [];
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, unknown> = {};

  const closeAll = async () => {
    await Promise.all([...readers.values()].map((r) => r.close?.()));
  };

  try {
    const indexReader = await tryOpen(opener, INDEX_FILE);
    if (indexReader) {
      const text = new TextDecoder().decode(await indexReader.read(0, await indexReader.size()));
      await indexReader.close?.();
      const index = parseShardIndex(text, indexReader.uri);
      metadata = { ...index.metadata };
      for (const shard of index.shards) {
        const reader = await opener(shard);
        readers.set(shard, reader);
        const header = await readHeader(reader, shard, options);
        files.push({ name: shard, uri: reader.uri, size: header.fileSize });
        for (const info of header.tensors) {
          const other = tensors.get(info.name);
          if (other) {
            throw new SafetensorsError(
              'E_DUPLICATE_TENSOR',
              indexReader.uri,
              `tensor ${JSON.stringify(info.name)} is in both ${other.file} and ${shard}`,
            );
          }
          tensors.set(info.name, info);
        }
      }
      for (const [name, shard] of index.weightMap) {
        const info = tensors.get(name);
        if (!info || info.file !== shard) {
          throw new SafetensorsError(
            'E_SHARD_MISSING_TENSOR',
            indexReader.uri,
            `the index puts ${JSON.stringify(name)} in ${shard}, which does not hold it`,
          );
        }
      }
    } else {
      const reader = await opener(SINGLE_FILE);
      readers.set(SINGLE_FILE, reader);
      const header = await readHeader(reader, SINGLE_FILE, options);
      files.push({ name: SINGLE_FILE, uri: reader.uri, size: header.fileSize });
      metadata = { ...header.metadata };
      for (const info of header.tensors) tensors.set(info.name, info);
    }
  } catch (e) {
    await closeAll();
    throw e;
  }

  const checkpoint =
    options.checkpoint ??
    (files[0] ? files[0].uri.slice(0, files[0].uri.length - files[0].name.length) : '?');
  const byName = new Map(files.map((f) => [f.name, f]));

  const get = (name: string): TensorInfo => {
    const info = tensors.get(name);
    if (!info) throw new MissingWeightError(name, checkpoint);
    return info;
  };
  const read = async (name: string): Promise<Tensor> => {
    const info = get(name);
    const bytes = await readers.get(info.file)!.read(info.offset, info.byteLength);
    return toTensor(info, bytes);
  };

  return {
    tensors,
    files,
    metadata,
    has: (name) => tensors.has(name),
    get,
    read,
    async readFloat32(name) {
      const info = get(name);
      if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
        throw new SafetensorsError(
          'E_DTYPE',
          info.file,
          `tensor ${JSON.stringify(name)} is ${info.dtype}, not a float`,
        );
      }
      return asFloat32(await read(name)).data;
    },
    fileOf(info) {
      const f = byName.get(info.file);
      if (!f) throw new MissingWeightError(info.name, checkpoint);
      return f;
    },
    close: closeAll,
  };
}

/** Bytes per element of a safetensors dtype. */
export function dtypeBytes(dtype: TensorInfo['dtype']): number {
  return DTYPES[dtype].bytes;
}
