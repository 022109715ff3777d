/**
 * Node file access: positioned reads on a file handle, and a checkpoint folder
 * opened through them. Paths are resolved with `realpath` because Hugging Face
 * hub caches hold symlinks and onnxruntime refuses external data through them.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { float32ToFloat16, type Tensor } from '@blip2/tensor';
import { DTYPES, type SafetensorsDType } from './dtypes.js';
import { SafetensorsError } from './errors.js';
import type { ByteReader } from './reader.js';
import { SINGLE_FILE } from './shard-index.js';
import { type OpenWeightsOptions, openWeights, type WeightIndex } from './weights.js';
import { encodeHeader } from './writer.js';

export class FileByteReader implements ByteReader {
  private constructor(
    readonly uri: string,
    private readonly handle: FileHandle,
    private readonly bytes: number,
  ) {}

  /** Opens `path` (E_NOT_FOUND when it does not exist); `uri` is its real path. */
  static async open(path: string): Promise<FileByteReader> {
    try {
      const real = await realpath(path);
      // without blocking: a FIFO with no writer would hang the first read forever
      const handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK);
      const stat = await handle.stat();
      if (!stat.isFile()) {
        await handle.close();
        throw new SafetensorsError('E_IO', path, 'not a regular file: a FIFO, a device or a folder');
      }
      return new FileByteReader(real, handle, stat.size);
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new SafetensorsError('E_NOT_FOUND', path, 'no such file');
      throw new SafetensorsError('E_IO', path, `cannot open (${(e as Error).message})`, { cause: e });
    }
  }

  async size(): Promise<number> {
    return this.bytes;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (
      !(
        Number.isSafeInteger(offset) &&
        Number.isSafeInteger(length) &&
        offset >= 0 &&
        length >= 0 &&
        offset + length <= this.bytes
      )
    ) {
      throw new SafetensorsError(
        'E_IO',
        this.uri,
        `read of ${length} bytes at ${offset} is outside the ${this.bytes}-byte file`,
      );
    }
    const out = new Uint8Array(length);
    let done = 0;
    // a single read may return fewer bytes than asked (large ranges)
    while (done < length) {
      const { bytesRead } = await this.handle.read(out, done, length - done, offset + done);
      if (bytesRead === 0)
        throw new SafetensorsError('E_IO', this.uri, `file ended at ${offset + done} while reading`);
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** A checkpoint folder: sharded (index + shards) or a single model.safetensors. */
export async function openWeightsFromDir(
  dir: string,
  options: OpenWeightsOptions = {},
): Promise<WeightIndex> {
  return openWeights((name) => FileByteReader.open(join(dir, name)), { checkpoint: dir, ...options });
}

/**
 * One .safetensors file of any name (a hub blob, a fixture's reference.safetensors)
 * opened as a single-file checkpoint: no index is looked for, and errors name the file.
 */
export async function openWeightsFromFile(
  path: string,
  options: OpenWeightsOptions = {},
): Promise<WeightIndex> {
  return openWeights(
    (name) => {
      if (name !== SINGLE_FILE)
        throw new SafetensorsError('E_NOT_FOUND', name, `only ${basename(path)} is opened`);
      return FileByteReader.open(path);
    },
    { checkpoint: path, ...options },
  );
}

/**
 * Every tensor of one small .safetensors file, read whole, by name in header order
 * (fixture tensors, test data). For checkpoints, open them and read what is needed.
 */
export async function readSafetensorsFile(path: string): Promise<Map<string, Tensor>> {
  const file = await openWeightsFromFile(path);
  try {
    const tensors = new Map<string, Tensor>();
    for (const name of file.tensors.keys()) tensors.set(name, await file.read(name));
    return tensors;
  } finally {
    await file.close();
  }
}

/** A tensor written by `writeSafetensorsFile`: floats produced a slice at a time, or its bytes when their turn comes. */
export type StreamedTensor = StreamedFloats | StreamedBytes;

export interface StreamedFloats {
  readonly name: string;
  readonly dtype: 'F32' | 'F16';
  readonly shape: readonly number[];
  /** Fills `values` with the elements starting at flat index `start` (written as float32, or rounded to F16). */
  fill(values: Float32Array, start: number): void;
}

export interface StreamedBytes {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** The tensor's little-endian bytes, asked for when the writer reaches it (one tensor in memory at a time). */
  bytes(): Promise<Uint8Array> | Uint8Array;
}

/**
 * Writes a .safetensors file chunk by chunk, so a checkpoint of many gigabytes
 * (random weights in real shapes, for benchmarks) never sits in memory. Returns
 * the bytes of tensor data written.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: readonly StreamedTensor[],
  chunkElements = 1 << 22,
): Promise<number> {
  const { head, dataBytes } = encodeHeader(tensors);
  const values = new Float32Array(chunkElements);
  const half = new Uint16Array(chunkElements);
  const file = await open(path, 'w');
  try {
    await writeAll(file, head);
    for (const t of tensors) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      if ('bytes' in t) {
        const data = await t.bytes();
        const expected = count * DTYPES[t.dtype].bytes;
        if (data.length !== expected) {
          throw new SafetensorsError(
            'E_WRITE',
            t.name,
            `${data.length} bytes given, ${t.dtype} [${t.shape.join(', ')}] needs ${expected}`,
          );
        }
        await writeAll(file, data);
        continue;
      }
      for (let start = 0; start < count; start += chunkElements) {
        const n = Math.min(chunkElements, count - start);
        const slice = values.subarray(0, n);
        t.fill(slice, start);
        if (t.dtype === 'F32') await writeAll(file, new Uint8Array(slice.buffer, 0, 4 * n));
        else {
          for (let i = 0; i < n; i++) half[i] = float32ToFloat16(slice[i]);
          await writeAll(file, new Uint8Array(half.buffer, 0, 2 * n));
        }
      }
    }
  } finally {
    await file.close();
  }
  return dataBytes;
}

/** `FileHandle.write` may write part of a buffer: loop until all of it is out. */
async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await file.write(bytes, done, bytes.length - done);
    done += bytesWritten;
  }
}
