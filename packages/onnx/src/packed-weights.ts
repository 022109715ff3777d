/**
 * The metadata file of a folder whose weights were quantized (`blip2 export`, or the
 * SDK's quantize-at-load cache): which weights are packed how, and which dtype each
 * module was asked for. `withPackedWeights` puts it in front of the folder's
 * safetensors, so the graph builder sees each packed weight under its checkpoint name
 * with its logical [out, in] shape and the tensors that hold it.
 */
import { GraphBuildError, type PackedWeight, type WeightInfo, type WeightLookup } from './graph.js';
import { isModelDType, type ModelDType } from './quantize.js';

export const QUANTIZATION_FILE = 'quantization.json';
export const QUANTIZATION_FORMAT = 'blip2-ts/quantized-weights';

/** The BLIP-2 modules a dtype is chosen for, by their checkpoint prefixes' names. */
export const MODULES = ['vision', 'qformer', 'language_model'] as const;
export type ModuleName = (typeof MODULES)[number];

export interface PackedEntry {
  readonly format: PackedWeight['format'];
  /** logical [out, in] */
  readonly shape: readonly [number, number];
  readonly block_size?: number;
  readonly data: string;
  readonly scales: string;
  readonly zero_points?: string;
}

export interface QuantizationManifest {
  readonly format: typeof QUANTIZATION_FORMAT;
  readonly version: 1;
  /** the dtype each module was written in */
  readonly dtype: Readonly<Record<ModuleName, ModelDType>>;
  /** what the weights were read from (for people; never used to load) */
  readonly source?: string;
  /** the packed weights by checkpoint name; weights not listed are stored as plain tensors */
  readonly weights: Readonly<Record<string, PackedEntry>>;
}

/** Checks a parsed quantization.json; `where` names the file in errors. */
export function parseQuantizationManifest(json: unknown, where: string): QuantizationManifest {
  const fail = (what: string): never => {
    throw new GraphBuildError('E_PACKED_WEIGHT', `${where}: ${what}`);
  };
  if (typeof json !== 'object' || json === null) return fail('not a JSON object');
  const m = json as Record<string, unknown>;
  if (m.format !== QUANTIZATION_FORMAT)
    fail(`format is ${JSON.stringify(m.format)}, expected "${QUANTIZATION_FORMAT}"`);
  if (m.version !== 1) fail(`version ${JSON.stringify(m.version)} is not supported (1)`);
  const dtype = m.dtype as Record<string, unknown> | undefined;
  for (const mod of MODULES)
    if (!isModelDType(dtype?.[mod]))
      fail(`dtype.${mod} is ${JSON.stringify(dtype?.[mod])}, not one of fp32|fp16|q8|q4|q4f16`);
  if (typeof m.weights !== 'object' || m.weights === null) fail('weights is not an object');
  for (const [name, e] of Object.entries(m.weights as Record<string, unknown>)) {
    const entry = e as Partial<PackedEntry> | null;
    const ok =
      entry !== null &&
      typeof entry === 'object' &&
      (entry.format === 'q4' || entry.format === 'q4f16' || entry.format === 'q8') &&
      Array.isArray(entry.shape) &&
      entry.shape.length === 2 &&
      entry.shape.every((d) => Number.isInteger(d) && d > 0) &&
      typeof entry.data === 'string' &&
      typeof entry.scales === 'string' &&
      (entry.format === 'q8' || Number.isInteger(entry.block_size));
    if (!ok) fail(`weights[${JSON.stringify(name)}] is not a packed weight entry: ${JSON.stringify(e)}`);
  }
  return json as QuantizationManifest;
}

/** `base` with the manifest's packed weights shown under their checkpoint names. */
export function withPackedWeights(base: WeightLookup, manifest: QuantizationManifest): WeightLookup {
  const packed = new Map(Object.entries(manifest.weights));
  return {
    has: (name) => packed.has(name) || base.has(name),
    get(name): WeightInfo {
      const e = packed.get(name);
      if (!e) return base.get(name);
      const data = base.has(e.data) ? base.get(e.data) : undefined;
      return {
        name,
        dtype: 'F32',
        shape: e.shape,
        file: data?.file ?? '',
        offset: 0,
        byteLength: 0,
        packed: {
          format: e.format,
          blockSize: e.block_size,
          data: e.data,
          scales: e.scales,
          zeroPoints: e.zero_points,
        },
      };
    },
    fileOf: (info) => base.fileOf(info),
    noteUse: base.noteUse ? (name, role) => base.noteUse?.(name, role) : undefined,
  };
}
