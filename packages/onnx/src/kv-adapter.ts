/**
 * What every key/value-cache language model adapter does the same way, whatever its
 * family: one set of cache I/O names, checks of the ids it is fed and of the outputs
 * its sessions return, the choice of a weight-first graph for steps of several rows
 * (and its release), and beam search's cache reorder (identity shortcut, rows moved on
 * the device where the cache lives there). A family adapter (OPT, T5) keeps only what
 * differs: its graphs, its cache layout, its masks and positions.
 */
import {
  type AnyTensor,
  type Backend,
  type BuiltGraph,
  gather,
  isDeviceTensor,
  LazySession,
  type LoadOptions,
  type Session,
  type Tensor,
} from '@blip2/tensor';
import { DeviceRowGather } from './device-gather.js';

/** The cache inputs and outputs of every decoder graph, as transformers names them. */
export const KV_IO = {
  pastKey: (layer: number) => `past_key_values.${layer}.key`,
  pastValue: (layer: number) => `past_key_values.${layer}.value`,
  presentKey: (layer: number) => `present.${layer}.key`,
  presentValue: (layer: number) => `present.${layer}.value`,
  /** the present.* outputs of `numLayers` layers: what the next step is fed, kept on the device */
  presents: (numLayers: number): string[] =>
    Array.from({ length: numLayers }, (_, i) => [KV_IO.presentKey(i), KV_IO.presentValue(i)]).flat(),
} as const;

/**
 * When the weight-first step graph is loaded for steps of several rows (beams, batches):
 * - 'lazy': on the first such step, so greedy batch-1 use never creates the session;
 * - 'eager': with the other graphs;
 * - 'never': every step runs the Gemm step graph (one session fewer).
 */
export type BatchedStep = 'lazy' | 'eager' | 'never';

export interface KvLoadOptions {
  /**
   * Default: 'lazy' where the backend declares weight-first linears fastest for several
   * rows and another session over the same weights costs no copy (onnxruntime-node's
   * CPU), 'never' elsewhere (onnxruntime-web copies the weights into each session).
   */
  readonly batchedStep?: BatchedStep;
}

/** The batched-step choice `options` and `backend`'s capabilities make. */
export function batchedStepFor(backend: Backend, options: KvLoadOptions = {}): BatchedStep {
  if (options.batchedStep) return options.batchedStep;
  const { batchedLinears, sharedWeights } = backend.capabilities;
  return batchedLinears === 'weight-first' && sharedWeights ? 'lazy' : 'never';
}

/** The codes an adapter's typed error takes for what the core checks. */
export type KvAdapterErrorCode = 'E_INPUT' | 'E_SESSION' | 'E_CACHE';

export interface KvAdapterCoreInit {
  /** names the reorder graphs, e.g. 'opt' */
  readonly family: string;
  /** the adapter class, named in messages that tell how to construct it, e.g. 'OptAdapter' */
  readonly adapter: string;
  readonly vocabSize: number;
  /** the family's typed error (OptError, T5Error, ...) */
  readonly error: (code: KvAdapterErrorCode, message: string) => Error;
  /** the step (or decoder) graph's session for one row */
  readonly step: Session;
  /** the weight-first step, loaded already, or loaded from this graph on the first step of several rows */
  readonly batched?: Session | BuiltGraph;
  /**
   * The backend the sessions run on: reorders a device cache there and loads a lazy
   * batched step. Without it, caches must be on the CPU.
   */
  readonly backend?: Backend;
  /** what the batched step keeps on the device (its present.* outputs) */
  readonly keepOnDevice?: readonly string[];
}

export class KvAdapterCore {
  readonly vocabSize: number;
  private readonly step: Session;
  private readonly batched: LazySession | undefined;
  private readonly deviceGather: DeviceRowGather | undefined;

  constructor(private readonly init: KvAdapterCoreInit) {
    this.vocabSize = init.vocabSize;
    this.step = init.step;
    const { batched, backend } = init;
    this.deviceGather = backend && new DeviceRowGather(backend, init.family);
    if (batched && 'run' in batched) this.batched = LazySession.of(batched);
    else if (batched && backend) {
      const options: LoadOptions = { keepOnDevice: init.keepOnDevice ?? [] };
      this.batched = new LazySession(() => backend.load(batched, options));
    }
  }

  /**
   * Loads a step graph and its weight-first twin as `options` and the backend's
   * capabilities choose: the twin's session ('eager'), its graph to load on first use
   * ('lazy'), or neither ('never').
   */
  static async loadSteps(
    backend: Backend,
    graphs: { readonly step: BuiltGraph; readonly batched: BuiltGraph },
    keepOnDevice: readonly string[],
    options: KvLoadOptions = {},
  ): Promise<{ step: Session; batched?: Session | BuiltGraph }> {
    const choice = batchedStepFor(backend, options);
    const [step, batched] = await Promise.all([
      backend.load(graphs.step, { keepOnDevice }),
      choice === 'eager' ? backend.load(graphs.batched, { keepOnDevice }) : undefined,
    ]);
    if (batched) return { step, batched };
    return choice === 'lazy' ? { step, batched: graphs.batched } : { step };
  }

  /**
   * The step session for `rows` = batch x new tokens, the rows each matrix product
   * multiplies: the Gemm step for one, the weight-first one (if any) for more.
   */
  async stepSession(rows: number): Promise<Session> {
    if (rows <= 1 || !this.batched) return this.step;
    return this.batched.get();
  }

  /** `ids` is int64 [batch, sequence] of ids inside the vocabulary. */
  checkIds(name: string, ids: Tensor<'int64'>): void {
    if (ids.dtype !== 'int64' || ids.dims.length !== 2) {
      throw this.init.error(
        'E_INPUT',
        `${name} must be int64 [batch, sequence], got ${ids.dtype} [${ids.dims}]`,
      );
    }
    const vocab = BigInt(this.vocabSize);
    for (let i = 0; i < ids.data.length; i++) {
      const id = ids.data[i];
      if (id < 0n || id >= vocab) {
        throw this.init.error(
          'E_INPUT',
          `${name}[${Math.floor(i / ids.dims[1])}, ${i % ids.dims[1]}] = ${id} is outside the vocabulary [0, ${this.vocabSize})`,
        );
      }
    }
  }

  /** A cache output: float32, on the CPU or on the backend's device. */
  cacheOutput(out: Record<string, AnyTensor>, name: string, session: string): AnyTensor<'float32'> {
    const t = out[name];
    if (t?.dtype !== 'float32') {
      throw this.init.error(
        'E_SESSION',
        `session '${session}' returned ${t ? `a ${t.dtype} '${name}'` : `no '${name}'`}, expected float32`,
      );
    }
    return t as AnyTensor<'float32'>;
  }

  /** An output read on the CPU (logits, embeddings, hidden states): float32, not kept on a device. */
  output(out: Record<string, AnyTensor>, name: string, session: string): Tensor<'float32'> {
    const t = this.cacheOutput(out, name, session);
    if (isDeviceTensor(t)) {
      throw this.init.error(
        'E_SESSION',
        `session '${session}' kept '${name}' on the ${t.location}; it must come back to the CPU`,
      );
    }
    return t;
  }

  /**
   * Checks beam search's `rows` against a cache of `n` rows; true when every row stays
   * where it is (beams that all kept their own history: nothing to move, nor to free).
   */
  keepsRows(rows: readonly number[], n: number): boolean {
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= n) {
        throw this.init.error('E_CACHE', `reorderCache: row ${r} is not a row of the cache (${n} rows)`);
      }
    }
    return rows.length === n && rows.every((r, i) => r === i);
  }

  /** `rows` (axis 0) of every tensor: on the device for tensors that live there, else on the CPU. */
  async gatherRows(
    tensors: readonly AnyTensor<'float32'>[],
    rows: readonly number[],
  ): Promise<AnyTensor<'float32'>[]> {
    if (this.deviceGather) return this.deviceGather.gather(tensors, rows);
    if (tensors.some(isDeviceTensor)) {
      throw this.init.error(
        'E_CACHE',
        `reorderCache: the cache is on a device but the adapter has no backend to reorder it there (construct it with ${this.init.adapter}.load)`,
      );
    }
    return tensors.map((t) => gather(t as Tensor<'float32'>, 0, rows));
  }

  /** Releases the step sessions, and the batched step and reorder graphs if steps loaded them. */
  async release(): Promise<void> {
    await Promise.all([this.step.release(), this.batched?.release(), this.deviceGather?.release()]);
  }
}
