/**
 * The bench's model folders: a real-size BLIP-2 layout from the fixtures'
 * manifests.json (config + every weight's shape) with random weights, written once
 * and reused, or a shipped fixture model as it is (the small mode).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensorsFile } from '@blip2/safetensors/node';
import { SdkError } from '../errors.js';

/** What `writeRandomCheckpoint` leaves beside the weights once they are complete: a half-written folder has none. */
const DONE = 'bench-checkpoint.json';

export interface Manifest {
  readonly config: Record<string, unknown>;
  readonly weights: Record<string, number[]>;
}

export interface CheckpointFolder {
  readonly dir: string;
  /** bytes of model.safetensors */
  readonly bytes: number;
  /** written by this run (false: reused) */
  readonly written: boolean;
  readonly seconds: number;
}

/** Published BLIP-2 checkpoints store float32 or float16 (`--stored` picks). */
export type StoredDType = 'F32' | 'F16';

/**
 * Random weights of the manifest's shapes, streamed to `dir/model.safetensors` (no
 * file-sized buffer), plus config.json, the processor files of the family's fixture
 * tokenizer and a 224-px preprocessor: a folder `fromPretrained` opens like a
 * downloaded checkpoint. Values are uniform with standard deviation 0.02 (OPT's
 * `init_std`); norm gains are 1, so activations stay in range over many layers.
 * An existing complete folder of the same variant and dtype is reused.
 */
export async function writeRandomCheckpoint(
  dir: string,
  variant: string,
  manifest: Manifest,
  stored: StoredDType,
  tokenizerDir: string,
  onProgress: (message: string) => void,
): Promise<CheckpointFolder> {
  const done = join(dir, DONE);
  const file = join(dir, 'model.safetensors');
  if (existsSync(done)) {
    const previous = JSON.parse(readFileSync(done, 'utf8')) as { variant: string; stored: string };
    if (previous.variant !== variant || previous.stored !== stored) {
      throw new SdkError(
        'E_OPTION',
        `${dir} holds random weights of ${previous.variant} (${previous.stored}), not of ${variant} (${stored}): give another --weights-dir`,
      );
    }
    return { dir, bytes: statSync(file).size, written: false, seconds: 0 };
  }
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    // a shared folder may hold someone's export: never write random weights over it
    throw new SdkError(
      'E_BENCH',
      `${dir} is not empty and holds no ${DONE}: not a folder of blip2 bench's random weights (bench a checkpoint with --model)`,
    );
  }
  mkdirSync(dir, { recursive: true });
  const start = performance.now();
  const config = manifest.config;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const vision = config.vision_config as { image_size: number };
  writeFileSync(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({
      do_convert_rgb: true,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711],
      image_processor_type: 'BlipImageProcessor',
      processor_class: 'Blip2Processor',
      resample: 3,
      rescale_factor: 1 / 255,
      size: { height: vision.image_size, width: vision.image_size },
      num_query_tokens: config.num_query_tokens,
    }),
  );
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    const from = [join(tokenizerDir, name), join(tokenizerDir, 'hf', name)].find(existsSync);
    if (from) writeFileSync(join(dir, name), readFileSync(from));
  }
  const shapes = Object.entries(manifest.weights);
  const total = shapes.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
  let s = 0x9e3779b9;
  let filled = 0;
  let reported = 0;
  const halfWidth = 0.02 * Math.sqrt(12); // uniform on [-w/2, w/2] has std w / sqrt(12)
  const bytes = await writeSafetensorsFile(
    file,
    shapes.map(([name, shape]) => {
      const isGain = /(norm|LayerNorm)[^.]*\.weight$/.test(name);
      return {
        name,
        dtype: stored,
        shape,
        fill(values: Float32Array) {
          if (isGain) values.fill(1);
          else {
            for (let i = 0; i < values.length; i++) {
              s ^= s << 13;
              s ^= s >>> 17;
              s ^= s << 5;
              values[i] = ((s >>> 0) / 4294967296 - 0.5) * halfWidth;
            }
          }
          filled += values.length;
          if (filled - reported > total / 20) {
            reported = filled;
            onProgress(`writing random weights: ${Math.round((100 * filled) / total)}%`);
          }
        },
      };
    }),
  );
  writeFileSync(done, JSON.stringify({ variant, stored, bytes }));
  return { dir, bytes, written: true, seconds: (performance.now() - start) / 1000 };
}
