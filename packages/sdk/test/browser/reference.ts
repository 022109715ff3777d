// The fixture tensors the browser test compares with (transformers' float32
// results), read in Node with @blip2/safetensors.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { readHeader } from '@blip2/safetensors';
import { FileByteReader } from '@blip2/safetensors/node';
import { float32, type Tensor } from '@blip2/tensor';

export interface GenerateRecord {
  readonly name: string;
  readonly kwargs: Record<string, unknown>;
  readonly new: number[][];
}

export interface ReferenceCase {
  readonly key: string;
  readonly image: string;
  readonly prompt: string;
  readonly input_ids: number[];
}

export const referenceJson = JSON.parse(readFileSync(join(fixtures.tinyOpt, 'reference.json'), 'utf8')) as {
  cases: ReferenceCase[];
  generate: GenerateRecord[];
};

/** Every F32 tensor of a safetensors file, by name. */
export async function readF32Tensors(path: string): Promise<Map<string, Tensor<'float32'>>> {
  const reader = await FileByteReader.open(path);
  try {
    const header = await readHeader(reader, path);
    const out = new Map<string, Tensor<'float32'>>();
    for (const info of header.tensors) {
      if (info.dtype !== 'F32') continue;
      // a copy: the bytes of a read may not be 4-byte aligned
      const bytes = (await reader.read(info.offset, info.byteLength)).slice();
      out.set(info.name, float32(info.shape, new Float32Array(bytes.buffer)));
    }
    return out;
  } finally {
    await reader.close();
  }
}

/** The record of `name` in reference.json's generate[]. */
export function generateRecord(name: string): GenerateRecord {
  const record = referenceJson.generate.find((g) => g.name === name);
  if (!record) throw new Error(`reference.json has no generate record ${name}`);
  return record;
}
