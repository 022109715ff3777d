import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import {
  MemoryByteReader,
  parseHeader,
  readHeader,
  SafetensorsError,
  type SafetensorsErrorCode,
  serializeSafetensors,
} from '../src/index.js';
import { expectSameBytes, plainParse, rawFile } from './helpers.js';

const checkpointFiles = [
  join(fixtures.tinyOpt, 'model.safetensors'),
  join(fixtures.tinyT5, 'model.safetensors'),
  join(fixtures.shapesOpt, 'model.safetensors'),
  join(fixtures.shapesT5, 'model.safetensors'),
  join(fixtures.tinyOpt, 'reference.safetensors'),
  join(fixtures.images, 'pixel_values.safetensors'),
];

function codeOf(fn: () => unknown): SafetensorsErrorCode {
  try {
    fn();
  } catch (e) {
    if (e instanceof SafetensorsError) return e.code;
    throw e;
  }
  throw new Error('expected a SafetensorsError');
}

describe('fixture headers', () => {
  for (const path of checkpointFiles) {
    it(`${path.split('/').slice(-2).join('/')} parses, every tensor where the format says`, () => {
      const bytes = new Uint8Array(readFileSync(path));
      const header = parseHeader(bytes, 'model.safetensors');
      const plain = plainParse(path);
      expect(header.tensors.length).toBe(plain.size);
      expect(header.tensors.length).toBeGreaterThan(0);
      for (const t of header.tensors) {
        const p = plain.get(t.name)!;
        expect(t.dtype).toBe(p.dtype);
        expect(t.shape).toEqual(p.shape);
        expect(t.file).toBe('model.safetensors');
        expectSameBytes(bytes.subarray(t.offset, t.offset + t.byteLength), p.bytes, t.name);
      }
    });
  }

  it('keeps __metadata__ as a string map', () => {
    const header = parseHeader(new Uint8Array(readFileSync(checkpointFiles[0])), 'model.safetensors');
    expect(header.metadata).toEqual({ format: 'pt' });
  });

  it('readHeader through a reader agrees with parseHeader on the whole file', async () => {
    const bytes = new Uint8Array(readFileSync(checkpointFiles[1]));
    const viaReader = await readHeader(new MemoryByteReader('mem://t5', bytes), 'model.safetensors');
    expect(viaReader).toEqual(parseHeader(bytes, 'model.safetensors'));
  });
});

describe('malformed files: each has its typed error', () => {
  const valid = serializeSafetensors({
    a: { dtype: 'F32', shape: [2, 2], data: new Uint8Array(16) },
    b: { dtype: 'I64', shape: [1], data: new Uint8Array(8) },
  });

  it('a file shorter than 8 bytes', async () => {
    expect(codeOf(() => parseHeader(valid.subarray(0, 5), 'x.safetensors'))).toBe('E_TRUNCATED');
    await expect(
      readHeader(new MemoryByteReader('mem://x', valid.subarray(0, 5)), 'x'),
    ).rejects.toMatchObject({
      code: 'E_TRUNCATED',
      message: 'mem://x: file of 5 bytes is shorter than the 8-byte header length',
    });
  });

  it('a header length past the end of the file', async () => {
    const bad = valid.slice();
    new DataView(bad.buffer).setBigUint64(0, BigInt(bad.length), true);
    expect(codeOf(() => parseHeader(bad, 'x'))).toBe('E_HEADER_LENGTH');
    await expect(readHeader(new MemoryByteReader('mem://x', bad), 'x')).rejects.toMatchObject({
      code: 'E_HEADER_LENGTH',
    });
    // a file cut inside its data section: the last tensor runs out of the file
    expect(codeOf(() => parseHeader(valid.subarray(0, valid.length - 1), 'x'))).toBe('E_OUT_OF_RANGE');
  });

  it('a header length over the cap', () => {
    expect(codeOf(() => parseHeader(valid, 'x', valid.length, { maxHeaderBytes: 16 }))).toBe(
      'E_HEADER_TOO_LARGE',
    );
    const huge = valid.slice();
    new DataView(huge.buffer).setBigUint64(0, 2n ** 60n, true);
    expect(codeOf(() => parseHeader(huge, 'x'))).toBe('E_HEADER_TOO_LARGE');
  });

  it('a header that is not UTF-8 JSON of an object', () => {
    expect(codeOf(() => parseHeader(rawFile(null, 0, '{"a": {"dtype": "F32",'), 'x'))).toBe('E_HEADER_JSON');
    const notUtf8 = rawFile(null, 0, '{"a":1}       ');
    notUtf8[9] = 0xff;
    expect(codeOf(() => parseHeader(notUtf8, 'x'))).toBe('E_HEADER_JSON');
    expect(codeOf(() => parseHeader(rawFile([1, 2], 0), 'x'))).toBe('E_HEADER_JSON');
    expect(codeOf(() => parseHeader(rawFile({ a: 3 }, 0), 'x'))).toBe('E_HEADER_JSON');
  });

  it('an unknown dtype, named in the message', () => {
    const bytes = rawFile({ w: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, 8);
    expect(() => parseHeader(bytes, 'model.safetensors')).toThrow(
      'model.safetensors: tensor "w": dtype "F64" is not supported (supported: F32, F16, BF16, I64, I32, U8, BOOL)',
    );
    expect(codeOf(() => parseHeader(bytes, 'x'))).toBe('E_DTYPE');
  });

  it('a shape that is not a list of non-negative integers', () => {
    for (const shape of [[-1], [1.5], '4', null, [2, '2']]) {
      expect(
        codeOf(() => parseHeader(rawFile({ w: { dtype: 'U8', shape, data_offsets: [0, 0] } }, 0), 'x')),
      ).toBe('E_SHAPE');
    }
  });

  it('data_offsets that are not [begin <= end]', () => {
    for (const offs of [[4, 0], [0], [0, 1, 2], [-1, 3], [0, 'x'], undefined]) {
      expect(
        codeOf(() => parseHeader(rawFile({ w: { dtype: 'U8', shape: [4], data_offsets: offs } }, 8), 'x')),
      ).toBe('E_OFFSETS');
    }
  });

  it('a byte length that disagrees with shape and dtype', () => {
    const bytes = rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 12);
    expect(() => parseHeader(bytes, 'x')).toThrow('data_offsets [0, 8] hold 8 bytes, but F32 [3] needs 12');
    expect(codeOf(() => parseHeader(bytes, 'x'))).toBe('E_BYTE_LENGTH');
  });

  it('offsets outside the data section', () => {
    const bytes = rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 8);
    expect(codeOf(() => parseHeader(bytes, 'x'))).toBe('E_OUT_OF_RANGE');
  });

  it('a tensor name twice in the header (JSON.parse would keep the last)', () => {
    const w = '{"dtype":"U8","shape":[4],"data_offsets":[0,4]}';
    const bytes = rawFile(null, 4, `{"w":${w},"__metadata__":{"w":"x"},"w":${w}}`);
    expect(() => parseHeader(bytes, 'x')).toThrow('x: tensor "w" appears twice in the header');
    expect(codeOf(() => parseHeader(bytes, 'x'))).toBe('E_DUPLICATE_TENSOR');
    // a name repeated inside __metadata__ or escaped differently is no duplicate tensor
    const fine = rawFile(
      null,
      4,
      `{"w":${w},"__metadata__":{"a":"1","b":"\\"w\\""},"w\\u0031":{"dtype":"U8","shape":[0],"data_offsets":[4,4]}}`,
    );
    expect(parseHeader(fine, 'x').tensors.map((t) => t.name)).toEqual(['w', 'w1']);
  });

  it('a gap between tensors, or bytes after the last, is refused', () => {
    const gap = rawFile(
      {
        a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
        b: { dtype: 'U8', shape: [4], data_offsets: [8, 12] },
      },
      12,
    );
    expect(() => parseHeader(gap, 'x')).toThrow(
      'bytes 4..8 of the data section belong to no tensor (before "b")',
    );
    expect(codeOf(() => parseHeader(gap, 'x'))).toBe('E_DATA_GAP');
    const trailing = rawFile({ a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] } }, 6);
    expect(() => parseHeader(trailing, 'x')).toThrow(
      'the tensors end at byte 4 of the data section, but it has 6 bytes',
    );
  });

  it('overlapping tensors (but empty tensors sharing an offset are fine)', () => {
    const bytes = rawFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      12,
    );
    expect(() => parseHeader(bytes, 'x')).toThrow('x: tensors "a" and "b" overlap in the data section');
    const empty = rawFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        e: { dtype: 'F32', shape: [0, 3], data_offsets: [4, 4] },
      },
      8,
    );
    expect(parseHeader(empty, 'x').tensors.map((t) => t.name)).toEqual(['a', 'e']);
  });

  it('a __metadata__ that is not a string map', () => {
    expect(codeOf(() => parseHeader(rawFile({ __metadata__: { format: 1 } }, 0), 'x'))).toBe('E_METADATA');
    expect(codeOf(() => parseHeader(rawFile({ __metadata__: 'pt' }, 0), 'x'))).toBe('E_METADATA');
  });
});

describe('serializeSafetensors', () => {
  it('pads the header with spaces to 8 bytes and round-trips', () => {
    const data = new Uint8Array([1, 2, 3]);
    const bytes = serializeSafetensors({ u: { dtype: 'U8', shape: [3], data } }, { format: 'pt' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    expect(bytes[8 + n - 1]).toBe(0x20);
    const h = parseHeader(bytes, 'x');
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(bytes.subarray(h.tensors[0].offset, h.tensors[0].offset + 3)).toEqual(data);
  });

  it('refuses data that disagrees with the shape', () => {
    expect(() => serializeSafetensors({ u: { dtype: 'F32', shape: [3], data: new Uint8Array(3) } })).toThrow(
      SafetensorsError,
    );
  });
});
