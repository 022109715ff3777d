/** Reading a fixture folder's files, with errors that name the file at fault. */
import { readJsonFile } from '@blip2/configs/node';
import { openWeights, SafetensorsError, SINGLE_FILE, type WeightIndex } from '@blip2/safetensors';
import { FileByteReader } from '@blip2/safetensors/node';
import { sdkJsonFail } from '../errors.js';

export async function readJson<T>(path: string): Promise<T> {
  return (await readJsonFile(path, { fail: sdkJsonFail })) as T;
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
