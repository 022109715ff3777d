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
 * multiplying weight-first, when the adapter has it (@blip2/onnx's `KvLoadOptions.batchedStep`).
 * Beam search's reorder of a CPU self-attention cache copies nothing: the cache
 * remembers the rows (`beamIdx`) and the next run is `decoderReorder`, which gathers them.
 * The loading, the cache's feeds and outputs, the checks and the reorders are
 * @blip2/onnx's `KvAdapterCore`; this file keeps T5's encoder, its cross-attention
 * cache and its relative-position buckets.
 */
import type { T5Config } from '@blip2/configs';
import type { LanguageModelAdapter, StepOutput } from '@blip2/generation';
import {
  disposeLayers,
  KV_IO,
  KvAdapterCore,
  type KvLayers,
  type KvLoadOptions,
  type KvNames,
  type KvSteps,
} from '@blip2/onnx';
import {
  type AnyTensor,
  type Backend,
  gather,
  type Session,
  type Tensor,
  tensor,
  zeros,
} from '@blip2/tensor';
import { positionBuckets } from './buckets.js';
import { T5Error } from './errors.js';
import { T5_IO, type T5Graphs } from './modeling.js';

/** The encoder's outputs and the decoder's inputs: each decoder layer's cross-attention keys/values. */
const CROSS: KvNames = { key: T5_IO.crossKey, value: T5_IO.crossValue };

export interface T5Cache {
  /** float32 [B, S, D]: the encoder's output, one row per cache row */
  readonly encoderLastHiddenState: Tensor<'float32'>;
  /** int64 [B, S]: the encoder's padding mask (right padding), one row per cache row */
  readonly encoderAttentionMask: Tensor<'int64'>;
  /** per decoder layer, float32 [B, H, S, dKv]: computed once by the encoder (on the device when kept there) */
  readonly crossAttentionCache: KvLayers;
  /**
   * For each cache row, the prefill batch row its encoder tensors came from. Beam
   * search's per-step reorders stay within a batch row's beams, which share the
   * same encoder tensors: when this mapping does not change, they are not moved.
   */
  readonly sourceRows: readonly number[];
  /** per decoder layer, float32 [B, H, steps, dKv] (on the device when kept there) */
  readonly selfAttentionCache: KvLayers;
  /**
   * A reorder left to the next decoder run: row i of this cache's self-attention is row
   * beamIdx[i] of `selfAttentionCache` (which keeps the rows it had), gathered in the
   * decoder graph. Absent: `selfAttentionCache` holds the B rows in order.
   */
  readonly beamIdx?: readonly number[];
  /** decoder tokens fed so far (the start token included) */
  readonly steps: number;
}

export interface T5Sessions {
  readonly embed: Session;
  readonly encoder: Session;
  /**
   * The decoder sessions: `step` is `decoder`; `batched` is `decoderBatched` and `reorder`
   * `decoderReorder`, each a session or a graph to load on first use (without them every
   * run uses `decoder`).
   */
  readonly steps: KvSteps;
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
   * graph loaded there, and the graphs `sessions.steps` holds for first use load there
   * (`decoderBatched` on the first run of several rows, `decoderReorder` on the first
   * run after a reorder).
   */
  constructor(
    readonly config: T5Config,
    private readonly sessions: T5Sessions,
    backend?: Backend,
  ) {
    this.decoderStartTokenId = config.decoderStartTokenId;
    this.vocabSize = config.vocabSize;
    this.core = new KvAdapterCore({
      family: 't5',
      adapter: 'T5Adapter',
      vocabSize: config.vocabSize,
      numLayers: config.numDecoderLayers,
      error: (code, message) => new T5Error(code, message),
      ...sessions.steps,
      backend,
      sessions: [sessions.embed, sessions.encoder],
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
    options: KvLoadOptions = {},
  ): Promise<T5Adapter> {
    const layers = Array.from({ length: config.numDecoderLayers }, (_, i) => i);
    const cross = layers.flatMap((i) => [CROSS.key(i), CROSS.value(i)]);
    const { sessions, steps } = await KvAdapterCore.loadSessions(
      backend,
      { embed: graphs.embed, encoder: graphs.encoder },
      { step: graphs.decoder, batched: graphs.decoderBatched, reorder: graphs.decoderReorder },
      [...cross, ...KV_IO.presents(config.numDecoderLayers)],
      options,
    );
    return new T5Adapter(config, { ...sessions, steps }, backend);
  }

  /** Releases the sessions (and the batched decoder and reorder graphs, if runs loaded them). */
  async release(): Promise<void> {
    await this.core.release();
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
  ): Promise<{ lastHiddenState: Tensor<'float32'>; crossAttentionCache: KvLayers<Tensor<'float32'>> }> {
    const { out, lastHiddenState } = await this.runEncoder(inputsEmbeds, attentionMask, false);
    return {
      lastHiddenState,
      crossAttentionCache: this.core.cpuLayers(out, this.sessions.encoder.name, CROSS),
    };
  }

  /** Runs the encoder; with `onDevice`, the cross-attention keys/values stay where the backend keeps them. */
  private async runEncoder(
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
    onDevice: boolean,
  ): Promise<{ out: Record<string, AnyTensor>; lastHiddenState: Tensor<'float32'> }> {
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
    return { out, lastHiddenState: this.core.output(out, io.lastHiddenState, encoder.name) };
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
    const { out, lastHiddenState } = await this.runEncoder(inputsEmbeds, attentionMask, true);
    const B = inputsEmbeds.dims[0];
    // onnxruntime takes zero-length dims: the same decoder graph serves the first pass and every step
    const empty = Array.from({ length: this.config.numDecoderLayers }, () =>
      zeros('float32', [B, this.config.numHeads, 0, this.config.dKv]),
    );
    return {
      encoderLastHiddenState: lastHiddenState,
      encoderAttentionMask: attentionMask,
      crossAttentionCache: this.core.layers(out, this.sessions.encoder.name, CROSS),
      sourceRows: Array.from({ length: B }, (_, b) => b),
      selfAttentionCache: { keys: empty, values: empty },
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
    const { session: decoder, feeds: stepFeeds } = await this.core.stepFor(B * T, cache.beamIdx);
    const out = await decoder.runOnDevice({
      [T5_IO.decoder.inputIds]: decoderInputIds,
      [T5_IO.decoder.encoderAttentionMask]: cache.encoderAttentionMask,
      [T5_IO.decoder.positionBuckets]: positionBuckets(T, cache.steps + T, this.buckets(false)),
      ...this.core.feeds(cache.selfAttentionCache),
      ...this.core.feeds(cache.crossAttentionCache, CROSS),
      ...stepFeeds,
    });
    const selfAttentionCache = this.core.layers(out, decoder.name);
    const logits = this.core.output(out, T5_IO.decoder.logits, decoder.name);
    // the new cache replaces the old one's self-attention part (generation's contract); the encoder side is shared
    disposeLayers(cache.selfAttentionCache);
    const { beamIdx: _gathered, ...rest } = cache;
    return { logits, cache: { ...rest, selfAttentionCache, steps: cache.steps + T } };
  }

  async reorderCache(cache: T5Cache, rows: readonly number[]): Promise<T5Cache> {
    if (this.core.keepsRows(rows, cache.encoderAttentionMask.dims[0])) return cache;
    const sourceRows = rows.map((r) => cache.sourceRows[r]);
    const same =
      sourceRows.length === cache.sourceRows.length && sourceRows.every((s, i) => s === cache.sourceRows[i]);
    const beamIdx = KvAdapterCore.composeRows(cache.beamIdx, rows);
    const self = cache.selfAttentionCache;
    const deferred = this.core.defersReorder(rows.length, [...self.keys, ...self.values]);
    if (same && deferred) return { ...cache, beamIdx };
    // what moves now: the self-attention rows unless the next decoder run gathers them; the
    // encoder side once the batch changed shape (beams expanded) or rows moved across batch rows
    const cross = cache.crossAttentionCache;
    let movedSelf: KvLayers | undefined;
    let movedCross: KvLayers | undefined;
    if (deferred) [movedCross] = await this.core.gatherLayers([cross], rows);
    else if (same) [movedSelf] = await this.core.gatherLayers([self], beamIdx);
    else if (cache.beamIdx) {
      [movedSelf] = await this.core.gatherLayers([self], beamIdx);
      [movedCross] = await this.core.gatherLayers([cross], rows);
    } else [movedSelf, movedCross] = await this.core.gatherLayers([self, cross], rows); // one run of a device reorder graph
    const { beamIdx: _pending, ...rest } = cache;
    const selfPart = movedSelf ? { selfAttentionCache: movedSelf } : { selfAttentionCache: self, beamIdx };
    if (movedSelf) disposeLayers(self);
    if (!movedCross) return { ...rest, ...selfPart };
    disposeLayers(cross);
    return {
      ...rest,
      encoderLastHiddenState: gather(cache.encoderLastHiddenState, 0, rows),
      encoderAttentionMask: gather(cache.encoderAttentionMask, 0, rows),
      crossAttentionCache: movedCross,
      sourceRows,
      ...selfPart,
    };
  }

  /** Frees the cache's device buffers, self- and cross-attention (CPU tensors are left to the garbage collector). */
  async releaseCache(cache: T5Cache): Promise<void> {
    disposeLayers(cache.selfAttentionCache, cache.crossAttentionCache);
  }

  private buckets(bidirectional: boolean) {
    return {
      bidirectional,
      numBuckets: this.config.relativeAttentionNumBuckets,
      maxDistance: this.config.relativeAttentionMaxDistance,
    };
  }
}
