import type { VqaAnswerer } from './answerer.js';
import { VqaEvalError } from './errors.js';

export interface LoadAnswererOptions {
  /** A model folder or hub name, as the SDK understands it. */
  model: string;
  backend?: string;
  device?: string;
}

/**
 * Builds the real answerer from the SDK. The SDK is being written alongside this app; until it
 * lands this is the one function to replace, and everything else only sees a `VqaAnswerer`.
 */
export async function loadAnswerer(opts: LoadAnswererOptions): Promise<VqaAnswerer> {
  throw new VqaEvalError(
    'E_NO_SDK',
    `cannot load model "${opts.model}": the @blip2/sdk answerer is not wired into apps/eval yet ` +
      '(apps/eval/src/load-answerer.ts); use --answerer-module to run with your own VqaAnswerer',
  );
}
