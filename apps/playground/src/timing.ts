/**
 * Where a run's time goes. The SDK runs the image side and generation inside one
 * `ask`/`stream` call, and beam search reports its tokens only once the beams are
 * final, so neither the call nor `onToken` can split it. The backend seam can: every
 * graph run goes through `Session.run`, and each graph has a name ('vision_model',
 * 'qformer', then the language model's prefill and step graphs).
 */
import type {
  AnyTensor,
  Backend,
  BackendCapabilities,
  BuiltGraph,
  LoadOptions,
  Session,
  Tensor,
} from '@blip2/tensor';
import { formatMs } from './format.js';

/** The image side of BLIP-2: the vision encoder and the Q-Former (with language_projection). */
const IMAGE_SIDE = /vision|qformer/i;

export interface RunTimes {
  /** ms in the vision encoder and Q-Former graphs */
  readonly imageSide: number;
  /** ms in the language model's graphs (prefill and every step) */
  readonly languageModel: number;
  /** language-model graph runs: the prefill and one per step (per beam step for beam search) */
  readonly languageModelRuns: number;
}

/** A Backend that forwards to another and adds up how long each graph's runs take. */
export class TimedBackend implements Backend {
  private imageSide = 0;
  private languageModel = 0;
  private languageModelRuns = 0;

  constructor(
    readonly inner: Backend,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get name(): string {
    return this.inner.name;
  }

  get capabilities(): BackendCapabilities {
    return this.inner.capabilities;
  }

  clearWeightCache(keep?: readonly string[]): void {
    this.inner.clearWeightCache?.(keep);
  }

  async load(graph: BuiltGraph, options?: LoadOptions): Promise<Session> {
    const session = await this.inner.load(graph, options);
    const image = IMAGE_SIDE.test(graph.name);
    const timed = async <T>(run: () => Promise<T>): Promise<T> => {
      const start = this.now();
      try {
        return await run();
      } finally {
        const ms = this.now() - start;
        if (image) this.imageSide += ms;
        else {
          this.languageModel += ms;
          this.languageModelRuns += 1;
        }
      }
    };
    return {
      name: session.name,
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      run: (feeds: Readonly<Record<string, AnyTensor>>, outputs?: readonly string[]) =>
        timed<Record<string, Tensor>>(() => session.run(feeds, outputs)),
      runOnDevice: (feeds: Readonly<Record<string, AnyTensor>>, outputs?: readonly string[]) =>
        timed<Record<string, AnyTensor>>(() => session.runOnDevice(feeds, outputs)),
      release: () => session.release(),
    };
  }

  /** Starts a new count (call before each user action). */
  reset(): void {
    this.imageSide = 0;
    this.languageModel = 0;
    this.languageModelRuns = 0;
  }

  get times(): RunTimes {
    return {
      imageSide: this.imageSide,
      languageModel: this.languageModel,
      languageModelRuns: this.languageModelRuns,
    };
  }
}

/** The timings line: graph time on each side, and the rest (image decoding, resizing, tokenizing, search). */
export function describeTimes(times: RunTimes, totalMs: number, tokens: number, backend: string): string {
  const other = Math.max(0, totalMs - times.imageSide - times.languageModel);
  return (
    `image side (vision encoder + Q-Former): ${formatMs(times.imageSide)} · ` +
    `generation (language model, ${times.languageModelRuns} run${times.languageModelRuns === 1 ? '' : 's'}, ` +
    `${tokens} token${tokens === 1 ? '' : 's'}): ${formatMs(times.languageModel)} · ` +
    `other (decode, preprocess, search): ${formatMs(other)} · total ${formatMs(totalMs)} on ${backend}`
  );
}
