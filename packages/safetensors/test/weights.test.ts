import { mkdir, mkdtemp, readFile, realpath, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import {
  MemoryByteReader,
  MissingWeightError,
  openWeights,
  SafetensorsError,
  serializeSafetensors,
  type TensorBytes,
} from '../src/index.js';
import {
  FileByteReader,
  openWeightsFromDir,
  openWeightsFromFile,
  readSafetensorsFile,
  writeSafetensorsFile,
} from '../src/node.js';
import { bytesOf, expectSameBytes, plainParse } from './helpers.js';

const tinyOptFile = join(fixtures.tinyOpt, 'model.safetensors');

/** Writes `tensors` as shards of a checkpoint with an index. */
async function writeSharded(
  dir: string,
  shards: Record<string, Record<string, TensorBytes>>,
  weightMap?: Record<string, string>,
): Promise<void> {
  const map: Record<string, string> = {};
  for (const [file, tensors] of Object.entries(shards)) {
    await writeFile(join(dir, file), serializeSafetensors(tensors, { format: 'pt' }));
    for (const name of Object.keys(tensors)) map[name] = file;
  }
  const index = { metadata: { total_size: 0 }, weight_map: weightMap ?? map };
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
}

describe('tiny-blip2-opt, single file', () => {
  it('reads every tensor exactly as an independent parse does', async () => {
    const weights = await openWeightsFromDir(fixtures.tinyOpt);
    const plain = plainParse(tinyOptFile);
    expect(weights.tensors.size).toBe(plain.size);
    expect(weights.files).toEqual([
      { name: 'model.safetensors', uri: await realpath(tinyOptFile), size: 343596 },
    ]);
    for (const [name, p] of plain) {
      const t = await weights.read(name);
      expect(t.dtype).toBe('float32');
      expect(t.dims).toEqual(p.shape);
      expectSameBytes(t.data, p.bytes, name);
      expectSameBytes(await weights.readFloat32(name), t.data, name);
    }
    expect(weights.get('query_tokens').shape).toEqual([1, 5, 32]);
    expect(weights.has('language_model.lm_head.weight')).toBe(false);
    await weights.close();
  });

  it('a missing weight names the weight and the checkpoint', async () => {
    const weights = await openWeightsFromDir(fixtures.tinyOpt);
    let err: unknown;
    try {
      weights.get('language_model.lm_head.weight');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MissingWeightError);
    expect((err as MissingWeightError).code).toBe('E_MISSING_WEIGHT');
    expect((err as Error).message).toBe(
      `${fixtures.tinyOpt}: no weight named "language_model.lm_head.weight" in this checkpoint`,
    );
    await expect(weights.read('nope')).rejects.toBeInstanceOf(MissingWeightError);
    await weights.close();
  });

  it('resolves symlinks (as in a hub cache) to the real file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blip2-st-link-'));
    await symlink(tinyOptFile, join(dir, 'model.safetensors'));
    const weights = await openWeightsFromDir(dir);
    expect(weights.files[0].uri).toBe(await realpath(tinyOptFile));
    expect(weights.files[0].name).toBe('model.safetensors');
    await weights.close();
  });

  it('opens one file of any name (reference.safetensors, a hub blob) without looking for an index', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blip2-st-file-'));
    const path = join(dir, 'abc123');
    const bytes = serializeSafetensors({
      w: { dtype: 'F32', shape: [2], data: new Uint8Array(Float32Array.from([3, 4]).buffer) },
    });
    await writeFile(path, bytes);
    // an index beside it is not the file's: it must be ignored
    await writeFile(join(dir, 'model.safetensors.index.json'), '{"weight_map": {"x": "elsewhere"}}');
    const weights = await openWeightsFromFile(path);
    expect(weights.files).toEqual([
      { name: 'model.safetensors', uri: await realpath(path), size: bytes.length },
    ]);
    expect(Array.from(await weights.readFloat32('w'))).toEqual([3, 4]);
    expect(() => weights.get('v')).toThrow(path);
    await weights.close();
    const reference = await openWeightsFromFile(join(fixtures.tinyOpt, 'reference.safetensors'));
    expect(reference.get('case0/pixel_values').shape).toEqual([3, 32, 32]);
    await reference.close();
    await expect(openWeightsFromFile(join(dir, 'nope'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('reads a small file whole: every tensor, by name, as stored', async () => {
    const plain = plainParse(tinyOptFile);
    const all = await readSafetensorsFile(tinyOptFile);
    expect([...all.keys()]).toEqual([...plain.keys()]);
    for (const [name, p] of plain) {
      const t = all.get(name)!;
      expect([t.dtype, t.dims]).toEqual(['float32', p.shape]);
      expectSameBytes(t.data, p.bytes, name);
    }
  });

  it('a folder with no weights is E_NOT_FOUND', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blip2-st-empty-'));
    await expect(openWeightsFromDir(dir)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});

describe('sharded checkpoints', () => {
  async function splitInThree(): Promise<string> {
    const plain = plainParse(tinyOptFile);
    const names = [...plain.keys()];
    const shards: Record<string, Record<string, TensorBytes>> = {};
    names.forEach((name, i) => {
      const file = `model-0000${(i % 3) + 1}-of-00003.safetensors`;
      const p = plain.get(name)!;
      shards[file] ??= {};
      shards[file][name] = { dtype: p.dtype as TensorBytes['dtype'], shape: p.shape, data: p.bytes };
    });
    const dir = await mkdtemp(join(tmpdir(), 'blip2-st-shards-'));
    await writeSharded(dir, shards);
    return dir;
  }

  it('three shards with an index read identically to the single file', async () => {
    const dir = await splitInThree();
    const sharded = await openWeightsFromDir(dir);
    const single = await openWeightsFromDir(fixtures.tinyOpt);
    expect(sharded.files.map((f) => f.name)).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    expect(sharded.metadata).toEqual({ total_size: 0 });
    expect([...sharded.tensors.keys()].sort()).toEqual([...single.tensors.keys()].sort());
    for (const name of single.tensors.keys()) {
      const info = sharded.get(name);
      expect(sharded.fileOf(info).uri).toBe(join(await realpath(dir), info.file));
      const [a, b] = [await sharded.read(name), await single.read(name)];
      expect([a.dtype, a.dims]).toEqual([b.dtype, b.dims]);
      expectSameBytes(a.data, b.data, name);
    }
    await Promise.all([sharded.close(), single.close()]);
  });

  it('offsets are absolute: the raw file bytes at info.offset are the tensor', async () => {
    const dir = await splitInThree();
    const sharded = await openWeightsFromDir(dir);
    const info = sharded.get('language_model.model.decoder.embed_tokens.weight');
    const reader = await FileByteReader.open(sharded.fileOf(info).uri);
    const raw = await reader.read(info.offset, info.byteLength);
    expectSameBytes(raw, plainParse(tinyOptFile).get(info.name)!.bytes, info.name);
    await Promise.all([reader.close(), sharded.close()]);
  });

  const one = { dtype: 'F32', shape: [1], data: new Uint8Array(4) } as const;

  it('refuses shard paths that leave the folder', async () => {
    for (const bad of [
      '../model.safetensors',
      '/etc/passwd',
      'sub/model.safetensors',
      'a\\b.safetensors',
      'C:x',
      '..',
    ]) {
      const dir = await mkdtemp(join(tmpdir(), 'blip2-st-bad-'));
      await writeSharded(dir, { 'model-1.safetensors': { w: one } }, { w: bad });
      await expect(openWeightsFromDir(dir)).rejects.toMatchObject({ code: 'E_SHARD_PATH' });
    }
  });

  it('an indexed tensor its shard lacks, and a tensor in two shards', async () => {
    const missing = await mkdtemp(join(tmpdir(), 'blip2-st-missing-'));
    await writeSharded(missing, { 'a.safetensors': { w: one } }, { w: 'a.safetensors', v: 'a.safetensors' });
    await expect(openWeightsFromDir(missing)).rejects.toMatchObject({
      code: 'E_SHARD_MISSING_TENSOR',
      message: `${join(await realpath(missing), 'model.safetensors.index.json')}: the index puts "v" in a.safetensors, which does not hold it`,
    });

    const twice = await mkdtemp(join(tmpdir(), 'blip2-st-twice-'));
    await writeSharded(twice, { 'a.safetensors': { w: one }, 'b.safetensors': { w: one } });
    await writeFile(
      join(twice, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { w: 'a.safetensors', x: 'b.safetensors' } }),
    );
    await expect(openWeightsFromDir(twice)).rejects.toMatchObject({ code: 'E_DUPLICATE_TENSOR' });
  });

  it('a malformed index, and a shard that does not exist', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blip2-st-index-'));
    for (const text of ['{"weight_map": ', '[]', '{"weight_map": {"w": 3}}', '{"weight_map": {}}']) {
      await writeFile(join(dir, 'model.safetensors.index.json'), text);
      await expect(openWeightsFromDir(dir)).rejects.toMatchObject({ code: 'E_INDEX' });
    }
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { w: 'gone.safetensors' } }),
    );
    await expect(openWeightsFromDir(dir)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});

describe('dtypes', () => {
  it('F32/F16/BF16/I64/I32/U8/BOOL become the matching tensors, unaligned data included', async () => {
    const values = [1.5, -2.25, 3.0e-3];
    const f16 = Uint16Array.from(values, float32ToFloat16);
    const bf16 = Uint16Array.from(values, float32ToBfloat16);
    const bytes = serializeSafetensors({
      // 3 bytes first, so every later tensor starts at an odd offset
      u8: { dtype: 'U8', shape: [3], data: new Uint8Array([0, 128, 255]) },
      f32: { dtype: 'F32', shape: [3], data: bytesOf(Float32Array.from(values)) },
      f16: { dtype: 'F16', shape: [3], data: bytesOf(f16) },
      bf16: { dtype: 'BF16', shape: [1, 3], data: bytesOf(bf16) },
      i64: { dtype: 'I64', shape: [2], data: bytesOf(BigInt64Array.from([-1n, 2n ** 40n])) },
      i32: { dtype: 'I32', shape: [2], data: bytesOf(Int32Array.from([-7, 7])) },
      bool: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
    });
    const w = await openWeights((name) => {
      if (name !== 'model.safetensors') throw new SafetensorsError('E_NOT_FOUND', name, 'absent');
      return new MemoryByteReader(`mem://${name}`, bytes);
    });
    expect(w.files).toEqual([
      { name: 'model.safetensors', uri: 'mem://model.safetensors', size: bytes.length },
    ]);
    const read = async (n: string) => await w.read(n);
    expect(await read('u8')).toEqual({ dtype: 'uint8', dims: [3], data: new Uint8Array([0, 128, 255]) });
    expect(await read('f32')).toEqual({ dtype: 'float32', dims: [3], data: Float32Array.from(values) });
    expect(await read('f16')).toEqual({ dtype: 'float16', dims: [3], data: f16 });
    expect(await read('bf16')).toEqual({ dtype: 'bfloat16', dims: [1, 3], data: bf16 });
    expect(await read('i64')).toEqual({
      dtype: 'int64',
      dims: [2],
      data: BigInt64Array.from([-1n, 2n ** 40n]),
    });
    expect(await read('i32')).toEqual({ dtype: 'int32', dims: [2], data: Int32Array.from([-7, 7]) });
    expect(await read('bool')).toEqual({ dtype: 'bool', dims: [2], data: new Uint8Array([1, 0]) });
    expect(await w.readFloat32('f16')).toEqual(Float32Array.from(f16, float16ToFloat32));
    expect(await w.readFloat32('bf16')).toEqual(Float32Array.from(bf16, bfloat16ToFloat32));
    await expect(w.readFloat32('i64')).rejects.toMatchObject({ code: 'E_DTYPE' });
  });
});

describe('FileByteReader', () => {
  it('refuses reads outside the file and reports missing files', async () => {
    const r = await FileByteReader.open(tinyOptFile);
    await expect(r.read(343590, 10)).rejects.toMatchObject({ code: 'E_IO' });
    await r.close();
    const dir = await mkdtemp(join(tmpdir(), 'blip2-st-io-'));
    await expect(FileByteReader.open(join(dir, 'x.safetensors'))).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    });
    await mkdir(join(dir, 'adir'));
    await expect(openWeightsFromDir(join(dir, 'adir', 'model.safetensors'))).rejects.toBeInstanceOf(
      SafetensorsError,
    );
  });
});

describe('writeSafetensorsFile', () => {
  it('streams F32 and F16 tensors in chunks into a file that reads back exactly as serializeSafetensors writes it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blip2-stream-'));
    const a = Float32Array.from({ length: 2 * 7 }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: 5 }, (_, i) => i / 3);
    const path = join(dir, 'm.safetensors');
    // chunks of 3 elements: every tensor spans several fill calls, one ends mid-chunk
    const bytes = await writeSafetensorsFile(
      path,
      [
        {
          name: 'a',
          dtype: 'F32',
          shape: [2, 7],
          fill: (v, start) => v.set(a.subarray(start, start + v.length)),
        },
        {
          name: 'b',
          dtype: 'F16',
          shape: [5],
          fill: (v, start) => v.set(b.subarray(start, start + v.length)),
        },
      ],
      3,
    );
    expect(bytes).toBe(4 * 14 + 2 * 5);
    const expected = serializeSafetensors({
      a: { dtype: 'F32', shape: [2, 7], data: new Uint8Array(a.buffer) },
      b: {
        dtype: 'F16',
        shape: [5],
        data: new Uint8Array(Uint16Array.from(b, (x) => float32ToFloat16(x)).buffer),
      },
    });
    expect(Buffer.from(await readFile(path)).equals(Buffer.from(expected))).toBe(true);
    const index = await openWeightsFromFile(path);
    expect(Array.from(await index.readFloat32('a'))).toEqual(Array.from(a));
    await index.close();
  });
});
