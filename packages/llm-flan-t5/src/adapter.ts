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
 * multiplying weight-first, when the adapter has it (`T5LoadOptions.batchedDecoder`).
 */
import type { T5Config } from '@blip2/configs';
import type { LanguageModelAdapter, StepOutput } from '@blip2/generation';
import { DeviceRowGather } from '@blip2/onnx';
import {
  type AnyTensor,
  type Backend,
  type BuiltGraph,
  disposeTensor,
  gather,
  isDeviceTensor,
  LazySession,
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
}

export interface T5LoadOptions {
  /**
   * When the weight-first decoder graph is loaded for runs of several rows:
   * 'lazy' on the first such run (greedy batch-1 use never creates the session),
   * 'eager' with the other graphs, 'never' (every run uses `decoder`).
   *
   * Default 'lazy' on 'node:cpu' and 'never' elsewhere: the weight-first layout pays off
   * where weights are mapped in place with pre-packing off (onnxruntime-node's CPU, where
   * Gemm re-packs the whole weight every run from 2 rows up); onnxruntime-web copies the
   * weights into each session, so another session would cost another copy of them.
   */
  readonly batchedDecoder?: 'lazy' | 'eager' | 'never';
}

/** A cache output: float32, on the CPU or on the backend's device. */
function asFloatAny(t: AnyTensor | undefined, name: string, session: string): AnyTensor<'float32'> {
  if (t?.dtype !== 'float32')
    throw new T5Error('E_SESSION', `${session}: output '${name}' is missing or not float32`);
  return t as AnyTensor<'float32'>;
}

/** An output read on the CPU (logits, hidden states). */
function asFloat(t: AnyTensor | undefined, name: string, session: string): Tensor<'float32'> {
  const f = asFloatAny(t, name, session);
  if (isDeviceTensor(f))
    throw new T5Error(
      'E_SESSION',
      `${session}: output '${name}' stayed on the ${f.location}; it must come back to the CPU`,
    );
  return f;
}

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
  /** reorders device-resident caches on the device; undefined without a backend (CPU caches only) */
  private readonly deviceGather: DeviceRowGather | undefined;
  /** the weight-first decoder: given, loaded on the first run of several rows, or absent */
  private readonly decoderBatched: LazySession | undefined;

  /**
   * `backend` is the one the sessions run on: beam search reorders a device cache with a
   * graph loaded there. `decoderBatched` (with `backend`) is the weight-first decoder graph
   * to load on the first run of several rows, when `sessions` has no such session.
   */
  constructor(
    readonly config: T5Config,
    private readonly sessions: T5Sessions,
    backend?: Backend,
    decoderBatched?: BuiltGraph,
  ) {
    this.decoderStartTokenId = config.decoderStartTokenId;
    this.vocabSize = config.vocabSize;
    this.deviceGather = backend && new DeviceRowGather(backend, 't5');
    if (sessions.decoderBatched) this.decoderBatched = LazySession.of(sessions.decoderBatched);
    else if (backend && decoderBatched) {
      const keepOnDevice = T5Adapter.presentOutputs(config.numDecoderLayers);
      this.decoderBatched = new LazySession(() => backend.load(decoderBatched, { keepOnDevice }));
    }
  }

  /** The decoder's present.* outputs: the self-attention cache the next run is fed. */
  static presentOutputs(numDecoderLayers: number): string[] {
    return Array.from({ length: numDecoderLayers }, (_, i) => [
      T5_IO.presentKey(i),
      T5_IO.presentValue(i),
    ]).flat();
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
    const batched = options.batchedDecoder ?? (backend.name === 'node:cpu' ? 'lazy' : 'never');
    const layers = Array.from({ length: config.numDecoderLayers }, (_, i) => i);
    const cross = layers.flatMap((i) => [T5_IO.crossKey(i), T5_IO.crossValue(i)]);
    const present = T5Adapter.presentOutputs(config.numDecoderLayers);
    const [embed, encoder, decoder, decoderBatched] = await Promise.all([
      backend.load(graphs.embed),
      backend.load(graphs.encoder, { keepOnDevice: cross }),
      backend.load(graphs.decoder, { keepOnDevice: present }),
      batched === 'eager' ? backend.load(graphs.decoderBatched, { keepOnDevice: present }) : undefined,
    ]);
    const lazy = batched === 'lazy' ? graphs.decoderBatched : undefined;
    return new T5Adapter(config, { embed, encoder, decoder, decoderBatched }, backend, lazy);
  }

  /** Releases the sessions (and the batched decoder and reorder graphs, if runs loaded them). */
  async release(): Promise<void> {
    await Promise.all([
      this.sessions.embed.release(),
      this.sessions.encoder.release(),
      this.sessions.decoder.release(),
      this.decoderBatched?.release(),
      this.deviceGather?.release(),
    ]);
  }

  async embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    this.checkIds(inputIds, 'embed: inputIds');
    const out = await this.sessions.embed.run({ [T5_IO.embed.inputIds]: inputIds });
    return asFloat(out[T5_IO.embed.inputsEmbeds], T5_IO.embed.inputsEmbeds, 't5.embed');
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
    return {
      lastHiddenState: out.lastHiddenState,
      crossKeyValues: out.crossKeyValues.map(
        ([k, v], i) =>
          [asFloat(k, T5_IO.crossKey(i), 't5.encoder'), asFloat(v, T5_IO.crossValue(i), 't5.encoder')] as [
            Tensor<'float32'>,
            Tensor<'float32'>,
          ],
      ),
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
        asFloatAny(out[T5_IO.crossKey(i)], T5_IO.crossKey(i), 't5.encoder'),
        asFloatAny(out[T5_IO.crossValue(i)], T5_IO.crossValue(i), 't5.encoder'),
      ],
    );
    return {
      lastHiddenState: asFloat(out[io.lastHiddenState], io.lastHiddenState, 't5.encoder'),
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
    this.checkIds(decoderInputIds, 'decoder input ids');
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
    const decoder = await this.decoderSession(B * T);
    const out = await decoder.runOnDevice(feeds);
    const selfKeyValues = cache.selfKeyValues.map(
      (_, i): KeyValue => [
        asFloatAny(out[T5_IO.presentKey(i)], T5_IO.presentKey(i), decoder.name),
        asFloatAny(out[T5_IO.presentValue(i)], T5_IO.presentValue(i), decoder.name),
      ],
    );
    const logits = asFloat(out[T5_IO.decoder.logits], T5_IO.decoder.logits, decoder.name);
    // the new cache replaces the old one's self-attention part (generation's contract); the encoder side is shared
    disposeAll(cache.selfKeyValues);
    return { logits, cache: { ...cache, selfKeyValues, steps: cache.steps + T } };
  }

  /**
   * The decoder graph for `rows` = batch x new tokens, the rows each matrix product
   * multiplies: Gemm's `decoder` for one, the weight-first one (if any) for more.
   */
  private async decoderSession(rows: number): Promise<Session> {
    if (rows <= 1 || !this.decoderBatched) return this.sessions.decoder;
    return this.decoderBatched.get();
  }

  async reorderCache(cache: T5Cache, rows: readonly number[]): Promise<T5Cache> {
    const B = cache.encoderAttentionMask.dims[0];
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= B) {
        throw new T5Error('E_CACHE', `reorderCache: row ${r} is not a row of the cache (${B} rows)`);
      }
    }
    // beams that all kept their own history: nothing to move (nor to free)
    if (rows.length === B && rows.every((r, i) => r === i)) return cache;
    const sourceRows = rows.map((r) => cache.sourceRows[r]);
    const same =
      sourceRows.length === cache.sourceRows.length && sourceRows.every((s, i) => s === cache.sourceRows[i]);
    // the batch changed shape (beams expanded) or rows moved across batch rows: move the encoder side once
    const moving = same ? cache.selfKeyValues : [...cache.selfKeyValues, ...cache.crossKeyValues];
    const moved = await this.gatherRows(moving, rows);
    const selfKeyValues = moved.slice(0, cache.selfKeyValues.length);
    disposeAll(cache.selfKeyValues);
    if (same) return { ...cache, selfKeyValues };
    disposeAll(cache.crossKeyValues);
    return {
      ...cache,
      encoderLastHiddenState: gather(cache.encoderLastHiddenState, 0, rows),
      encoderAttentionMask: gather(cache.encoderAttentionMask, 0, rows),
      crossKeyValues: moved.slice(cache.selfKeyValues.length),
      sourceRows,
      selfKeyValues,
    };
  }

  /** Frees the cache's device buffers, self- and cross-attention (CPU tensors are left to the garbage collector). */
  async releaseCache(cache: T5Cache): Promise<void> {
    disposeAll(cache.selfKeyValues);
    disposeAll(cache.crossKeyValues);
  }

  /** `rows` of every key and value: on the device when they live there, else on the CPU. */
  private async gatherRows(kvs: readonly KeyValue[], rows: readonly number[]): Promise<KeyValue[]> {
    const flat = kvs.flat();
    let moved: AnyTensor<'float32'>[];
    if (flat.some(isDeviceTensor)) {
      if (!this.deviceGather) {
        throw new T5Error(
          'E_CACHE',
          'reorderCache: the cache is on a device but the adapter has no backend to reorder it there (construct it with T5Adapter.load)',
        );
      }
      moved = await this.deviceGather.gather(flat, rows);
    } else moved = flat.map((t) => gather(t as Tensor<'float32'>, 0, rows));
    return kvs.map((_, i): KeyValue => [moved[2 * i], moved[2 * i + 1]]);
  }

  private buckets(bidirectional: boolean) {
    return {
      bidirectional,
      numBuckets: this.config.relativeAttentionNumBuckets,
      maxDistance: this.config.relativeAttentionMaxDistance,
    };
  }

  private checkIds(ids: Tensor<'int64'>, what: string): void {
    if (ids.dtype !== 'int64' || ids.dims.length !== 2) {
      throw new T5Error('E_INPUT', `${what} must be int64 [batch, tokens], got ${ids.dtype} [${ids.dims}]`);
    }
    for (let i = 0; i < ids.data.length; i++) {
      const id = ids.data[i];
      if (id < 0n || id >= BigInt(this.vocabSize)) {
        throw new T5Error(
          'E_INPUT',
          `${what}: token id ${id} at flat index ${i} is outside the vocabulary [0, ${this.vocabSize})`,
        );
      }
    }
  }
}
