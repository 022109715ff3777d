import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Blip2Config, parseBlip2Config, type T5Config } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import { type Tensor, tensor } from '@blip2/tensor';

/** The tiny fixture's config, its T5 text config, and reference.json. */
export function tinyT5() {
  const dir = fixtures.tinyT5;
  const blip2: Blip2Config = parseBlip2Config(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
  return { dir, blip2, config: blip2.textConfig as T5Config, reference };
}

export interface GenerateRecord {
  name: string;
  kwargs: Record<string, unknown>;
  new: number[][];
  sequences_scores?: number[];
  input_ids?: number[][];
  attention_mask?: number[][];
}

export interface Reference {
  image_token_id: number;
  num_query_tokens: number;
  cases: { key: string; input_ids: number[]; decoder_input_ids: number[] }[];
  generate: GenerateRecord[];
}

/** reference.safetensors' float32 tensors, by name (a plain reader: the fixture is one small file). */
export function readReference(dir: string): (name: string) => Tensor<'float32'> {
  const bytes = readFileSync(join(dir, 'reference.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  return (name) => {
    const info = header[name];
    if (info?.dtype !== 'F32') throw new Error(`reference.safetensors has no F32 tensor '${name}'`);
    const [s, e] = info.data_offsets;
    const copy = bytes.subarray(8 + n + s, 8 + n + e).slice();
    return tensor('float32', info.shape, new Float32Array(copy.buffer, copy.byteOffset, (e - s) / 4));
  };
}
