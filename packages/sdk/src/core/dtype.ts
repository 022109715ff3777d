/**
 * A dtype per module (`fp32 | fp16 | q8 | q4 | q4f16`, transformers.js' names) and
 * what it means for each weight: the graphs are built once over the checkpoint to
 * learn each weight's role (only weights used solely by `linear` are quantized,
 * @blip2/onnx's WEIGHT_FORMATS), then every weight the graphs use is written in its
 * format, one tensor in memory at a time. `blip2 export` writes that to a folder; the
 * Node SDK writes it to its cache when a plain checkpoint is loaded with a dtype.
 */
import {
  isModelDType,
  MODEL_DTYPES,
  MODULES,
  type ModelDType,
  type ModuleName,
  type PackedEntry,
  type Q4BlockSize,
  QUANTIZATION_FORMAT,
  type QuantizationManifest,
  q4BlockSize,
  q4HasZeroPoints,
  quantizeQ4,
  quantizeQ8,
  toFloat16,
  WEIGHT_FORMATS,
  type WeightFormat,
  type WeightRole,
} from '@blip2/onnx';
import type { SafetensorsDType, WeightIndex } from '@blip2/safetensors';
import { SdkError } from '../errors.js';

/** One dtype for every module, or one per module (unnamed modules stay fp32). */
export type DTypeOption = ModelDType | Partial<Record<ModuleName, ModelDType>>;

/** Every module's dtype from the option; an unknown name or module is E_DTYPE naming it. */
export function resolveDTypes(
  option: unknown,
  fallback: ModelDType = 'fp32',
): Record<ModuleName, ModelDType> {
  const all = (d: ModelDType) =>
    Object.fromEntries(MODULES.map((m) => [m, d])) as Record<ModuleName, ModelDType>;
  if (option === undefined) return all(fallback);
  if (typeof option === 'string') {
    if (!isModelDType(option)) throw unknownDType(option, 'dtype');
    return all(option);
  }
  if (typeof option !== 'object' || option === null)
    throw new SdkError(
      'E_DTYPE',
      `dtype must be a string or a per-module object, got ${JSON.stringify(option)}`,
    );
  const out = all(fallback);
  for (const [mod, d] of Object.entries(option)) {
    if (!(MODULES as readonly string[]).includes(mod))
      throw new SdkError('E_DTYPE', `dtype names module '${mod}'; the modules are ${MODULES.join(', ')}`);
    if (!isModelDType(d)) throw unknownDType(d, `dtype.${mod}`);
    out[mod as ModuleName] = d;
  }
  return out;
}

function unknownDType(value: unknown, where: string): SdkError {
  const shown = typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
  return new SdkError('E_DTYPE', `${where} ${shown} is not a dtype (${MODEL_DTYPES.join(', ')})`);
}

/** `q4`, or `vision=fp16,qformer=fp32,language_model=q4` (the CLI's --dtype). */
export function parseDTypeFlag(text: string): DTypeOption {
  if (!text.includes('=')) {
    if (!isModelDType(text)) throw unknownDType(text, '--dtype');
    return text;
  }
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    const [mod, d, ...rest] = part.split('=');
    if (!mod || !d || rest.length)
      throw new SdkError('E_DTYPE', `--dtype part '${part}' is not module=dtype`);
    out[mod.trim()] = d.trim();
  }
  resolveDTypes(out);
  return out as DTypeOption;
}

/** The module a checkpoint weight belongs to, by the BLIP-2 layout's prefixes. */
export function moduleOf(name: string): ModuleName {
  if (name.startsWith('vision_model.')) return 'vision';
  if (name.startsWith('language_model.')) return 'language_model';
  return 'qformer'; // qformer.*, query_tokens, language_projection.*
}

export function sameDTypes(a: Record<ModuleName, ModelDType>, b: Record<ModuleName, ModelDType>): boolean {
  return MODULES.every((m) => a[m] === b[m]);
}

export function describeDTypes(d: Record<ModuleName, ModelDType>): string {
  return MODULES.map((m) => `${m}=${d[m]}`).join(',');
}

/** A tensor of the quantized checkpoint, its bytes produced when the writer reaches it. */
export interface PlannedTensor {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  bytes(): Promise<Uint8Array>;
}

export interface QuantizationPlan {
  /** in writing order; a packed weight's tensors follow each other */
  readonly tensors: readonly PlannedTensor[];
  readonly manifest: QuantizationManifest;
  /** weights no graph uses, left out */
  readonly dropped: readonly string[];
  /** whether any weight changes format (if not, the checkpoint can be used as it is) */
  readonly changes: boolean;
}

const FLOATS: readonly string[] = ['F32', 'F16', 'BF16'];

/** The dtype a half-precision checkpoint loads in on the CPU when none is asked (docs/backends.md). */
export const HALF_CHECKPOINT_CPU_DTYPE: ModelDType = 'q8';

/** Whether most of a checkpoint's float bytes are float16 or bfloat16 (how published half checkpoints store every weight). */
export function isHalfCheckpoint(index: WeightIndex): boolean {
  let half = 0;
  let all = 0;
  for (const info of index.tensors.values()) {
    if (!FLOATS.includes(info.dtype)) continue;
    all += info.byteLength;
    if (info.dtype !== 'F32') half += info.byteLength;
  }
  return all > 0 && half > all / 2;
}
const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * What a checkpoint becomes in `dtypes`: `roles` is how the graphs use each weight
 * (from building them once, `recordUse`). Unused weights are dropped. `q4Block`: the
 * block q4 weights are packed in where their K allows (@blip2/onnx q4BlockSize).
 */
export function planQuantization(
  index: WeightIndex,
  roles: ReadonlyMap<string, ReadonlySet<WeightRole>>,
  dtypes: Record<ModuleName, ModelDType>,
  source?: string,
  q4Block: Q4BlockSize = 32,
): QuantizationPlan {
  const tensors: PlannedTensor[] = [];
  const weights: Record<string, PackedEntry> = {};
  const dropped: string[] = [];
  let changes = false;
  const raw = async (name: string) => asBytes((await index.read(name)).data);
  for (const [name, info] of index.tensors) {
    const used = roles.get(name);
    if (!used) {
      dropped.push(name);
      continue;
    }
    const role: WeightRole = used.size === 1 && used.has('linear') ? 'linear' : 'other';
    const format: WeightFormat = WEIGHT_FORMATS[dtypes[moduleOf(name)]][role];
    const isFloat = FLOATS.includes(info.dtype);
    if (!isFloat || format === 'fp32' || (format === 'fp16' && info.dtype === 'F16')) {
      // kept as stored: a half checkpoint asked for fp32 is widened by the graphs, not on disk
      tensors.push({ name, dtype: info.dtype, shape: info.shape, bytes: () => raw(name) });
      continue;
    }
    changes = true;
    if (format === 'fp16') {
      tensors.push({
        name,
        dtype: 'F16',
        shape: info.shape,
        bytes: async () => asBytes(toFloat16(await index.readFloat32(name))),
      });
      continue;
    }
    const [n, k] = info.shape;
    if (format === 'q8') {
      let scales: Float32Array | undefined;
      weights[name] = { format, shape: [n, k], data: `${name}.q8`, scales: `${name}.q8_scales` };
      tensors.push(
        {
          name: `${name}.q8`,
          dtype: 'U8',
          shape: [k, n],
          bytes: async () => {
            const p = quantizeQ8(await index.readFloat32(name), n, k);
            scales = p.scales;
            return asBytes(p.data);
          },
        },
        {
          name: `${name}.q8_scales`,
          dtype: 'F32',
          shape: [n],
          bytes: async () => asBytes(taken(scales, name)),
        },
      );
      continue;
    }
    // q4 / q4f16: the three tensors of MatMulNBits, packed once when the first is written
    const block = q4BlockSize(k, q4Block);
    const nb = Math.ceil(k / block);
    const withZeroPoints = q4HasZeroPoints(n, k, block);
    let rest: { scales: Uint8Array; zeroPoints?: Uint8Array } | undefined;
    weights[name] = {
      format,
      shape: [n, k],
      block_size: block,
      data: `${name}.q4`,
      scales: `${name}.q4_scales`,
      ...(withZeroPoints ? { zero_points: `${name}.q4_zero_points` } : {}),
    };
    tensors.push(
      {
        name: `${name}.q4`,
        dtype: 'U8',
        shape: [n, nb, block / 2],
        bytes: async () => {
          const p = quantizeQ4(await index.readFloat32(name), n, k, block, !withZeroPoints);
          rest = {
            scales: format === 'q4f16' ? asBytes(toFloat16(p.scales)) : asBytes(p.scales),
            zeroPoints: p.zeroPoints,
          };
          return p.data;
        },
      },
      {
        name: `${name}.q4_scales`,
        dtype: format === 'q4f16' ? 'F16' : 'F32',
        shape: [n, nb],
        bytes: async () => {
          const { scales } = taken(rest, name);
          if (!withZeroPoints) rest = undefined;
          return scales;
        },
      },
    );
    if (withZeroPoints) {
      tensors.push({
        name: `${name}.q4_zero_points`,
        dtype: 'U8',
        shape: [n, Math.ceil(nb / 2)],
        bytes: async () => {
          const zp = taken(rest?.zeroPoints, name);
          rest = undefined;
          return zp;
        },
      });
    }
  }
  const manifest: QuantizationManifest = {
    format: QUANTIZATION_FORMAT,
    version: 1,
    dtype: dtypes,
    ...(source ? { source } : {}),
    weights,
  };
  return { tensors, manifest, dropped, changes };
}

function taken<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`internal: ${name}'s packed tensors were asked for out of order`);
  return value;
}
