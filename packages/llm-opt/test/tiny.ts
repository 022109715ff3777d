// The tiny-blip2-opt fixture: checkpoint, parsed config, reference tensors and records.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { type OPTConfig, parseBlip2Config } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import { openWeights, type WeightIndex } from '@blip2/safetensors';
import { FileByteReader, openWeightsFromDir } from '@blip2/safetensors/node';
import { float32, int64, type Tensor } from '@blip2/tensor';
import { buildOpt, OptAdapter, type OptGraphs } from '../src/index.js';

export interface GenerateRecord {
  name: string;
  kwargs: Record<string, number | boolean>;
  new: number[][];
  sequences_scores?: number[];
  input_ids?: number[][];
  attention_mask?: number[][];
}

export interface ReferenceJson {
  image_token_id: number;
  num_query_tokens: number;
  cases: { key: string; input_ids: number[] }[];
  generate: GenerateRecord[];
}

export interface Tiny {
  config: OPTConfig;
  imageTokenId: number;
  weights: WeightIndex;
  reference: WeightIndex;
  json: ReferenceJson;
  /** the graphs built once over `weights`, which `adapter` runs */
  graphs: OptGraphs;
  adapter: OptAdapter;
  /** releases the sessions and closes the files */
  close(): Promise<void>;
  /** reference tensor `name` as float32 with the given dims */
  ref(name: string, dims?: readonly number[]): Promise<Tensor<'float32'>>;
}

export async function openTiny(): Promise<Tiny> {
  const dir = fixtures.tinyOpt;
  const blip2 = parseBlip2Config(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  if (blip2.textConfig.modelType !== 'opt') throw new Error('tiny-blip2-opt is not an OPT checkpoint');
  const config = blip2.textConfig as OPTConfig;
  const weights = await openWeightsFromDir(dir);
  // reference.safetensors is a plain safetensors file: open it as if it were a single-file checkpoint
  const reference = await openWeights(
    (name) => FileByteReader.open(join(dir, name === 'model.safetensors' ? 'reference.safetensors' : name)),
    {
      checkpoint: join(dir, 'reference.safetensors'),
    },
  );
  const json = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as ReferenceJson;
  const graphs = buildOpt(config, weights);
  const adapter = await OptAdapter.load(config, graphs, createNodeBackend());
  return {
    config,
    imageTokenId: blip2.imageTokenIndex ?? json.image_token_id,
    weights,
    reference,
    json,
    graphs,
    adapter,
    async close() {
      await adapter.release();
      await weights.close();
      await reference.close();
    },
    async ref(name, dims) {
      const data = await reference.readFloat32(name);
      return float32(dims ?? reference.get(name).shape, data);
    },
  };
}

export function ids(rows: readonly (readonly number[])[]): Tensor<'int64'> {
  return int64([rows.length, rows[0].length], rows.flat());
}

export function ones(b: number, t: number): Tensor<'int64'> {
  return int64([b, t], new Array(b * t).fill(1));
}
