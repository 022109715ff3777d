/** Reading a fixture folder's files, with errors that name the file at fault. */
import { readFile } from 'node:fs/promises';
import { openWeights, SafetensorsError, SINGLE_FILE, type WeightIndex } from '@blip2/safetensors';
import { FileByteReader } from '@blip2/safetensors/node';
import { SdkError } from '../errors.js';

export async function readJson<T>(path: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new SdkError('E_MISSING_FILE', `${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new SdkError('E_INPUT', `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * A plain .safetensors file (reference tensors, not a checkpoint) opened with the
 * checkpoint reader: it is what the reader would call `model.safetensors`.
 */
export async function openSafetensorsFile(path: string): Promise<WeightIndex> {
  return openWeights(
    (name) => {
      if (name !== SINGLE_FILE)
        throw new SafetensorsError('E_NOT_FOUND', name, 'not part of a reference file');
      return FileByteReader.open(path);
    },
    { checkpoint: path },
  );
}
