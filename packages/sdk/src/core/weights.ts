/**
 * Which checkpoint weights the built graphs use, and how. A missing weight already
 * fails the build (GraphBuildError E_MISSING_WEIGHT names it, the SDK rethrows it as SdkError with the checkpoint's location); weights nobody used are listed in a
 * warning, as transformers does (published checkpoints carry a few, e.g. the
 * Q-Former's text-side layers that generation never runs). The roles (a `linear`'s
 * weight, or anything else) say which weights a dtype may quantize (./dtype.ts).
 */

import type { WeightLookup, WeightRole } from '@blip2/onnx';
import type { WeightIndex } from '@blip2/safetensors';
import { firstNonFinite } from '@blip2/tensor';
import { SdkError } from '../errors.js';

/** What of a checkpoint `recordUse` needs: a WeightIndex, or a packed folder's lookup. */
type Index = Pick<WeightLookup, 'has' | 'get' | 'fileOf'>;

export interface RecordingLookup {
  readonly lookup: WeightLookup;
  readonly used: ReadonlySet<string>;
  readonly roles: ReadonlyMap<string, ReadonlySet<WeightRole>>;
}

export function recordUse(index: Index): RecordingLookup {
  const used = new Set<string>();
  const roles = new Map<string, Set<WeightRole>>();
  return {
    used,
    roles,
    lookup: {
      has: (name) => index.has(name),
      get: (name) => {
        const info = index.get(name);
        used.add(name);
        return info;
      },
      fileOf: (info) => index.fileOf(info),
      noteUse: (name, role) => {
        const set = roles.get(name) ?? new Set<WeightRole>();
        set.add(role);
        roles.set(name, set);
      },
    },
  };
}

export function unusedWeights(
  index: { readonly tensors: ReadonlyMap<string, unknown> },
  used: ReadonlySet<string>,
): string[] {
  return [...index.tensors.keys()].filter((n) => !used.has(n)).sort();
}

/** The checkpoint weights behind each part's output, by name prefix (transformers' module names). */
const PART_WEIGHTS = {
  'vision encoder': ['vision_model.'],
  'Q-Former': ['qformer.', 'query_tokens', 'language_projection.'],
  'language model': ['language_model.'],
} as const;
export type ModelPart = keyof typeof PART_WEIGHTS;

/**
 * The first float weight of `part` holding NaN or Infinity, with the element, or undefined.
 * Reads the part's weights whole, so it runs only once a part's output was found broken:
 * a scan at every load would read every byte of a 15 GB checkpoint (docs/reliability.md).
 */
export async function firstNonFiniteWeight(
  weights: WeightIndex,
  part: ModelPart,
): Promise<{ name: string; index: number; value: number } | undefined> {
  const prefixes: readonly string[] = PART_WEIGHTS[part];
  for (const [name, info] of weights.tensors) {
    if (!prefixes.some((p) => name.startsWith(p))) continue;
    if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') continue;
    const data = await weights.readFloat32(name);
    const index = firstNonFinite(data);
    if (index >= 0) return { name, index, value: data[index] };
  }
  return undefined;
}

/**
 * The error for a part whose output holds NaN or Infinity: the weight at fault when one
 * is, else the part (its inputs were broken, or the overflow happened inside it).
 */
export async function nonFiniteError(
  weights: WeightIndex,
  part: ModelPart,
  what: string,
  cause?: unknown,
): Promise<SdkError> {
  const bad = await firstNonFiniteWeight(weights, part).catch(() => undefined);
  const why = bad
    ? `weight ${bad.name} holds ${bad.value} at element ${bad.index}`
    : `no ${part} weight holds NaN or Infinity, so it overflowed or its input did`;
  return new SdkError('E_NAN', `the ${part}'s ${what} holds NaN or Infinity: ${why}; no answer is returned`, {
    cause,
  });
}
