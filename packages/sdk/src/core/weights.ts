/**
 * Which checkpoint weights the built graphs use. A missing weight already fails
 * the build (MissingWeightError names it); weights nobody used are listed in a
 * warning, as transformers does (published checkpoints carry a few, e.g. the
 * Q-Former's text-side layers that generation never runs).
 */

import type { WeightLookup } from '@blip2/onnx';
import type { WeightIndex } from '@blip2/safetensors';

export interface RecordingLookup {
  readonly lookup: WeightLookup;
  readonly used: ReadonlySet<string>;
}

export function recordUse(index: WeightIndex): RecordingLookup {
  const used = new Set<string>();
  return {
    used,
    lookup: {
      has: (name) => index.has(name),
      get: (name) => {
        const info = index.get(name);
        used.add(name);
        return info;
      },
      fileOf: (info) => index.fileOf(info as never),
    },
  };
}

export function unusedWeights(index: WeightIndex, used: ReadonlySet<string>): string[] {
  return [...index.tensors.keys()].filter((n) => !used.has(n)).sort();
}
