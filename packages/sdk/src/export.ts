/**
 * Writing quantized weights (Node): `writeWeightsFolder` streams a plan's tensors into
 * safetensors shards plus `quantization.json`, one tensor in memory at a time;
 * `exportModel` (`blip2 export`) adds the checkpoint's config, tokenizer and
 * preprocessor files, so the folder loads from any source like a checkpoint; the Node
 * platform's quantize-at-load writes the same folder into the cache.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseBlip2Config } from '@blip2/configs';
import { isQ4BlockSize, Q4_BLOCK_SIZES, type Q4BlockSize, QUANTIZATION_FILE } from '@blip2/onnx';
import { dtypeBytes, INDEX_FILE, SINGLE_FILE, type WeightIndex } from '@blip2/safetensors';
import { openWeightsFromDir, writeSafetensorsFile } from '@blip2/safetensors/node';
import { type DTypeOption, planQuantization, type QuantizationPlan, resolveDTypes } from './core/dtype.js';
import { requireModule } from './core/families.js';
import { weightRoles } from './core/load.js';
import { checkSourceOptions, SOURCE_OPTION_NAMES } from './core/option-names.js';
import type { SourceOptions } from './core/platform.js';
import { SdkError } from './errors.js';
import { folderFiles } from './node-platform.js';
import { defaultCacheDir, resolveModel } from './sources/resolve.js';

/** Shards stay under 1 GiB: a browser holds each fetched file as one ArrayBuffer. */
export const SHARD_BYTES = 1 << 30;

/** Writes `plan` into `dir` (which must exist): safetensors shards, their index when several, quantization.json. */
export async function writeWeightsFolder(
  plan: QuantizationPlan,
  dir: string,
  shardBytes = SHARD_BYTES,
): Promise<{ files: string[]; bytes: number }> {
  const shards: (typeof plan.tensors)[number][][] = [[]];
  let size = 0;
  for (const t of plan.tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * dtypeBytes(t.dtype);
    if (size > 0 && size + bytes > shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += bytes;
  }
  const names =
    shards.length === 1
      ? [SINGLE_FILE]
      : shards.map(
          (_, i) =>
            `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`,
        );
  let bytes = 0;
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards.length; i++) {
    bytes += await writeSafetensorsFile(join(dir, names[i]), shards[i]);
    for (const t of shards[i]) weightMap[t.name] = names[i];
  }
  if (shards.length > 1)
    await writeFile(
      join(dir, INDEX_FILE),
      JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }, null, 1),
    );
  await writeFile(join(dir, QUANTIZATION_FILE), `${JSON.stringify(plan.manifest, null, 1)}\n`);
  return {
    files: shards.length > 1 ? [...names, INDEX_FILE, QUANTIZATION_FILE] : [...names, QUANTIZATION_FILE],
    bytes,
  };
}

/**
 * The Node platform's quantize-at-load: the plan written once under the cache
 * (`<cacheDir>/quantized/<key>`, the key hashing the checkpoint's files and the
 * manifest: dtypes and every weight's packing), then mapped like any checkpoint. A half-written folder never counts: it is
 * written beside and renamed into place.
 */
export async function quantizeIntoCache(
  plan: QuantizationPlan,
  weights: WeightIndex,
  options: SourceOptions,
): Promise<WeightIndex> {
  const stamp = await Promise.all(
    weights.files.map(async (f) => `${f.uri}:${f.size}:${(await stat(f.uri)).mtimeMs}`),
  );
  const key = createHash('sha256')
    // the whole manifest, not just the dtypes: a packing that changes (q4's block size did)
    // gets a folder of its own instead of an older copy packed another way
    .update(JSON.stringify({ files: stamp, manifest: plan.manifest }))
    .digest('hex')
    .slice(0, 20);
  const root = join(options.cacheDir ?? defaultCacheDir(), 'quantized');
  const dir = join(root, key);
  if (!(await exists(join(dir, QUANTIZATION_FILE)))) {
    const partial = `${dir}.partial-${process.pid}`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    await writeWeightsFolder(plan, partial);
    await rm(dir, { recursive: true, force: true });
    await rename(partial, dir);
  }
  return openWeightsFromDir(dir);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The small files of a checkpoint an export carries over (all but the weights). */
const CARRIED = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'preprocessor_config.json',
  'processor_config.json',
];

export interface ExportOptions extends SourceOptions {
  readonly dtype: DTypeOption;
  /** max bytes per safetensors shard (default 1 GiB) */
  readonly shardBytes?: number;
  /**
   * q4's block along K (default 32: every provider; 128 runs faster on onnxruntime's CPU
   * kernels, Node's and wasm's, but onnxruntime-web's WebGPU gets it wrong, so a backend
   * that cannot run it refuses the folder). Widths that are not a multiple take 32.
   */
  readonly q4Block?: Q4BlockSize;
}

const EXPORT_OPTION_NAMES: readonly string[] = [
  ...SOURCE_OPTION_NAMES,
  ...Object.keys({ dtype: true, shardBytes: true, q4Block: true } satisfies Record<
    Exclude<keyof ExportOptions, keyof SourceOptions>,
    true
  >),
];

export interface ExportResult {
  readonly dir: string;
  readonly files: readonly string[];
  /** bytes of tensor data written */
  readonly bytes: number;
  /** bytes of tensor data the source's weight files hold */
  readonly sourceBytes: number;
  readonly dropped: readonly string[];
}

/**
 * `blip2 export`: the checkpoint at `source` (folder, URL, hub id) written to `out` in
 * `options.dtype`. Refuses an `out` that is not empty or that is (or is inside) the
 * source folder, and a source that is itself an export (quantizing packed weights
 * again would lose precision twice: export the original).
 */
export async function exportModel(
  source: string,
  out: string,
  options: ExportOptions,
): Promise<ExportResult> {
  checkSourceOptions(options, EXPORT_OPTION_NAMES, 'exportModel options');
  const dtypes = resolveDTypes(options.dtype);
  const q4Block = options.q4Block ?? 32;
  if (!isQ4BlockSize(q4Block))
    throw new SdkError('E_OPTION', `export: q4Block ${q4Block} is not one of ${Q4_BLOCK_SIZES.join(', ')}`);
  const outDir = resolve(out);
  if (await exists(outDir)) {
    if (!(await stat(outDir)).isDirectory())
      throw new SdkError('E_OPTION', `export: ${outDir} is a file; --out must be a new or empty folder`);
    if ((await readdir(outDir)).length > 0)
      throw new SdkError('E_OPTION', `export: ${outDir} is not empty; --out must be a new or empty folder`);
  }
  const resolved = await resolveModel(source, options);
  const realOut = (await exists(outDir)) ? await realpath(outDir) : outDir;
  const rel = relative(resolved.dir, realOut);
  if (rel === '' || !(rel.startsWith('..') || isAbsolute(rel))) {
    throw new SdkError(
      'E_OPTION',
      `export: --out ${outDir} is the source folder or inside it; write elsewhere`,
    );
  }
  const files = folderFiles(resolved.dir);
  if ((await files.readJson(QUANTIZATION_FILE, true)) !== undefined) {
    throw new SdkError(
      'E_OPTION',
      `export: ${resolved.dir} is already an export (it has ${QUANTIZATION_FILE}); export the original checkpoint`,
    );
  }
  const rawConfig = await files.readJson('config.json');
  const config = parseBlip2Config(rawConfig, `${resolved.dir}/config.json`);
  const module = requireModule(config.textConfig.modelType, `${resolved.dir}/config.json`);
  const weights = await files.openWeights();
  try {
    const roles = weightRoles(config, module, weights);
    const plan = planQuantization(weights, roles, dtypes, source, q4Block);
    await mkdir(outDir, { recursive: true });
    const written = await writeWeightsFolder(plan, outDir, options.shardBytes);
    const carried: string[] = [];
    for (const name of CARRIED) {
      if (await exists(join(resolved.dir, name))) {
        await copyFile(join(resolved.dir, name), join(outDir, name));
        carried.push(name);
      }
    }
    return {
      dir: outDir,
      files: [...carried, ...written.files],
      bytes: written.bytes,
      sourceBytes: weights.files.reduce((a, f) => a + f.size, 0),
      dropped: plan.dropped,
    };
  } finally {
    await weights.close();
  }
}
