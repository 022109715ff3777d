/**
 * What every key/value-cache language model adapter does the same way, whatever its
 * family: one set of cache I/O names and the feeds and outputs named by them, checks
 * of the ids it is fed and of the outputs its sessions return, loading its sessions
 * (the choice of a weight-first graph for steps of several rows, graphs loaded on first
 * use) and releasing them, and beam search's cache reorder: identity shortcut; on the
 * CPU, left to the next step, whose graph gathers the past rows by `beam_idx` (nothing
 * is copied in JavaScript); on a device, rows moved there. A family adapter (OPT, T5)
 * keeps only what differs: its graphs, its masks and positions, what its cache holds
 * beside the layers' keys and values.
 */
import {
  type AnyTensor,
  type Backend,
  type BuiltGraph,
  disposeTensor,
  gather,
  int64,
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
  /** `stepAppend`-style graphs' outputs: the new tokens' keys/values only, [B, H, new tokens, head_dim] */
  appendedKey: (layer: number) => `appended.${layer}.key`,
  appendedValue: (layer: number) => `appended.${layer}.value`,
  /**
   * int64 [batch]: the reorder step's input, row i of the past it attends to is row
   * beam_idx[i] of the past it is fed (transformers' `_reorder_cache` `beam_idx`)
   */
  beamIdx: 'beam_idx',
  /** the present.* outputs of `numLayers` layers: what the next step is fed, kept on the device */
  presents: (numLayers: number): string[] =>
    Array.from({ length: numLayers }, (_, i) => [KV_IO.presentKey(i), KV_IO.presentValue(i)]).flat(),
} as const;

/** How a graph names layer i's keys and values (the past fed, the present returned, ...). */
export interface KvNames {
  key(layer: number): string;
  value(layer: number): string;
}

export const KV_PAST: KvNames = { key: KV_IO.pastKey, value: KV_IO.pastValue };
export const KV_PRESENT: KvNames = { key: KV_IO.presentKey, value: KV_IO.presentValue };
export const KV_APPENDED: KvNames = { key: KV_IO.appendedKey, value: KV_IO.appendedValue };

/**
 * Every layer's attention keys and values, float32 [B, num_heads, length, head_dim]
 * (transformers' `past_key_values`); on the backend's device when it keeps them there.
 */
export interface KvLayers<T extends AnyTensor<'float32'> = AnyTensor<'float32'>> {
  readonly keys: readonly T[];
  readonly values: readonly T[];
}

/** Frees the device buffers of `layers` (CPU tensors are left to the garbage collector). */
export function disposeLayers(...layers: readonly KvLayers[]): void {
  for (const { keys, values } of layers) for (const t of [...keys, ...values]) disposeTensor(t);
}

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

/**
 * The step graphs' sessions: the one-row step, and its weight-first twins for steps of
 * several rows, each loaded already or a graph to load on first use.
 */
export interface KvSteps {
  /** the step (or decoder) graph's session for one row */
  readonly step: Session;
  /** the weight-first step, loaded already, or loaded from this graph on the first step of several rows */
  readonly batched?: Session | BuiltGraph;
  /**
   * The weight-first step that first gathers its past rows by `beam_idx`: loaded already,
   * or loaded from this graph on the first reorder left to a step. Without it, every
   * reorder copies the cache (on the CPU, or on the device where it lives).
   */
  readonly reorder?: Session | BuiltGraph;
}

/** The step graphs `loadSessions` loads as `options` choose; without twins every step runs `step`. */
export interface KvStepGraphs {
  readonly step: BuiltGraph;
  readonly batched?: BuiltGraph;
  readonly reorder?: BuiltGraph;
}

export interface KvAdapterCoreInit extends KvSteps {
  /** names the reorder graphs, e.g. 'opt' */
  readonly family: string;
  /** the adapter class, named in messages that tell how to construct it, e.g. 'OptAdapter' */
  readonly adapter: string;
  readonly vocabSize: number;
  /** the decoder layers whose keys and values the cache holds */
  readonly numLayers: number;
  /** the family's typed error (OptError, T5Error, ...) */
  readonly error: (code: KvAdapterErrorCode, message: string) => Error;
  /**
   * The backend the sessions run on: reorders a device cache there and loads the graphs
   * given for first use. Without it, caches must be on the CPU.
   */
  readonly backend?: Backend;
  /** the family's other sessions (embeddings, prefill, encoder, ...), released with the steps */
  readonly sessions?: readonly Session[];
}

/** The outputs of `graph` among `keepOnDevice`: a backend refuses to keep an output the graph has not. */
function loadOptions(graph: BuiltGraph, keepOnDevice: readonly string[]): LoadOptions {
  return { keepOnDevice: keepOnDevice.filter((n) => graph.outputs.some((io) => io.name === n)) };
}

export class KvAdapterCore {
  readonly vocabSize: number;
  readonly numLayers: number;
  private readonly step: Session;
  private readonly batched: LazySession | undefined;
  private readonly reorder: LazySession | undefined;
  private readonly deviceGather: DeviceRowGather | undefined;
  /** what `release` releases beside the steps: the family's sessions and graphs loaded on first use */
  private readonly owned: (Session | LazySession)[];

  constructor(private readonly init: KvAdapterCoreInit) {
    this.vocabSize = init.vocabSize;
    this.numLayers = init.numLayers;
    this.step = init.step;
    const { backend } = init;
    this.deviceGather = backend && new DeviceRowGather(backend, init.family);
    this.owned = [...(init.sessions ?? [])];
    this.batched = this.lazyOf(init.batched);
    this.reorder = this.lazyOf(init.reorder);
  }

  /**
   * Loads the family's `graphs` and its step graphs on `backend`: each graph keeps on
   * the device those of its outputs named in `keepOnDevice` (the cache's), the step's
   * weight-first twins are loaded as `options` and the backend's capabilities choose:
   * their sessions ('eager'), their graphs to load on first use ('lazy'), or neither
   * ('never'; also when `steps` has no twins).
   */
  static async loadSessions<K extends string>(
    backend: Backend,
    graphs: { readonly [name in K]: BuiltGraph },
    steps: KvStepGraphs,
    keepOnDevice: readonly string[],
    options: KvLoadOptions = {},
  ): Promise<{ sessions: { [name in K]: Session }; steps: KvSteps }> {
    const load = (g: BuiltGraph) => backend.load(g, loadOptions(g, keepOnDevice));
    const names = Object.keys(graphs) as K[];
    const choice = steps.batched ? batchedStepFor(backend, options) : 'never';
    const eager = choice === 'eager' ? [steps.batched, steps.reorder].filter((g) => g !== undefined) : [];
    const loaded = await Promise.all(
      [...names.map((n) => graphs[n]), steps.step, ...eager].map((g) => load(g as BuiltGraph)),
    );
    const sessions = Object.fromEntries(names.map((n, i) => [n, loaded[i]])) as { [name in K]: Session };
    const [step, ...twins] = loaded.slice(names.length);
    if (choice === 'never') return { sessions, steps: { step } };
    if (choice === 'lazy')
      return { sessions, steps: { step, batched: steps.batched, reorder: steps.reorder } };
    return { sessions, steps: { step, batched: twins[0], reorder: twins[1] } };
  }

  /**
   * `graph` as a session: given loaded, or loaded on the backend on first use (keeping the
   * cache's outputs on its device), and released with the adapter. Undefined without a
   * graph, or without a backend to load it on.
   */
  lazyOf(graph: Session | BuiltGraph | undefined): LazySession | undefined {
    const { backend } = this.init;
    let lazy: LazySession | undefined;
    if (graph && 'run' in graph) lazy = LazySession.of(graph);
    else if (graph && backend) {
      const options = loadOptions(graph, KV_IO.presents(this.numLayers));
      lazy = new LazySession(() => backend.load(graph, options));
    }
    if (lazy) this.owned.push(lazy);
    return lazy;
  }

  /**
   * The step session for `rows` = batch x new tokens, the rows each matrix product
   * multiplies, and the feeds it takes beyond the family's: the Gemm step for one row,
   * the weight-first one (if any) for more. `beamIdx` is a reorder `reorderCache` left to
   * this step (see `defersReorder`): the reorder step runs, fed it as `beam_idx`.
   */
  async stepFor(
    rows: number,
    beamIdx?: readonly number[],
  ): Promise<{ session: Session; feeds: Record<string, AnyTensor> }> {
    const beams = (idx: readonly number[]) => ({ [KV_IO.beamIdx]: int64([idx.length], idx) });
    if (beamIdx) {
      if (!this.reorder)
        throw this.init.error('E_CACHE', 'internal: a reorder was left to a step that cannot gather');
      return { session: await this.reorder.get(), feeds: beams(beamIdx) };
    }
    if (rows <= 1 || !this.batched) return { session: this.step, feeds: {} };
    // beam search loaded the reorder step: a step whose beams all kept their rows runs it
    // too (one Gather of the cache in onnxruntime) rather than create a second
    // weight-first session in the middle of a generation (for 4-bit weights, another
    // pre-packed copy of them)
    if (this.reorder?.loaded && !this.batched.loaded) {
      return { session: await this.reorder.get(), feeds: beams(Array.from({ length: rows }, (_, i) => i)) };
    }
    return { session: await this.batched.get(), feeds: {} };
  }

  /**
   * Whether a reorder to `rows` rows of a cache holding `tensors` can be left to the next
   * step, which gathers the past rows inside its graph: that step multiplies several
   * rows (the weight-first graphs have a reorder twin) and the cache is on the CPU (a
   * device cache is moved on its device, by one Gather graph).
   */
  defersReorder(rows: number, tensors: readonly AnyTensor[]): boolean {
    return rows > 1 && this.reorder !== undefined && !tensors.some(isDeviceTensor);
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

  /**
   * Beam search's `rows` of a cache whose own reorder `pending` was left to the next
   * step (row i of the cache is row pending[i] of its tensors): the rows of the tensors.
   */
  static composeRows(pending: readonly number[] | undefined, rows: readonly number[]): number[] {
    return pending ? rows.map((r) => pending[r]) : [...rows];
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

  /** `layers` fed under `names` (by default the past a step continues: `past_key_values.{i}.*`). */
  feeds(layers: KvLayers, names: KvNames = KV_PAST): Record<string, AnyTensor> {
    const feeds: Record<string, AnyTensor> = {};
    for (let i = 0; i < this.numLayers; i++) {
      feeds[names.key(i)] = layers.keys[i];
      feeds[names.value(i)] = layers.values[i];
    }
    return feeds;
  }

  /** The layers a session returned under `names` (by default the grown cache, `present.{i}.*`), where it keeps them. */
  layers(out: Record<string, AnyTensor>, session: string, names: KvNames = KV_PRESENT): KvLayers {
    const layer = Array.from({ length: this.numLayers }, (_, i) => i);
    return {
      keys: layer.map((i) => this.cacheOutput(out, names.key(i), session)),
      values: layer.map((i) => this.cacheOutput(out, names.value(i), session)),
    };
  }

  /** The layers a session returned under `names`, read on the CPU. */
  cpuLayers(out: Record<string, AnyTensor>, session: string, names: KvNames): KvLayers<Tensor<'float32'>> {
    const layer = Array.from({ length: this.numLayers }, (_, i) => i);
    return {
      keys: layer.map((i) => this.output(out, names.key(i), session)),
      values: layer.map((i) => this.output(out, names.value(i), session)),
    };
  }

  /** `rows` of every layer of every cache in `caches`, moved in one `gatherRows`. */
  async gatherLayers(caches: readonly KvLayers[], rows: readonly number[]): Promise<KvLayers[]> {
    const moved = await this.gatherRows(
      caches.flatMap((c) => [...c.keys, ...c.values]),
      rows,
    );
    let at = 0;
    return caches.map((c) => {
      const keys = moved.slice(at, at + c.keys.length);
      const values = moved.slice(at + c.keys.length, at + c.keys.length + c.values.length);
      at += c.keys.length + c.values.length;
      return { keys, values };
    });
  }

  /**
   * Releases every session: the steps, the graphs loaded on first use if they were, the
   * family's own (a session given twice, e.g. one graph serving prefill and steps, once).
   */
  async release(): Promise<void> {
    const sessions = new Set<Session | LazySession>([this.step, ...this.owned]);
    await Promise.all([...[...sessions].map((s) => s.release()), this.deviceGather?.release()]);
  }
}
