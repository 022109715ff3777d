/**
 * Flan-T5 behind generation's adapter interface. `prefill` runs the encoder once
 * (which also projects every decoder layer's cross-attention keys/values) and the
 * decoder on `decoder_start_token_id`; `step` feeds one token with the growing
 * self-attention cache. Runs on any backend: it only sees `Session`s. Where the
 * backend can (WebGPU), the cross-attention keys/values and the self-attention
 * cache stay on its device for the whole generation (`keepOnDevice`).
 *
 * A decoder run of one row (greedy batch 1) uses the `decoder` graph; a run of
 * several rows (beams, batches) uses `decoderBatched`, the same decoder
 * multiplying weight-first, when the adapter has it (`T5LoadOptions.batchedStep`).
 * Beam search's reorder of a CPU self-attention cache copies nothing: the cache
 * remembers the rows (`beamIdx`) and the next run is `decoderReorder`, which gathers them.
 */
import type { T5Config } from '@blip2/configs';
import type { LanguageModelAdapter, StepOutput } from '@blip2/generation';
import { KV_IO, KvAdapterCore, type KvLoadOptions } from '@blip2/onnx';
import {
  type AnyTensor,
  type Backend,
  type BuiltGraph,
  disposeTensor,
  gather,
  type Session,
  type Tensor,
  tensor,
  zeros,
} from '@blip2/tensor';
import { positionBuckets } from './buckets.js';
import { T5Error } from './errors.js';
import { T5_IO, type T5Graphs } from './modeling.js';

export interface T5Cache {
  /** float32 [B, S, D]: the encoder's output, one row per cache row */
  readonly encoderLastHiddenState: Tensor<'float32'>;
  /** int64 [B, S]: the encoder's padding mask (right padding), one row per cache row */
  readonly encoderAttentionMask: Tensor<'int64'>;
  /** per decoder layer [key, value], float32 [B, H, S, dKv]: computed once by the encoder (on the device when kept there) */
  readonly crossKeyValues: readonly KeyValue[];
  /**
   * For each cache row, the prefill batch row its encoder tensors came from. Beam
   * search's per-step reorders stay within a batch row's beams, which share the
   * same encoder tensors: when this mapping does not change, they are not moved.
   */
  readonly sourceRows: readonly number[];
  /** per decoder layer [key, value], float32 [B, H, steps, dKv] (on the device when kept there) */
  readonly selfKeyValues: readonly KeyValue[];
  /**
   * A reorder left to the next decoder run: row i of this cache's self-attention is row
   * beamIdx[i] of `selfKeyValues` (which keep the rows they had), gathered in the
   * decoder graph. Absent: `selfKeyValues` hold the B rows in order.
   */
  readonly beamIdx?: readonly number[];
  /** decoder tokens fed so far (the start token included) */
  readonly steps: number;
}

/** One layer's attention keys and values, float32 [B, H, length, dKv]. */
export type KeyValue = readonly [AnyTensor<'float32'>, AnyTensor<'float32'>];

export interface T5Sessions {
  readonly embed: Session;
  readonly encoder: Session;
  readonly decoder: Session;
  /** `decoder` multiplying weight-first, for runs of several rows; without it every run uses `decoder` */
  readonly decoderBatched?: Session;
  /** `decoderBatched` after a reorder (`beam_idx`); without it, reorders copy the self-attention cache */
  readonly decoderReorder?: Session;
}

/** Graphs an adapter loads on first use, when its sessions do not include them. */
export type T5LazyGraphs = Partial<Pick<T5Graphs, 'decoderBatched' | 'decoderReorder'>>;

/** `batchedStep`: when the weight-first decoder graph is loaded (see @blip2/onnx's `KvLoadOptions`). */
export type T5LoadOptions = KvLoadOptions;

function disposeAll(kvs: readonly KeyValue[]): void {
  for (const [k, v] of kvs) {
    disposeTensor(k);
    disposeTensor(v);
  }
}

export class T5Adapter implements LanguageModelAdapter<T5Cache> {
  readonly kind = 'encoder-decoder' as const;
  readonly decoderStartTokenId: number;
  readonly vocabSize: number;
  readonly maxPositions = undefined;
  /** id and output checks, the decoder session for a number of rows, cache reorders */
  private readonly core: KvAdapterCore;

  /**
   * `backend` is the one the sessions run on: beam search reorders a device cache with a
   * graph loaded there. `lazy` (with `backend`) holds graphs to load on first use when
   * `sessions` has no such session: `decoderBatched` on the first run of several rows,
   * `decoderReorder` on the first run after a reorder.
   */
  constructor(
    readonly config: T5Config,
    private readonly sessions: T5Sessions,
    backend?: Backend,
    lazy: T5LazyGraphs = {},
  ) {
    this.decoderStartTokenId = config.decoderStartTokenId;
    this.vocabSize = config.vocabSize;
    this.core = new KvAdapterCore({
      family: 't5',
      adapter: 'T5Adapter',
      vocabSize: config.vocabSize,
      error: (code, message) => new T5Error(code, message),
      step: sessions.decoder,
      batched: sessions.decoderBatched ?? lazy.decoderBatched,
      reorder: sessions.decoderReorder ?? lazy.decoderReorder,
      backend,
      keepOnDevice: KV_IO.presents(config.numDecoderLayers),
    });
  }

  /**
   * Loads the three graphs of `buildT5` on `backend`, asking it to keep the encoder's
   * cross-attention keys/values and the decoder's self-attention cache on its device
   * (a no-op where outputs already live with compute).
   */
  static async load(
    config: T5Config,
    graphs: T5Graphs,
    backend: Backend,
    options: T5LoadOptions = {},
  ): Promise<T5Adapter> {
    const layers = Array.from({ length: config.numDecoderLayers }, (_, i) => i);
    const cross = layers.flatMap((i) => [T5_IO.crossKey(i), T5_IO.crossValue(i)]);
    const present = KV_IO.presents(config.numDecoderLayers);
    const [embed, encoder, steps] = await Promise.all([
      backend.load(graphs.embed),
      backend.load(graphs.encoder, { keepOnDevice: cross }),
      KvAdapterCore.loadSteps(
        backend,
        { step: graphs.decoder, batched: graphs.decoderBatched, reorder: graphs.decoderReorder },
        present,
        options,
      ),
    ]);
    const { step: decoder, batched, reorder } = steps;
    const loaded = (s: Session | BuiltGraph | undefined) => (s && 'run' in s ? s : undefined);
    const graph = (s: Session | BuiltGraph | undefined) => (s && !('run' in s) ? s : undefined);
    return new T5Adapter(
      config,
      { embed, encoder, decoder, decoderBatched: loaded(batched), decoderReorder: loaded(reorder) },
      backend,
      { decoderBatched: graph(batched), decoderReorder: graph(reorder) },
    );
  }

  /** Releases the sessions (and the batched decoder and reorder graphs, if runs loaded them). */
  async release(): Promise<void> {
    await Promise.all([this.sessions.embed.release(), this.sessions.encoder.release(), this.core.release()]);
  }

  async embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    this.core.checkIds('inputIds', inputIds);
    const out = await this.sessions.embed.run({ [T5_IO.embed.inputIds]: inputIds });
    return this.core.output(out, T5_IO.embed.inputsEmbeds, this.sessions.embed.name);
  }

  /** The encoder alone: last hidden state [B, S, D] and the cross-attention keys/values of every decoder layer, on the CPU. */
  async encode(
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
  ): Promise<{
    lastHiddenState: Tensor<'float32'>;
    crossKeyValues: [Tensor<'float32'>, Tensor<'float32'>][];
  }> {
    const out = await this.runEncoder(inputsEmbeds, attentionMask, false);
    const name = this.sessions.encoder.name;
    const cpu: Record<string, AnyTensor> = {};
    out.crossKeyValues.forEach(([k, v], i) => {
      cpu[T5_IO.crossKey(i)] = k;
      cpu[T5_IO.crossValue(i)] = v;
    });
    return {
      lastHiddenState: out.lastHiddenState,
      crossKeyValues: out.crossKeyValues.map((_, i): [Tensor<'float32'>, Tensor<'float32'>] => [
        this.core.output(cpu, T5_IO.crossKey(i), name),
        this.core.output(cpu, T5_IO.crossValue(i), name),
      ]),
    };
  }

  /** Runs the encoder; with `onDevice`, the cross-attention keys/values stay where the backend keeps them. */
  private async runEncoder(
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
    onDevice: boolean,
  ): Promise<{ lastHiddenState: Tensor<'float32'>; crossKeyValues: KeyValue[] }> {
    const { dModel } = this.config;
    const [B, S, D] = inputsEmbeds.dims;
    if (inputsEmbeds.dtype !== 'float32' || inputsEmbeds.dims.length !== 3 || D !== dModel || S < 1) {
      throw new T5Error(
        'E_INPUT',
        `inputsEmbeds must be float32 [batch, tokens >= 1, ${dModel}], got ${inputsEmbeds.dtype} [${inputsEmbeds.dims}]`,
      );
    }
    if (
      attentionMask.dtype !== 'int64' ||
      attentionMask.dims.length !== 2 ||
      attentionMask.dims[0] !== B ||
      attentionMask.dims[1] !== S
    ) {
      throw new T5Error(
        'E_INPUT',
        `attentionMask must be int64 [${B}, ${S}] like inputsEmbeds, got ${attentionMask.dtype} [${attentionMask.dims}]`,
      );
    }
    const io = T5_IO.encoder;
    const feeds = {
      [io.inputsEmbeds]: inputsEmbeds,
      [io.attentionMask]: attentionMask,
      [io.positionBuckets]: positionBuckets(S, S, this.buckets(true)),
    };
    const encoder = this.sessions.encoder;
    const out = onDevice ? await encoder.runOnDevice(feeds) : await encoder.run(feeds);
    const crossKeyValues = Array.from(
      { length: this.config.numDecoderLayers },
      (_, i): KeyValue => [
        this.core.cacheOutput(out, T5_IO.crossKey(i), encoder.name),
        this.core.cacheOutput(out, T5_IO.crossValue(i), encoder.name),
      ],
    );
    return {
      lastHiddenState: this.core.output(out, io.lastHiddenState, encoder.name),
      crossKeyValues,
    };
  }

  async prefill(
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
  ): Promise<StepOutput<T5Cache>> {
    const cache = await this.encoderCache(inputsEmbeds, attentionMask);
    const B = inputsEmbeds.dims[0];
    const ids = tensor('int64', [B, 1], new BigInt64Array(B).fill(BigInt(this.decoderStartTokenId)));
    return this.decode(ids, cache);
  }

  /** Runs the encoder and returns a cache before any decoder token (self-attention keys/values of length 0). */
  async encoderCache(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>): Promise<T5Cache> {
    const { lastHiddenState, crossKeyValues } = await this.runEncoder(inputsEmbeds, attentionMask, true);
    const B = inputsEmbeds.dims[0];
    // onnxruntime takes zero-length dims: the same decoder graph serves the first pass and every step
    const empty = zeros('float32', [B, this.config.numHeads, 0, this.config.dKv]);
    return {
      encoderLastHiddenState: lastHiddenState,
      encoderAttentionMask: attentionMask,
      crossKeyValues,
      sourceRows: Array.from({ length: B }, (_, b) => b),
      selfKeyValues: Array.from({ length: this.config.numDecoderLayers }, (): KeyValue => [empty, empty]),
      steps: 0,
    };
  }

  async step(tokenIds: Tensor<'int64'>, cache: T5Cache): Promise<StepOutput<T5Cache>> {
    return this.decode(tokenIds, cache);
  }

  /**
   * Runs the decoder on `decoderInputIds` [B, T] after `cache.steps` cached tokens:
   * logits [B, T, V] for every fed position (T > 1 gives the full-forward logits
   * of a whole decoder sequence at once).
   */
  async decode(decoderInputIds: Tensor<'int64'>, cache: T5Cache): Promise<StepOutput<T5Cache>> {
    const B = cache.encoderAttentionMask.dims[0];
    this.core.checkIds('decoderInputIds', decoderInputIds);
    if (decoderInputIds.dims[0] !== B || decoderInputIds.dims[1] < 1) {
      throw new T5Error(
        'E_INPUT',
        `decoder input ids [${decoderInputIds.dims}] must be [${B}, >= 1] (the cache holds ${B} rows)`,
      );
    }
    const T = decoderInputIds.dims[1];
    const feeds: Record<string, AnyTensor> = {
      [T5_IO.decoder.inputIds]: decoderInputIds,
      [T5_IO.decoder.encoderAttentionMask]: cache.encoderAttentionMask,
      [T5_IO.decoder.positionBuckets]: positionBuckets(T, cache.steps + T, this.buckets(false)),
    };
    cache.selfKeyValues.forEach(([k, v], i) => {
      feeds[T5_IO.pastKey(i)] = k;
      feeds[T5_IO.pastValue(i)] = v;
    });
    cache.crossKeyValues.forEach(([k, v], i) => {
      feeds[T5_IO.crossKey(i)] = k;
      feeds[T5_IO.crossValue(i)] = v;
    });
    const { session: decoder, feeds: stepFeeds } = await this.core.stepFor(B * T, cache.beamIdx);
    const out = await decoder.runOnDevice({ ...feeds, ...stepFeeds });
    const selfKeyValues = cache.selfKeyValues.map(
      (_, i): KeyValue => [
        this.core.cacheOutput(out, T5_IO.presentKey(i), decoder.name),
        this.core.cacheOutput(out, T5_IO.presentValue(i), decoder.name),
      ],
    );
    const logits = this.core.output(out, T5_IO.decoder.logits, decoder.name);
    // the new cache replaces the old one's self-attention part (generation's contract); the encoder side is shared
    disposeAll(cache.selfKeyValues);
    const { beamIdx: _gathered, ...rest } = cache;
    return { logits, cache: { ...rest, selfKeyValues, steps: cache.steps + T } };
  }

  async reorderCache(cache: T5Cache, rows: readonly number[]): Promise<T5Cache> {
    if (this.core.keepsRows(rows, cache.encoderAttentionMask.dims[0])) return cache;
    const sourceRows = rows.map((r) => cache.sourceRows[r]);
    const same =
      sourceRows.length === cache.sourceRows.length && sourceRows.every((s, i) => s === cache.sourceRows[i]);
    const beamIdx = KvAdapterCore.composeRows(cache.beamIdx, rows);
    const deferred = this.core.defersReorder(rows.length, cache.selfKeyValues.flat());
    if (same && deferred) return { ...cache, beamIdx };
    // what moves now: the self-attention rows unless the next decoder run gathers them; the
    // encoder side once the batch changed shape (beams expanded) or rows moved across batch rows
    const self = deferred ? [] : cache.selfKeyValues;
    const cross = same ? [] : cache.crossKeyValues;
    let moved: KeyValue[];
    if (cache.beamIdx) {
      moved = [...(await this.gatherRows(self, beamIdx)), ...(await this.gatherRows(cross, rows))];
    } else moved = await this.gatherRows([...self, ...cross], rows); // one run of a device reorder graph
    const { beamIdx: _pending, ...rest } = cache;
    const selfPart = deferred
      ? { selfKeyValues: cache.selfKeyValues, beamIdx }
      : { selfKeyValues: moved.slice(0, self.length) };
    disposeAll(self);
    if (same) return { ...rest, ...selfPart };
    disposeAll(cross);
    return {
      ...rest,
      encoderLastHiddenState: gather(cache.encoderLastHiddenState, 0, rows),
      encoderAttentionMask: gather(cache.encoderAttentionMask, 0, rows),
      crossKeyValues: moved.slice(self.length),
      sourceRows,
      ...selfPart,
    };
  }

  /** Frees the cache's device buffers, self- and cross-attention (CPU tensors are left to the garbage collector). */
  async releaseCache(cache: T5Cache): Promise<void> {
    disposeAll(cache.selfKeyValues);
    disposeAll(cache.crossKeyValues);
  }

  /** `rows` of every key and value: on the device when they live there, else on the CPU. */
  private async gatherRows(kvs: readonly KeyValue[], rows: readonly number[]): Promise<KeyValue[]> {
    const moved = await this.core.gatherRows(kvs.flat(), rows);
    return kvs.map((_, i): KeyValue => [moved[2 * i], moved[2 * i + 1]]);
  }

  private buckets(bidirectional: boolean) {
    return {
      bidirectional,
      numBuckets: this.config.relativeAttentionNumBuckets,
      maxDistance: this.config.relativeAttentionMaxDistance,
    };
  }
}
