/**
 * Node loaders: read a checkpoint folder's JSON files and parse them. Errors name
 * the full path of the file at fault.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Blip2Config, parseBlip2Config } from './blip2.js';
import { ConfigError, type JsonObject, parseJsonObject } from './fields.js';
import { type ImageProcessorConfig, parseImageProcessorConfig } from './processor.js';

async function readJson(path: string): Promise<JsonObject | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError('E_CONFIG_FILE', path, `cannot read (${(e as Error).message})`);
  }
  return parseJsonObject(text, path);
}

function missing(dir: string, names: string[]): ConfigError {
  return new ConfigError(
    'E_CONFIG_FILE',
    join(dir, names[0]),
    `not found (looked for ${names.join(', ')} in ${dir})`,
  );
}

/** `<dir>/config.json`. */
export async function loadBlip2Config(dir: string): Promise<Blip2Config> {
  const path = join(dir, 'config.json');
  const json = await readJson(path);
  if (json === undefined) throw missing(dir, ['config.json']);
  return parseBlip2Config(json, path);
}

/** `preprocessor_config.json` (4.x) or else `processor_config.json` (5.x). */
export async function loadImageProcessorConfig(dir: string): Promise<ImageProcessorConfig> {
  const names = ['preprocessor_config.json', 'processor_config.json'];
  for (const name of names) {
    const path = join(dir, name);
    const json = await readJson(path);
    if (json !== undefined) return parseImageProcessorConfig(json, path);
  }
  throw missing(dir, names);
}
