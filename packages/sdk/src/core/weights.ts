/**
 * Which checkpoint weights the built graphs use, and how. A missing weight already
 * fails the build (GraphBuildError E_MISSING_WEIGHT names it, the SDK rethrows it as SdkError with the checkpoint's location); weights nobody used are listed in a
 * warning, as transformers does (published checkpoints carry a few, e.g. the
 * Q-Former's text-side layers that generation never runs). The roles (a `linear`'s
 * weight, or anything else) say which weights a dtype may quantize (./dtype.ts).
 */

import type { WeightLookup, WeightRole } from '@blip2/onnx';

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
      fileOf: (info) => index.fileOf(info as never),
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
