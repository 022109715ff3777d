/**
 * Flan-T5 behind generation's adapter interface. `prefill` runs the encoder once
 * (which also projects every decoder layer's cross-attention keys/values) and the
 * decoder on `decoder_start_token_id`; `step` feeds one token with the growing
 * self-attention cache. Runs on any backend: it only sees `Session`s.
 */
import type { T5Config } from '@blip2/configs';
import type { LanguageModelAdapter, StepOutput } from '@blip2/generation';
import { type Backend, gather, type Session, type Tensor, tensor, zeros } from '@blip2/tensor';
import { positionBuckets } from './buckets.js';
import { T5Error } from './errors.js';
import { T5_IO, type T5Graphs } from './modeling.js';

export interface T5Cache {
  /** float32 [B, S, D]: the encoder's output, one row per cache row */
  readonly encoderLastHiddenState: Tensor<'float32'>;
  /** int64 [B, S]: the encoder's padding mask (right padding), one row per cache row */
  readonly encoderAttentionMask: Tensor<'int64'>;
  /** per decoder layer [key, value], float32 [B, H, S, dKv]: computed once by the encoder */
  readonly crossKeyValues: readonly (readonly [Tensor<'float32'>, Tensor<'float32'>])[];
  /**
   * For each cache row, the prefill batch row its encoder tensors came from. Beam
   * search's per-step reorders stay within a batch row's beams, which share the
   * same encoder tensors: when this mapping does not change, they are not moved.
   */
  readonly sourceRows: readonly number[];
  /** per decoder layer [key, value], float32 [B, H, steps, dKv] */
  readonly selfKeyValues: readonly (readonly [Tensor<'float32'>, Tensor<'float32'>])[];
  /** decoder tokens fed so far (the start token included) */
  readonly steps: number;
}

export interface T5Sessions {
  readonly embed: Session;
  readonly encoder: Session;
  readonly decoder: Session;
}

function asFloat(t: Tensor | undefined, name: string, session: string): Tensor<'float32'> {
  if (t?.dtype !== 'float32')
    throw new T5Error('E_SESSION', `${session}: output '${name}' is missing or not float32`);
  return t as Tensor<'float32'>;
}

export class T5Adapter implements LanguageModelAdapter<T5Cache> {
  readonly kind = 'encoder-decoder' as const;
  readonly decoderStartTokenId: number;
  readonly vocabSize: number;
  readonly maxPositions = undefined;

  constructor(
    readonly config: T5Config,
    private readonly sessions: T5Sessions,
  ) {
    this.decoderStartTokenId = config.decoderStartTokenId;
    this.vocabSize = config.vocabSize;
  }

  /** Loads the three graphs of `buildT5` on `backend`. */
  static async load(config: T5Config, graphs: T5Graphs, backend: Backend): Promise<T5Adapter> {
    const [embed, encoder, decoder] = await Promise.all([
      backend.load(graphs.embed),
      backend.load(graphs.encoder),
      backend.load(graphs.decoder),
    ]);
    return new T5Adapter(config, { embed, encoder, decoder });
  }

  async release(): Promise<void> {
    await Promise.all([
      this.sessions.embed.release(),
      this.sessions.encoder.release(),
      this.sessions.decoder.release(),
    ]);
  }

  async embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    this.checkIds(inputIds, 'embed: inputIds');
    const out = await this.sessions.embed.run({ [T5_IO.embed.inputIds]: inputIds });
    return asFloat(out[T5_IO.embed.inputsEmbeds], T5_IO.embed.inputsEmbeds, 't5.embed');
  }

  /** The encoder alone: last hidden state [B, S, D] and the cross-attention keys/values of every decoder layer. */
  async encode(
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
  ): Promise<{
    lastHiddenState: Tensor<'float32'>;
    crossKeyValues: [Tensor<'float32'>, Tensor<'float32'>][];
  }> {
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
    const out = await this.sessions.encoder.run({
      [io.inputsEmbeds]: inputsEmbeds,
      [io.attentionMask]: attentionMask,
      [io.positionBuckets]: positionBuckets(S, S, this.buckets(true)),
    });
    const crossKeyValues = Array.from({ length: this.config.numDecoderLayers }, (_, i) => {
      const k = asFloat(out[T5_IO.crossKey(i)], T5_IO.crossKey(i), 't5.encoder');
      const v = asFloat(out[T5_IO.crossValue(i)], T5_IO.crossValue(i), 't5.encoder');
      return [k, v] as [Tensor<'float32'>, Tensor<'float32'>];
    });
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
    const { lastHiddenState, crossKeyValues } = await this.encode(inputsEmbeds, attentionMask);
    const B = inputsEmbeds.dims[0];
    // onnxruntime takes zero-length dims: the same decoder graph serves the first pass and every step
    const empty = zeros('float32', [B, this.config.numHeads, 0, this.config.dKv]);
    return {
      encoderLastHiddenState: lastHiddenState,
      encoderAttentionMask: attentionMask,
      crossKeyValues,
      sourceRows: Array.from({ length: B }, (_, b) => b),
      selfKeyValues: Array.from({ length: this.config.numDecoderLayers }, () => [empty, empty] as const),
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
    const feeds: Record<string, Tensor> = {
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
    const out = await this.sessions.decoder.run(feeds);
    const selfKeyValues = cache.selfKeyValues.map(
      (_, i) =>
        [
          asFloat(out[T5_IO.presentKey(i)], T5_IO.presentKey(i), 't5.decoder'),
          asFloat(out[T5_IO.presentValue(i)], T5_IO.presentValue(i), 't5.decoder'),
        ] as const,
    );
    return {
      logits: asFloat(out[T5_IO.decoder.logits], T5_IO.decoder.logits, 't5.decoder'),
      cache: { ...cache, selfKeyValues, steps: cache.steps + T },
    };
  }

  async reorderCache(cache: T5Cache, rows: readonly number[]): Promise<T5Cache> {
    const B = cache.encoderAttentionMask.dims[0];
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= B) {
        throw new T5Error('E_CACHE', `reorderCache: row ${r} is not a row of the cache (${B} rows)`);
      }
    }
    const selfKeyValues = cache.selfKeyValues.map(
      ([k, v]) => [gather(k, 0, rows), gather(v, 0, rows)] as const,
    );
    const sourceRows = rows.map((r) => cache.sourceRows[r]);
    const same =
      sourceRows.length === cache.sourceRows.length && sourceRows.every((s, i) => s === cache.sourceRows[i]);
    if (same) return { ...cache, selfKeyValues };
    // the batch changed shape (beams expanded) or rows moved across batch rows: move the encoder side once
    return {
      ...cache,
      encoderLastHiddenState: gather(cache.encoderLastHiddenState, 0, rows),
      encoderAttentionMask: gather(cache.encoderAttentionMask, 0, rows),
      crossKeyValues: cache.crossKeyValues.map(([k, v]) => [gather(k, 0, rows), gather(v, 0, rows)] as const),
      sourceRows,
      selfKeyValues,
    };
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
