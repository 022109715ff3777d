import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Blip2Config, parseBlip2Config, type T5Config } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import { readSafetensorsFile } from '@blip2/safetensors/node';
import { asFloat32, type Tensor } from '@blip2/tensor';

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

/** reference.safetensors' tensors (all float32), by name: read once, through @blip2/safetensors. */
export async function readReference(dir: string): Promise<(name: string) => Tensor<'float32'>> {
  const path = join(dir, 'reference.safetensors');
  const tensors = await readSafetensorsFile(path);
  return (name) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${path} has no tensor '${name}'`);
    return asFloat32(t);
  };
}
