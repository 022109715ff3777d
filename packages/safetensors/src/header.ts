/**
 * The safetensors layout: 8 bytes of little-endian u64 header length N, then N
 * bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, ...,
 * "__metadata__": {str: str}}`, then the data section, offsets relative to its start.
 * Everything is checked before a byte of data is trusted, because graphs point
 * onnxruntime straight at these byte ranges.
 */
import { isObject } from '@blip2/tensor';
import { DTYPES, isSafetensorsDType, type SafetensorsDType } from './dtypes.js';
import { SafetensorsError } from './errors.js';
import type { ByteReader } from './reader.js';

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** bare file name of the shard within the checkpoint (e.g. 'model-00001-of-00002.safetensors') */
  readonly file: string;
  /** ABSOLUTE byte offset in that file: 8 + headerLength + data_offsets[0] */
  readonly offset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  /** N, the JSON's length in bytes */
  readonly headerLength: number;
  /** 8 + N: where the data section starts */
  readonly dataOffset: number;
  readonly fileSize: number;
  /** in header order */
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
}

export interface HeaderOptions {
  /** largest header accepted, in bytes (default 100 MB, as the Rust crate) */
  readonly maxHeaderBytes?: number;
}

export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;

/** N from the first 8 bytes, checked against the cap and the file size. */
export function headerLengthOf(
  first8: Uint8Array,
  file: string,
  fileSize: number,
  options: HeaderOptions = {},
): number {
  if (fileSize < 8 || first8.length < 8) {
    throw new SafetensorsError(
      'E_TRUNCATED',
      file,
      `file of ${fileSize} bytes is shorter than the 8-byte header length`,
    );
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  const cap = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (n > BigInt(cap)) {
    throw new SafetensorsError(
      'E_HEADER_TOO_LARGE',
      file,
      `header length ${n} exceeds the cap of ${cap} bytes`,
    );
  }
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(
      'E_HEADER_LENGTH',
      file,
      `header length ${n} runs past the end of the file (${fileSize} bytes, header starts at 8)`,
    );
  }
  return Number(n);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and checks a header. `bytes` starts at the beginning of the file and
 * holds at least the 8 + N header bytes; `fileSize` is the whole file's size
 * (default: `bytes.length`, when `bytes` is the whole file).
 */
export function parseHeader(
  bytes: Uint8Array,
  file: string,
  fileSize: number = bytes.length,
  options: HeaderOptions = {},
): SafetensorsHeader {
  const headerLength = headerLengthOf(bytes.subarray(0, 8), file, fileSize, options);
  if (bytes.length < 8 + headerLength) {
    throw new SafetensorsError(
      'E_TRUNCATED',
      file,
      `got ${bytes.length} bytes, the header needs ${8 + headerLength}`,
    );
  }
  return parseHeaderJson(bytes.subarray(8, 8 + headerLength), file, fileSize);
}

/** Checks the JSON part (the N bytes after the length) of a file of `fileSize` bytes. */
export function parseHeaderJson(
  json: Uint8Array,
  file: string,
  fileSize: number,
  /** what errors name (a path or URL); default `file` */
  source: string = file,
): SafetensorsHeader {
  const headerLength = json.length;
  const dataOffset = 8 + headerLength;
  const dataLength = fileSize - dataOffset;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new SafetensorsError(
      'E_HEADER_JSON',
      source,
      `header is not UTF-8 JSON (${(e as Error).message})`,
      {
        cause: e,
      },
    );
  }
  if (!isObject(parsed)) throw new SafetensorsError('E_HEADER_JSON', source, 'header is not a JSON object');
  // JSON.parse keeps the last of two equal keys; the Rust reader refuses such a header
  const duplicate = firstDuplicateKey(new TextDecoder().decode(json));
  if (duplicate !== undefined)
    throw new SafetensorsError(
      'E_DUPLICATE_TENSOR',
      source,
      `tensor ${JSON.stringify(duplicate)} appears twice in the header`,
    );

  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isObject(entry) || Object.values(entry).some((v) => typeof v !== 'string')) {
        throw new SafetensorsError('E_METADATA', source, '__metadata__ must be a map of strings to strings');
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const at = `tensor ${JSON.stringify(name)}`;
    if (!isObject(entry))
      throw new SafetensorsError('E_HEADER_JSON', source, `${at}: entry is not a JSON object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isSafetensorsDType(dtype)) {
      throw new SafetensorsError(
        'E_DTYPE',
        source,
        `${at}: dtype ${JSON.stringify(dtype)} is not supported (supported: ${Object.keys(DTYPES).join(', ')})`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw new SafetensorsError(
        'E_SHAPE',
        source,
        `${at}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`,
      );
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every(isCount) ||
      offsets[0] > offsets[1]
    ) {
      throw new SafetensorsError(
        'E_OFFSETS',
        source,
        `${at}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`,
      );
    }
    const [begin, end] = offsets as [number, number];
    const expected = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPES[dtype].bytes;
    if (end - begin !== expected) {
      throw new SafetensorsError(
        'E_BYTE_LENGTH',
        source,
        `${at}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} [${shape.join(', ')}] needs ${expected}`,
      );
    }
    if (end > dataLength) {
      throw new SafetensorsError(
        'E_OUT_OF_RANGE',
        source,
        `${at}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes)`,
      );
    }
    tensors.push({
      name,
      dtype,
      shape: shape as number[],
      file,
      offset: dataOffset + begin,
      byteLength: end - begin,
    });
  }

  // overlaps: sort by start; empty tensors own no bytes and cannot overlap
  const spans = tensors.filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1];
    if (spans[i].offset < prev.offset + prev.byteLength) {
      throw new SafetensorsError(
        'E_OVERLAP',
        source,
        `tensors ${JSON.stringify(prev.name)} and ${JSON.stringify(spans[i].name)} overlap in the data section`,
      );
    }
  }
  // as the Rust reader validates: the tensors tile the data section, from 0 to its end, with no
  // byte unowned (a gap could hide another payload; trailing bytes mean a file spliced or padded).
  // Empty tensors own no bytes: they may sit anywhere.
  let cursor = 0;
  for (const t of spans) {
    const begin = t.offset - dataOffset;
    if (begin !== cursor) {
      throw new SafetensorsError(
        'E_DATA_GAP',
        source,
        `bytes ${cursor}..${begin} of the data section belong to no tensor (before ${JSON.stringify(t.name)})`,
      );
    }
    cursor = begin + t.byteLength;
  }
  if (cursor !== dataLength) {
    throw new SafetensorsError(
      'E_DATA_GAP',
      source,
      `the tensors end at byte ${cursor} of the data section, but it has ${dataLength} bytes (trailing bytes)`,
    );
  }
  return { file, headerLength, dataOffset, fileSize, tensors, metadata };
}

/** The first top-level key of a JSON object text that appears twice, if any. */
function firstDuplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1 && c === '{') expectKey = true;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
  }
  return undefined;
}

/**
 * Reads and checks the header through a reader: two reads (length, then JSON).
 * `file` is the bare name recorded in each TensorInfo; errors name `reader.uri`.
 */
export async function readHeader(
  reader: ByteReader,
  file: string,
  options: HeaderOptions = {},
): Promise<SafetensorsHeader> {
  const fileSize = await reader.size();
  if (fileSize < 8) {
    throw new SafetensorsError(
      'E_TRUNCATED',
      reader.uri,
      `file of ${fileSize} bytes is shorter than the 8-byte header length`,
    );
  }
  const headerLength = headerLengthOf(await reader.read(0, 8), reader.uri, fileSize, options);
  return parseHeaderJson(await reader.read(8, headerLength), file, fileSize, reader.uri);
}
