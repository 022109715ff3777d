/**
 * The page's pure parts: reading the decoding controls into generation options,
 * wording load progress and timings, and turning any thrown value into the code and
 * message the page shows. Kept free of the DOM so Node tests can check them.
 */
import { Blip2Error, type GenerationOptions, type LoadProgress } from '@blip2/sdk/browser';

export type PlaygroundErrorCode = 'E_OPTION' | 'E_INPUT' | 'E_IMAGE_TYPE' | 'E_NOT_READY' | 'E_RUNTIME';

/** A mistake made in the page's own controls (the SDK's errors carry their own codes). */
export class PlaygroundError extends Blip2Error<PlaygroundErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.PlaygroundError');
  constructor(code: PlaygroundErrorCode, message: string) {
    super(code, message);
    this.name = 'PlaygroundError';
  }
}

export type Strategy = 'default' | 'greedy' | 'beam';

export interface DecodingControls {
  readonly strategy: string;
  /** raw text of the inputs, as the page reads them */
  readonly numBeams: string;
  readonly maxNewTokens: string;
}

function integerField(field: string, raw: string, min: number, max: number): number {
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new PlaygroundError(
      'E_OPTION',
      `${field} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/**
 * Generation options that override the reference defaults, and only those: with
 * 'default' and no token limit the SDK decides (generation_config for captions, the
 * paper's VQA decoding for answers), exactly as transformers would.
 */
export function decodingOptions(controls: DecodingControls): GenerationOptions {
  const { strategy } = controls;
  if (strategy !== 'default' && strategy !== 'greedy' && strategy !== 'beam') {
    throw new PlaygroundError(
      'E_OPTION',
      `decoding strategy must be 'default', 'greedy' or 'beam', got ${JSON.stringify(strategy)}`,
    );
  }
  const options: GenerationOptions = {};
  if (strategy === 'greedy') options.numBeams = 1;
  if (strategy === 'beam') options.numBeams = integerField('beams', controls.numBeams, 2, 10);
  if (controls.maxNewTokens.trim() !== '')
    options.maxNewTokens = integerField('max new tokens', controls.maxNewTokens, 1, 200);
  return options;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** What the progress bar shows for one `onProgress` event: a fraction of the current phase and its words. */
export function describeProgress(event: LoadProgress): { fraction: number; text: string } {
  const ratio = (done: number, total: number) => (total > 0 ? Math.min(1, done / total) : 0);
  if (event.phase === 'download') {
    return {
      fraction: ratio(event.overallLoaded, event.overallTotal),
      text: `Downloading ${event.file}: ${formatBytes(event.loaded)} of ${formatBytes(event.total)}`,
    };
  }
  // 'build': the ONNX graph is written in TypeScript; 'load': onnxruntime creates its session
  const verb = event.phase === 'build' ? 'Building' : 'Loading';
  return {
    fraction: ratio(event.done, event.total),
    text: `${verb} graph ${event.graph} (${event.done} of ${event.total})`,
  };
}

/**
 * One bar for a whole load that only moves forward: the onnxruntime-web wasm download when
 * the page fetches it (about 28 MB, the largest file of a small model's load), the model's
 * files, then building the graphs and loading their sessions. Each stage fills its own part
 * of the bar; the SDK restarts `done` at 0 for each phase, the bar does not go back.
 */
export class LoadMeter {
  private shown = 0;
  private readonly stages: {
    runtime: [number, number];
    download: [number, number];
    graphs: [number, number];
  };

  constructor(withRuntime: boolean) {
    this.stages = withRuntime
      ? { runtime: [0, 0.6], download: [0.6, 0.9], graphs: [0.9, 1] }
      : { runtime: [0, 0], download: [0, 0.8], graphs: [0.8, 1] };
  }

  get fraction(): number {
    return this.shown;
  }

  private at([from, to]: [number, number], part: number): number {
    this.shown = Math.max(this.shown, from + (to - from) * Math.min(1, Math.max(0, part)));
    return this.shown;
  }

  /** The runtime's wasm: `loaded` of `total` bytes (total 0 when the server does not say). */
  runtime(loaded: number, total: number): { fraction: number; text: string } {
    return {
      fraction: this.at(this.stages.runtime, total > 0 ? loaded / total : 0),
      text: `Downloading the onnxruntime-web runtime: ${formatBytes(loaded)}${total > 0 ? ` of ${formatBytes(total)}` : ''}`,
    };
  }

  /** An `onProgress` event of the SDK. */
  model(event: LoadProgress): { fraction: number; text: string } {
    const { fraction, text } = describeProgress(event);
    if (event.phase === 'download') return { fraction: this.at(this.stages.download, fraction), text };
    // building every graph is the first half of this stage, loading their sessions the second
    const half = event.phase === 'build' ? 0 : 0.5;
    return { fraction: this.at(this.stages.graphs, half + fraction / 2), text };
  }

  /** Loaded. */
  done(): number {
    this.shown = 1;
    return 1;
  }
}

/**
 * The code and message shown for a failure. Every error of the SDK and its packages
 * has a stable string `code`; anything else (a bug, a browser refusal) shows its name.
 * The stack is never shown: it says nothing to someone using the page.
 */
export function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { code: typeof code === 'string' ? code : error.name, message: error.message };
  }
  return { code: 'Error', message: String(error) };
}

/**
 * The weight formats a model runs in, for the status line: `q4` when every module has
 * the same (an exported folder: `blip2 export --dtype q4`), else per module.
 */
export function describeWeights(dtypes: Readonly<Record<string, string>>): string {
  const formats = new Set(Object.values(dtypes));
  if (formats.size === 1) return [...formats][0];
  return Object.entries(dtypes)
    .map(([module, d]) => `${module} ${d}`)
    .join(', ');
}
