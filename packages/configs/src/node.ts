/**
 * Node loaders: read a checkpoint folder's JSON files and parse them. Errors name
 * the full path of the file at fault.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { type Blip2Config, parseBlip2Config } from './blip2.js';
import { ConfigError, configJsonFail, type JsonObject, jsonObject } from './fields.js';
import { type JsonFail, parseJson } from './json.js';
import { type ImageProcessorConfig, parseImageProcessorConfig } from './processor.js';

export interface ReadJsonOptions {
  /** an absent file gives `undefined` instead of `fail('missing', ...)` */
  readonly optional?: boolean;
  /** the package's typed error (default: ConfigError E_CONFIG_FILE / E_CONFIG_JSON) */
  readonly fail?: JsonFail;
}

/**
 * Opened without blocking (a FIFO with no writer would otherwise hang the read forever)
 * and read only when it is a regular file: a FIFO, a device such as /dev/zero (endless)
 * or a folder is refused as unreadable, naming the file.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;
function notRegular(): Error {
  return Object.assign(new Error('not a regular file: a FIFO, a device or a folder'), { code: 'ENOTREG' });
}

async function readRegularFile(path: string): Promise<string> {
  const handle = await open(path, OPEN_FLAGS);
  try {
    if (!(await handle.stat()).isFile()) throw notRegular();
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

function readRegularFileSync(path: string): string {
  const fd = openSync(path, OPEN_FLAGS);
  try {
    if (!fstatSync(fd).isFile()) throw notRegular();
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** The parsed JSON of the file at `path`, or `undefined` when it is absent and `optional`. */
export async function readJsonFile(path: string, options: ReadJsonOptions = {}): Promise<unknown> {
  let text: string;
  try {
    text = await readRegularFile(path);
  } catch (e) {
    return unread(path, e, options);
  }
  return parseJson(text, path, options.fail ?? configJsonFail);
}

/** `readJsonFile` for synchronous callers. */
export function readJsonFileSync(path: string, options: ReadJsonOptions = {}): unknown {
  let text: string;
  try {
    text = readRegularFileSync(path);
  } catch (e) {
    return unread(path, e, options);
  }
  return parseJson(text, path, options.fail ?? configJsonFail);
}

function unread(
  path: string,
  e: unknown,
  { optional = false, fail = configJsonFail }: ReadJsonOptions,
): undefined {
  const absent = (e as NodeJS.ErrnoException).code === 'ENOENT';
  if (absent && optional) return undefined;
  throw absent
    ? fail('missing', path, 'no such file', e)
    : fail('unreadable', path, `cannot read (${(e as Error).message})`, e);
}

async function readJson(path: string): Promise<JsonObject | undefined> {
  const json = await readJsonFile(path, { optional: true });
  return json === undefined ? undefined : jsonObject(json, path);
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
