/**
 * `model.safetensors.index.json`: `{"metadata": {...}, "weight_map": {tensor: shard}}`.
 * Shard names come from a file someone else wrote and end up in file-system paths
 * and URLs, so only a plain file name is accepted.
 */
import { isObject } from '@blip2/tensor';
import { SafetensorsError } from './errors.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface ShardIndex {
  /** tensor name -> shard file name */
  readonly weightMap: ReadonlyMap<string, string>;
  /** shard file names in order of first appearance */
  readonly shards: readonly string[];
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** Throws E_SHARD_PATH unless `name` is a bare, relative file name. */
export function checkShardName(name: string, file: string): void {
  const bad =
    name === '' ||
    name === '.' ||
    name.includes('..') ||
    name.includes('/') ||
    name.includes('\\') ||
    name.includes('\0') ||
    /^[A-Za-z]:/.test(name);
  if (bad) {
    throw new SafetensorsError(
      'E_SHARD_PATH',
      file,
      `shard path ${JSON.stringify(name)} is not a plain file name beside the index (absolute paths, '..', and separators are refused)`,
    );
  }
}

export function parseShardIndex(text: string, file = INDEX_FILE): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError('E_INDEX', file, `not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!isObject(json) || !isObject(json.weight_map)) {
    throw new SafetensorsError('E_INDEX', file, 'expected a JSON object with a "weight_map" object');
  }
  if (json.metadata !== undefined && json.metadata !== null && !isObject(json.metadata)) {
    throw new SafetensorsError('E_INDEX', file, '"metadata" must be a JSON object');
  }
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  for (const [name, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== 'string') {
      throw new SafetensorsError(
        'E_INDEX',
        file,
        `weight_map[${JSON.stringify(name)}] is not a file name string`,
      );
    }
    checkShardName(shard, file);
    weightMap.set(name, shard);
    if (!shards.includes(shard)) shards.push(shard);
  }
  if (shards.length === 0) throw new SafetensorsError('E_INDEX', file, 'weight_map is empty');
  return { weightMap, shards, metadata: (json.metadata as Record<string, unknown>) ?? {} };
}
