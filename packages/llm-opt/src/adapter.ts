/**
 * OPT behind generation's `LanguageModelAdapter`: the three graphs of ./opt.ts
 * loaded as `Session`s on any backend, and the key/value cache kept between
 * steps where the backend computes (`keepOnDevice`: GPU buffers on WebGPU, plain
 * CPU tensors elsewhere). The cache carries the running attention mask, because
 * OPT derives its positions from it (cumsum over attended tokens), so a
 * left-padded row keeps counting from its own first real token.
 *
 * A step of one row (greedy, batch 1) runs the `step` graph (on the CPU `stepAppend`,
 * which appends into free slots of the cache's buffers); a step of several rows
 * (beams, batches) runs a weight-first twin when the adapter has one (see
 * @blip2/onnx's `KvLoadOptions.batchedStep`): on the CPU `stepBeams`, on a device
 * `stepBatched`. With `stepBeams` the cache never moves: each row appends into its own
 * buffer row, and beam search's reorder only picks rows of `pastRows` (which buffer row
 * holds each row's token at each slot) and of the mask, a few hundred ints. The
 * loading, the cache's feeds and outputs, the checks and the device reorders are
 * @blip2/onnx's `KvAdapterCore`; this file keeps OPT's graphs, slots, masks and positions.
 *
 * A backend that copies the weights into every session (`sharedWeights: false`,
 * onnxruntime-web) would hold the decoder twice, prefill's and step's: 2 x 1.7 GB for
 * an int4 blip2-opt-2.7b, past wasm's 4 GiB. There the adapter loads only `embed` and
 * `decoder`, and runs both through the decoder: the prompt over a past of one masked
 * position of zeros (a left pad: its scores are masked to zero weight and OPT's
 * positions count only attended tokens, so the numbers are the prefill's), each step
 * over the embeddings of its ids.
 */
import type { OPTConfig } from '@blip2/configs';
import type { LanguageModelAdapter, StepOutput } from '@blip2/generation';
import {
  disposeLayers,
  gatherSlots,
  KV_APPENDED,
  KV_IO,
  KvAdapterCore,
  type KvLayers,
  type KvLoadOptions,
  type KvSteps,
  maskFilled,
  maskWithCapacity,
  ownRows,
  ownSlot,
  SLOT_ROOM,
  type SlotClaim,
  withCapacity,
  writeSlots,
} from '@blip2/onnx';
import {
  type AnyTensor,
  type Backend,
  type BuiltGraph,
  concat,
  gather,
  isDeviceTensor,
  type LazySession,
  type Session,
  slice,
  type Tensor,
  tensor,
} from '@blip2/tensor';
import { OptError } from './errors.js';
import { OPT_IO, type OptGraphs } from './opt.js';

/** Per layer, keys and values float32 [B, num_heads, L, head_dim]; on the backend's device when it keeps them there. */
export interface OptCache extends KvLayers {
  /** int64 [B, L]: the prompt's mask followed by a 1 per generated token, and 0 on free slots */
  readonly attentionMask: Tensor<'int64'>;
  /**
   * Slots [0, filled) hold tokens; [filled, L) are free, for steps that append in place
   * (`stepAppend`). Absent: all L are filled.
   */
  readonly filled?: number;
  /** who may append to these buffers in place (absent: a step copies them first) */
  readonly claim?: SlotClaim;
  /**
   * int64 [B, L], a cache kept in place for `stepBeams`: row b's token at slot t lies in
   * row pastRows[b, t] of `keys` and `values` (whose rows are then the buffers', any
   * number of them: beam search's reorders pick rows of this table, not of the cache).
   * Absent: row b of `keys` and `values` holds row b's tokens.
   */
  readonly pastRows?: Tensor<'int64'>;
}

export interface OptSessions {
  readonly embed: Session;
  readonly prefill: Session;
  /** every position's logits (`forward`): its session, or its graph to load on first use (with a backend) */
  readonly forward?: Session | BuiltGraph;
  /**
   * The step sessions: `step` is `step` or `stepAppend` (the adapter tells them apart by
   * their outputs); `batched` is `stepBeams` or `stepBatched` (told apart by their
   * inputs), a session or a graph to load on first use (without it every step runs `step`).
   */
  readonly steps: KvSteps;
  /**
   * The `decoder` graph: when given, `prefill` and `step` both run it (and `prefill` /
   * `steps.step` are this same session), see the class comment.
   */
  readonly decoder?: Session;
}

/** A session whose outputs are the new keys/values only (`stepAppend`), not the grown cache. */
function appends(session: Session): boolean {
  return session.outputNames.includes(KV_IO.appendedKey(0));
}

/** A step (session, or graph not loaded yet) over buffers assigned by `past_rows` (`stepBeams`). */
function takesPastRows(step: Session | BuiltGraph | undefined): boolean {
  const name = OPT_IO.stepBeams.pastRows;
  if (!step) return false;
  return 'run' in step ? step.inputNames.includes(name) : step.inputs.some((io) => io.name === name);
}

export class OptAdapter implements LanguageModelAdapter<OptCache> {
  readonly kind = 'decoder-only' as const;
  readonly vocabSize: number;
  readonly maxPositions: number;
  /** id and output checks, the step session for a number of rows, cache reorders */
  private readonly core: KvAdapterCore;
  /** the full-logits forward: generation never needs it, so it loads on the first `forward` */
  private readonly forwardSession: LazySession | undefined;
  /** steps of several rows run `stepBeams`: a CPU cache is reordered in place (`pastRows`) */
  private readonly beamsInPlace: boolean;

  /**
   * `backend` is the one the sessions run on: beam search reorders a device cache with a
   * graph loaded there, and the graphs `sessions` holds for first use load there
   * (`stepBeams` or `stepBatched` on the first step of several rows, `forward` on the
   * first `forward` call).
   */
  constructor(
    readonly config: OPTConfig,
    private readonly sessions: OptSessions,
    backend?: Backend,
  ) {
    this.vocabSize = config.vocabSize;
    this.maxPositions = config.maxPositionEmbeddings;
    this.core = new KvAdapterCore({
      family: 'opt',
      adapter: 'OptAdapter',
      vocabSize: config.vocabSize,
      numLayers: config.numHiddenLayers,
      error: (code, message) => new OptError(code, message),
      ...sessions.steps,
      backend,
      sessions: [sessions.embed, sessions.prefill],
    });
    this.forwardSession = this.core.lazyOf(sessions.forward);
    this.beamsInPlace = takesPastRows(sessions.steps.batched);
  }

  /**
   * Loads the graphs of `buildOpt` on `backend`, asking it to keep the key/value cache on
   * its device between steps (a no-op where outputs already live with compute).
   */
  static async load(
    config: OPTConfig,
    graphs: OptGraphs,
    backend: Backend,
    options: KvLoadOptions = {},
  ): Promise<OptAdapter> {
    const keepOnDevice = KV_IO.presents(config.numHiddenLayers);
    if (!backend.capabilities.sharedWeights) {
      const { sessions, steps } = await KvAdapterCore.loadSessions(
        backend,
        { embed: graphs.embed },
        { step: graphs.decoder },
        keepOnDevice,
      );
      const decoder = steps.step;
      return new OptAdapter(
        config,
        { ...sessions, prefill: decoder, decoder, steps, forward: graphs.forward },
        backend,
      );
    }
    // where outputs come back to JavaScript anyway, steps append into the cache's buffers
    // (beams into their own rows); a device keeps the cache in its own memory, grown by
    // the step graph, and reorders it there
    const onDevice = backend.capabilities.deviceOutputs;
    const { sessions, steps } = await KvAdapterCore.loadSessions(
      backend,
      { embed: graphs.embed, prefill: graphs.prefill },
      onDevice
        ? { step: graphs.step, batched: graphs.stepBatched }
        : { step: graphs.stepAppend, batched: graphs.stepBeams },
      keepOnDevice,
      options,
    );
    return new OptAdapter(config, { ...sessions, steps, forward: graphs.forward }, backend);
  }

  async embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    this.core.checkIds('inputIds', inputIds);
    const out = await this.sessions.embed.run({ [OPT_IO.embed.inputIds]: inputIds });
    return this.core.output(out, OPT_IO.embed.inputsEmbeds, this.sessions.embed.name);
  }

  async prefill(
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
  ): Promise<StepOutput<OptCache>> {
    this.checkPrompt(inputsEmbeds, attentionMask);
    if (this.sessions.decoder) return this.decode(inputsEmbeds, attentionMask, this.padPast(attentionMask));
    const out = await this.sessions.prefill.runOnDevice({
      [OPT_IO.prefill.inputsEmbeds]: inputsEmbeds,
      [OPT_IO.prefill.attentionMask]: attentionMask,
    });
    return {
      logits: this.core.output(out, OPT_IO.prefill.logits, this.sessions.prefill.name),
      cache: this.cacheFrom(out, attentionMask, this.sessions.prefill.name),
    };
  }

  /** A past of one masked position of zeros before the prompt (a left pad), for the decoder graph. */
  private padPast(attentionMask: Tensor<'int64'>): OptCache {
    const [b] = attentionMask.dims;
    const h = this.config.numAttentionHeads;
    const dh = this.config.hiddenSize / h;
    const zeros = () => tensor('float32', [b, h, 1, dh], new Float32Array(b * h * dh));
    const layers = Array.from({ length: this.config.numHiddenLayers }, zeros);
    return { keys: layers, values: layers, attentionMask: tensor('int64', [b, 1], new BigInt64Array(b)) };
  }

  /** The decoder graph over `past`: the new tokens' embeddings, their mask appended to the past's. */
  private async decode(
    inputsEmbeds: Tensor<'float32'>,
    newMask: Tensor<'int64'>,
    past: OptCache,
  ): Promise<StepOutput<OptCache>> {
    const session = this.sessions.decoder as Session;
    const attentionMask = concat([past.attentionMask, newMask], 1);
    const out = await session.runOnDevice({
      [OPT_IO.decoder.inputsEmbeds]: inputsEmbeds,
      [OPT_IO.decoder.attentionMask]: attentionMask,
      ...this.core.feeds(past),
    });
    return {
      logits: this.core.output(out, OPT_IO.decoder.logits, session.name),
      cache: this.cacheFrom(out, attentionMask, session.name),
    };
  }

  /**
   * Logits at every position of the prompt, float32 [B, T, V] (transformers'
   * `OPTForCausalLM.forward` without a cache): for scoring and teacher forcing.
   * `prefill` returns only the last position's, all that generation reads.
   */
  async forward(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    this.checkPrompt(inputsEmbeds, attentionMask);
    if (!this.forwardSession)
      throw new OptError('E_INPUT', 'this adapter was made without the forward graph (buildOpt builds it)');
    const session = await this.forwardSession.get();
    const out = await session.run({
      [OPT_IO.forward.inputsEmbeds]: inputsEmbeds,
      [OPT_IO.forward.attentionMask]: attentionMask,
    });
    return this.core.output(out, OPT_IO.forward.logits, session.name);
  }

  private checkPrompt(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>): void {
    const dw = this.config.wordEmbedProjDim;
    if (inputsEmbeds.dtype !== 'float32' || inputsEmbeds.dims.length !== 3 || inputsEmbeds.dims[2] !== dw) {
      throw new OptError(
        'E_INPUT',
        `inputsEmbeds must be float32 [batch, sequence, ${dw}], got ${inputsEmbeds.dtype} [${inputsEmbeds.dims}]`,
      );
    }
    const [b, t] = inputsEmbeds.dims;
    checkMask(attentionMask, b, t);
    // the reference would index past its position table; say so before anything runs
    const attended = attendedPerRow(attentionMask);
    attended.forEach((n, row) => {
      if (n > this.maxPositions) {
        throw new OptError(
          'E_PROMPT_TOO_LONG',
          `prompt row ${row} attends to ${n} tokens; max_position_embeddings is ${this.maxPositions}`,
        );
      }
    });
  }

  async step(tokenIds: Tensor<'int64'>, cache: OptCache): Promise<StepOutput<OptCache>> {
    this.core.checkIds('tokenIds', tokenIds);
    const [b, s] = tokenIds.dims;
    if (b !== cache.attentionMask.dims[0]) {
      throw new OptError(
        'E_INPUT',
        `tokenIds has ${b} rows but the cache holds ${cache.attentionMask.dims[0]}`,
      );
    }
    const ones = tensor('int64', [b, s], new BigInt64Array(b * s).fill(1n));
    const attentionMask = concat([cache.attentionMask, ones], 1);
    const longest = Math.max(...attendedPerRow(attentionMask));
    if (longest > this.maxPositions) {
      throw new OptError(
        'E_SEQUENCE_TOO_LONG',
        `the sequence would reach ${longest} tokens; max_position_embeddings is ${this.maxPositions}`,
      );
    }
    if (this.sessions.decoder) {
      const next = await this.decode(await this.embed(tokenIds), ones, cache);
      await this.releaseCache(cache);
      return next;
    }
    const { session } = await this.core.stepFor(b * s);
    if (takesPastRows(session)) {
      if (s === 1) return this.beamStep(session, tokenIds, cache);
      // several new tokens per row: the one-row step's graph (any rows), row by row
      return this.appendStep((await this.core.stepFor(1)).session, tokenIds, rowByRow(cache));
    }
    if (appends(session)) return this.appendStep(session, tokenIds, rowByRow(cache));
    const out = await session.runOnDevice({
      [OPT_IO.step.inputIds]: tokenIds,
      [OPT_IO.step.attentionMask]: attentionMask,
      ...this.core.feeds(cache),
    });
    const next = {
      logits: this.core.output(out, OPT_IO.step.logits, session.name),
      cache: this.cacheFrom(out, attentionMask, session.name),
    };
    // the step replaced the cache it was given (generation's contract): free its device buffers now
    await this.releaseCache(cache);
    return next;
  }

  /**
   * A step of `stepAppend`: the new tokens' keys/values go into free slots of the cache's
   * buffers, in place; the buffers are copied into larger ones first when they are a
   * session's outputs, full, or already appended to by a step from this same cache.
   */
  private async appendStep(
    session: Session,
    tokenIds: Tensor<'int64'>,
    cache: OptCache,
  ): Promise<StepOutput<OptCache>> {
    const [b, s] = tokenIds.dims;
    const capacity = cache.attentionMask.dims[1];
    const filled = cache.filled ?? capacity;
    let keys = cache.keys as readonly Tensor<'float32'>[];
    let values = cache.values as readonly Tensor<'float32'>[];
    let mask = cache.attentionMask;
    let claim = cache.claim;
    if (!claim || claim.claimed !== filled || filled + s > capacity) {
      const room = filled + s + SLOT_ROOM;
      keys = keys.map((t) => withCapacity(t, filled, room));
      values = values.map((t) => withCapacity(t, filled, room));
      mask = maskWithCapacity(mask, filled, room);
      claim = { claimed: filled };
    }
    const out = await session.run({
      [OPT_IO.step.inputIds]: tokenIds,
      [OPT_IO.step.attentionMask]: concat(
        [mask, tensor('int64', [b, s], new BigInt64Array(b * s).fill(1n))],
        1,
      ),
      ...this.core.feeds({ keys, values }),
    });
    const appended = this.core.cpuLayers(out, session.name, KV_APPENDED);
    for (let i = 0; i < this.config.numHiddenLayers; i++) {
      writeSlots(keys[i], filled, appended.keys[i]);
      writeSlots(values[i], filled, appended.values[i]);
    }
    claim.claimed = filled + s;
    return {
      logits: this.core.output(out, OPT_IO.step.logits, session.name),
      cache: { keys, values, attentionMask: maskFilled(mask, filled, s), filled: filled + s, claim },
    };
  }

  /**
   * A step of `stepBeams` (one new token per row): row b's key/value goes into slot
   * `filled` of buffer row b, in place, and `pastRows` records it there. The buffers are
   * copied into larger ones first when they are a session's outputs, full, already
   * appended to by a step from this same cache, or fewer than the rows (beams just
   * expanded from their prompt's rows: the only copy of a beam search's cache).
   */
  private async beamStep(
    session: Session,
    tokenIds: Tensor<'int64'>,
    cache: OptCache,
  ): Promise<StepOutput<OptCache>> {
    const [b] = tokenIds.dims;
    const capacity = cache.attentionMask.dims[1];
    const filled = cache.filled ?? capacity;
    let keys = cache.keys as readonly Tensor<'float32'>[];
    let values = cache.values as readonly Tensor<'float32'>[];
    let mask = cache.attentionMask;
    let pastRows = cache.pastRows ?? ownRows(b, capacity);
    let claim = cache.claim;
    const bufferRows = keys[0].dims[0];
    if (!claim || claim.claimed !== filled || filled + 1 > capacity || bufferRows < b) {
      const room = filled + 1 + SLOT_ROOM;
      const grown = (t: Tensor<'float32'>) => withCapacity(t, filled, room, Math.max(bufferRows, b));
      keys = keys.map(grown);
      values = values.map(grown);
      mask = maskWithCapacity(mask, filled, room);
      pastRows = maskWithCapacity(pastRows, filled, room);
      claim = { claimed: filled };
    }
    const out = await session.run({
      [OPT_IO.stepBeams.inputIds]: tokenIds,
      [OPT_IO.stepBeams.attentionMask]: concat(
        [mask, tensor('int64', [b, 1], new BigInt64Array(b).fill(1n))],
        1,
      ),
      [OPT_IO.stepBeams.pastRows]: pastRows,
      ...this.core.feeds({ keys, values }),
    });
    const appended = this.core.cpuLayers(out, session.name, KV_APPENDED);
    for (let i = 0; i < this.config.numHiddenLayers; i++) {
      writeSlots(keys[i], filled, appended.keys[i]);
      writeSlots(values[i], filled, appended.values[i]);
    }
    claim.claimed = filled + 1;
    return {
      logits: this.core.output(out, OPT_IO.stepBeams.logits, session.name),
      cache: {
        keys,
        values,
        attentionMask: maskFilled(mask, filled, 1),
        pastRows: ownSlot(pastRows, filled),
        filled: filled + 1,
        claim,
      },
    };
  }

  async reorderCache(cache: OptCache, rows: readonly number[]): Promise<OptCache> {
    const n = cache.attentionMask.dims[0];
    if (this.core.keepsRows(rows, n)) return cache;
    const attentionMask = gather(cache.attentionMask, 0, rows);
    if (this.beamsInPlace && ![...cache.keys, ...cache.values].some(isDeviceTensor)) {
      // nothing moves: row b now has the history of row rows[b], wherever it lies
      const pastRows = gather(cache.pastRows ?? ownRows(n, attentionMask.dims[1]), 0, rows);
      return { ...cache, attentionMask, pastRows };
    }
    const [moved] = await this.core.gatherLayers([cache], rows);
    const { filled } = cache;
    // fresh buffers: steps may append into their free slots
    const slots = filled === undefined ? {} : { filled, claim: { claimed: filled } };
    await this.releaseCache(cache);
    return { ...moved, attentionMask, ...slots };
  }

  /** Frees the cache's device buffers (CPU tensors are left to the garbage collector). */
  async releaseCache(cache: OptCache): Promise<void> {
    disposeLayers(cache);
  }

  /** Releases the sessions (and the batched step, reorder and forward graphs, if they were loaded). */
  async release(): Promise<void> {
    await this.core.release();
  }

  private cacheFrom(
    out: Record<string, AnyTensor>,
    attentionMask: Tensor<'int64'>,
    session: string,
  ): OptCache {
    return { ...this.core.layers(out, session), attentionMask };
  }
}

/**
 * `cache` with row b's tokens in row b of its keys and values, for the steps that read
 * it so: the same cache when it is already, else its filled slots gathered into new
 * tensors by `pastRows` (a beam cache stepped with several tokens per row, or reordered
 * down to one row: never in beam search).
 */
function rowByRow(cache: OptCache): OptCache {
  const { pastRows } = cache;
  if (!pastRows) return cache;
  const filled = cache.filled ?? pastRows.dims[1];
  const gathered = (t: AnyTensor<'float32'>) => gatherSlots(t as Tensor<'float32'>, pastRows, filled);
  return {
    keys: cache.keys.map(gathered),
    values: cache.values.map(gathered),
    attentionMask: slice(cache.attentionMask, 1, 0, filled),
  };
}

function checkMask(mask: Tensor<'int64'>, b: number, t: number): void {
  if (mask.dtype !== 'int64' || mask.dims.length !== 2 || mask.dims[0] !== b || mask.dims[1] !== t) {
    throw new OptError(
      'E_INPUT',
      `attentionMask must be int64 [${b}, ${t}] like inputsEmbeds, got ${mask.dtype} [${mask.dims}]`,
    );
  }
  for (let i = 0; i < mask.data.length; i++) {
    if (mask.data[i] !== 0n && mask.data[i] !== 1n) {
      throw new OptError(
        'E_INPUT',
        `attentionMask[${Math.floor(i / t)}, ${i % t}] = ${mask.data[i]}; only 0 and 1 are allowed`,
      );
    }
  }
}

/** Tokens each row attends to: the length its positions run to. */
function attendedPerRow(mask: Tensor<'int64'>): number[] {
  const [b, l] = mask.dims;
  const out: number[] = [];
  for (let row = 0; row < b; row++) {
    let n = 0;
    for (let j = 0; j < l; j++) n += Number(mask.data[row * l + j]);
    out.push(n);
  }
  return out;
}
