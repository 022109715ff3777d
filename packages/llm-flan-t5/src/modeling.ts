/**
 * Flan-T5 as BLIP-2 uses it (transformers' `modeling_t5.py`), built as ONNX graphs
 * over the checkpoint's own weights. Read top to bottom like the reference:
 * `T5LayerNorm`, `T5DenseActDense` / `T5DenseGatedActDense`, `T5Attention`, the
 * encoder and decoder `T5Stack`s, then the graphs the adapter runs.
 *
 * Where this differs in form (not in numbers) from the reference:
 * - the relative position buckets are computed on the CPU (./buckets.ts) and fed
 *   as int64 `position_buckets`; the graph only gathers `relative_attention_bias`;
 * - the decoder's cross-attention keys/values are projected once, in the encoder
 *   graph, from the encoder output (the reference computes them in the first
 *   decoder pass and caches them); the decoder graph takes them as inputs;
 * - one decoder graph serves the first pass and every step: its self-attention
 *   cache input has length 0 on the first pass;
 * - that decoder comes twice: `decoder` multiplies with Gemm over the stored
 *   [out, in] weights, `decoderBatched` weight-first (`linear`'s `weightFirst`,
 *   y^T = W x^T). Same numbers; with weights mapped in place (pre-packing off)
 *   Gemm re-packs every weight on every run from 2 rows up, so steps of several
 *   rows (beams, batches) run the second, one-row steps the first;
 * - `decoderReorder` is `decoderBatched` that first picks (and repeats) rows of the
 *   self-attention cache by `beam_idx`: beam search's reorder (the reference's
 *   `_reorder_cache`) inside the step instead of a copy in JavaScript. The
 *   cross-attention cache is not reordered: a batch row's beams share it.
 */
import type { T5Config } from '@blip2/configs';
import {
  add,
  cast,
  concat,
  div,
  FLOAT32_MIN,
  GraphBuildError,
  GraphBuilder,
  gather,
  gelu,
  geluTanh,
  KV_IO,
  matmul,
  matmulTransB,
  mul,
  reduceMean,
  relu,
  reshape,
  softmax,
  sqrt,
  sub,
  transpose,
  unsqueeze,
  type Value,
  type WeightLookup,
  WeightScope,
  where,
} from '@blip2/onnx';
import type { BuiltGraph, GraphIO } from '@blip2/tensor';
import { T5Error } from './errors.js';

export interface T5BuildOptions {
  /** Prefix of the language model's weights in the checkpoint (default 'language_model.'). */
  readonly prefix?: string;
}

/** The graphs of one T5 language model. */
export interface T5Graphs {
  /** `shared` token embeddings: input_ids -> inputs_embeds */
  readonly embed: BuiltGraph;
  /** encoder stack, plus each decoder layer's cross-attention keys/values of its output */
  readonly encoder: BuiltGraph;
  /** decoder stack + lm_head, with a growing self-attention cache (length 0 on the first pass) */
  readonly decoder: BuiltGraph;
  /** `decoder` with weight-first matrix products: same inputs, outputs and numbers, faster from 2 rows up */
  readonly decoderBatched: BuiltGraph;
  /** `decoderBatched` whose self-attention past is of `past_batch` rows, of which `beam_idx` picks the batch's */
  readonly decoderReorder: BuiltGraph;
}

/** Graph input/output names, in one place for the adapter and the SDK. */
export const T5_IO = {
  embed: { inputIds: 'input_ids', inputsEmbeds: 'inputs_embeds' },
  encoder: {
    inputsEmbeds: 'inputs_embeds',
    attentionMask: 'attention_mask',
    positionBuckets: 'position_buckets',
    lastHiddenState: 'last_hidden_state',
  },
  decoder: {
    inputIds: 'input_ids',
    encoderAttentionMask: 'encoder_attention_mask',
    positionBuckets: 'position_buckets',
    logits: 'logits',
  },
  /** the same names as `decoder` (the graph differs only in how it multiplies) */
  decoderBatched: {
    inputIds: 'input_ids',
    encoderAttentionMask: 'encoder_attention_mask',
    positionBuckets: 'position_buckets',
    logits: 'logits',
  },
  /** `decoderBatched`'s names, and int64 [batch] `beam_idx`: the self-attention past's row each row continues */
  decoderReorder: {
    inputIds: 'input_ids',
    encoderAttentionMask: 'encoder_attention_mask',
    positionBuckets: 'position_buckets',
    beamIdx: KV_IO.beamIdx,
    logits: 'logits',
  },
  /** decoder layer `i`'s cross-attention keys/values: encoder output, decoder input */
  crossKey: (i: number) => `cross.${i}.key`,
  crossValue: (i: number) => `cross.${i}.value`,
  // decoder layer `i`'s self-attention cache is named as every family's (@blip2/onnx's
  // KV_IO): decoder input `past_key_values.{i}.*`, output `present.{i}.*`
} as const;

/**
 * Graph inputs and outputs (symbolic dims: `batch`, `source` encoder tokens, `target`
 * new decoder tokens, `past` cached decoder tokens, `total` = past + target).
 */
export function t5GraphIO(
  config: T5Config,
): Record<keyof T5Graphs, { inputs: GraphIO[]; outputs: GraphIO[] }> {
  const { dModel: D, numHeads: H, dKv, vocabSize: V, numDecoderLayers: L } = config;
  const io = T5_IO;
  const kv = (name: string, len: string, batch = 'batch'): GraphIO => ({
    name,
    dtype: 'float32',
    dims: [batch, H, len, dKv],
  });
  const cross = Array.from({ length: L }, (_, i) => [
    kv(io.crossKey(i), 'source'),
    kv(io.crossValue(i), 'source'),
  ]).flat();
  const decoder = {
    inputs: [
      { name: io.decoder.inputIds, dtype: 'int64' as const, dims: ['batch', 'target'] },
      { name: io.decoder.encoderAttentionMask, dtype: 'int64' as const, dims: ['batch', 'source'] },
      { name: io.decoder.positionBuckets, dtype: 'int64' as const, dims: ['target', 'total'] },
      ...Array.from({ length: L }, (_, i) => [
        kv(KV_IO.pastKey(i), 'past'),
        kv(KV_IO.pastValue(i), 'past'),
      ]).flat(),
      ...cross,
    ],
    outputs: [
      { name: io.decoder.logits, dtype: 'float32' as const, dims: ['batch', 'target', V] },
      ...Array.from({ length: L }, (_, i) => [
        kv(KV_IO.presentKey(i), 'total'),
        kv(KV_IO.presentValue(i), 'total'),
      ]).flat(),
    ],
  };
  return {
    embed: {
      inputs: [{ name: io.embed.inputIds, dtype: 'int64', dims: ['batch', 'tokens'] }],
      outputs: [{ name: io.embed.inputsEmbeds, dtype: 'float32', dims: ['batch', 'tokens', D] }],
    },
    encoder: {
      inputs: [
        { name: io.encoder.inputsEmbeds, dtype: 'float32', dims: ['batch', 'source', D] },
        { name: io.encoder.attentionMask, dtype: 'int64', dims: ['batch', 'source'] },
        { name: io.encoder.positionBuckets, dtype: 'int64', dims: ['source', 'source'] },
      ],
      outputs: [
        { name: io.encoder.lastHiddenState, dtype: 'float32', dims: ['batch', 'source', D] },
        ...cross,
      ],
    },
    decoder,
    decoderBatched: decoder,
    decoderReorder: {
      inputs: [
        ...decoder.inputs.slice(0, 3),
        { name: io.decoderReorder.beamIdx, dtype: 'int64' as const, dims: ['batch'] },
        ...Array.from({ length: L }, (_, i) => [
          kv(KV_IO.pastKey(i), 'past', 'past_batch'),
          kv(KV_IO.pastValue(i), 'past', 'past_batch'),
        ]).flat(),
        ...cross,
      ],
      outputs: decoder.outputs,
    },
  };
}

// ---- T5LayerNorm ------------------------------------------------------------------

/** RMS norm: no mean subtracted, no bias (the reference's T5LayerNorm). */
function t5LayerNorm(x: Value, weight: Value, eps: number): Value {
  const variance = reduceMean(mul(x, x), [-1]);
  return mul(weight, div(x, sqrt(add(variance, eps))));
}

// ---- T5DenseActDense / T5DenseGatedActDense ------------------------------------------

function activation(config: T5Config): (x: Value) => Value {
  switch (config.denseActFn) {
    case 'relu':
      return relu;
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return geluTanh;
    case 'gelu':
      return gelu;
    default:
      throw new T5Error(
        'E_ACTIVATION',
        `text_config.dense_act_fn '${config.denseActFn}' (feed_forward_proj '${config.feedForwardProj}') is not supported (relu, gelu, gelu_new, gelu_pytorch_tanh)`,
      );
  }
}

/** `layer[-1]` of a block: x + DenseReluDense(layer_norm(x)). */
function layerFF(x: Value, w: WeightScope, at: string, config: T5Config): Value {
  const { dModel: D, dFf: F } = config;
  const act = activation(config);
  const h = t5LayerNorm(x, w.get(`${at}.layer_norm.weight`, [D]), config.layerNormEpsilon);
  const ff = `${at}.DenseReluDense`;
  const inner = config.isGatedAct
    ? mul(act(w.linear(h, `${ff}.wi_0`, [F, D])), w.linear(h, `${ff}.wi_1`, [F, D]))
    : act(w.linear(h, `${ff}.wi`, [F, D]));
  return add(x, w.linear(inner, `${ff}.wo`, [D, F]));
}

// ---- T5Attention ----------------------------------------------------------------------

/** [B, T, H*dKv] -> [B, H, T, dKv] */
function splitHeads(x: Value, config: T5Config): Value {
  return transpose(reshape(x, [0, 0, config.numHeads, config.dKv]), [0, 2, 1, 3]);
}

/** Keys or values of `states` for one attention: `k` / `v` projection, split into heads. */
function project(states: Value, w: WeightScope, name: string, config: T5Config): Value {
  return splitHeads(w.linear(states, name, [config.numHeads * config.dKv, config.dModel]), config);
}

/**
 * softmax(q k^T + bias) v, then `o`. No 1/sqrt(d_kv) scaling: T5 folds it into the
 * initialization of `q`. `bias` is the position bias plus the additive mask.
 */
function attend(
  query: Value,
  key: Value,
  value: Value,
  bias: Value,
  w: WeightScope,
  at: string,
  config: T5Config,
): Value {
  const inner = config.numHeads * config.dKv;
  // T5 does not scale the scores (the 1/sqrt(d) is folded into its initialization)
  const scores = matmulTransB(query, key);
  const weights = softmax(add(scores, bias), -1);
  const context = reshape(transpose(matmul(weights, value), [0, 2, 1, 3]), [0, 0, inner]);
  return w.linear(context, `${at}.o`, [config.dModel, inner]);
}

/**
 * [1, H, Tq, Tk] from `relative_attention_bias` [num_buckets, H] at the fed buckets
 * [Tq, Tk] (the reference's `compute_bias`). Only the first layer of a stack owns
 * the table; the bias it makes is reused by every layer.
 */
function computeBias(buckets: Value, w: WeightScope, stack: string, config: T5Config): Value {
  const table = w.get(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, [
    config.relativeAttentionNumBuckets,
    config.numHeads,
  ]);
  return unsqueeze(transpose(gather(table, buckets, 0), [2, 0, 1]), [0]);
}

/** int64 [B, S] (1 keep, 0 pad) -> float32 [B, 1, 1, S]: 0 or finfo.min (the reference's extended mask). */
function paddingMask(mask: Value): Value {
  return unsqueeze(mul(sub(1, cast(mask, 'float32')), FLOAT32_MIN), [1, 2]);
}

// ---- encoder T5Stack -------------------------------------------------------------------

/** `layer[0]` of a block: x + SelfAttention(layer_norm(x)); returns the new keys/values too. */
function layerSelfAttention(
  x: Value,
  bias: Value,
  w: WeightScope,
  at: string,
  config: T5Config,
  past?: { key: Value; value: Value },
): { hidden: Value; key: Value; value: Value } {
  const h = t5LayerNorm(x, w.get(`${at}.layer_norm.weight`, [config.dModel]), config.layerNormEpsilon);
  const sa = `${at}.SelfAttention`;
  let key = project(h, w, `${sa}.k`, config);
  let value = project(h, w, `${sa}.v`, config);
  if (past) {
    key = concat([past.key, key], 2);
    value = concat([past.value, value], 2);
  }
  const query = project(h, w, `${sa}.q`, config);
  return { hidden: add(x, attend(query, key, value, bias, w, sa, config)), key, value };
}

function encoderStack(
  inputsEmbeds: Value,
  attentionMask: Value,
  buckets: Value,
  w: WeightScope,
  config: T5Config,
): Value {
  const g = inputsEmbeds.graph;
  // position bias [1, H, S, S] + padding mask [B, 1, 1, S], shared by every layer
  const bias = add(computeBias(buckets, w, 'encoder', config), paddingMask(attentionMask));
  let x = inputsEmbeds;
  for (let i = 0; i < config.numLayers; i++) {
    const at = `encoder.block.${i}`;
    x = g.scope(at, () => {
      const { hidden } = layerSelfAttention(x, bias, w, `${at}.layer.0`, config);
      return layerFF(hidden, w, `${at}.layer.1`, config);
    });
  }
  return t5LayerNorm(x, w.get('encoder.final_layer_norm.weight', [config.dModel]), config.layerNormEpsilon);
}

// ---- decoder T5Stack -------------------------------------------------------------------

/** `layer[1]` of a decoder block: x + EncDecAttention(layer_norm(x), encoder keys/values). */
function layerCrossAttention(
  x: Value,
  key: Value,
  value: Value,
  bias: Value,
  w: WeightScope,
  at: string,
  config: T5Config,
): Value {
  const h = t5LayerNorm(x, w.get(`${at}.layer_norm.weight`, [config.dModel]), config.layerNormEpsilon);
  const query = project(h, w, `${at}.EncDecAttention.q`, config);
  return add(x, attend(query, key, value, bias, w, `${at}.EncDecAttention`, config));
}

/** float32 [Tq, Tk]: finfo.min where key position > query position (queries are the last Tq of Tk). */
function causalMask(g: GraphBuilder, inputIds: Value, pastKey: Value): Value {
  const scalar = (v: Value) => reshape(v, []);
  const target = scalar(g.op1('Shape', [inputIds], { start: 1, end: 2 }));
  const past = scalar(g.op1('Shape', [pastKey], { start: 2, end: 3 }));
  const total = g.op1('Add', [past, target]);
  const one = g.constant({ dtype: 'int64', dims: [], data: BigInt64Array.of(1n) });
  const zero = g.constant({ dtype: 'int64', dims: [], data: BigInt64Array.of(0n) });
  const queryPositions = unsqueeze(g.op1('Range', [past, total, one]), [1]);
  const keyPositions = unsqueeze(g.op1('Range', [zero, total, one]), [0]);
  return where(g.op1('Greater', [keyPositions, queryPositions]), FLOAT32_MIN, 0);
}

// ---- graphs -----------------------------------------------------------------------------

function checkConfig(config: T5Config): void {
  const positive = [
    'vocabSize',
    'dModel',
    'dKv',
    'dFf',
    'numLayers',
    'numDecoderLayers',
    'numHeads',
    'relativeAttentionNumBuckets',
  ] as const;
  for (const k of positive) {
    const v = config[k];
    if (!Number.isInteger(v) || v < 1)
      throw new T5Error('E_CONFIG', `T5 config: ${k} must be a positive integer, got ${String(v)}`);
  }
  if (!(config.layerNormEpsilon > 0)) {
    throw new T5Error(
      'E_CONFIG',
      `T5 config: layerNormEpsilon must be > 0, got ${String(config.layerNormEpsilon)}`,
    );
  }
  activation(config);
}

/**
 * The three graphs of a T5 language model from its config and checkpoint weights
 * (`weights` is @blip2/safetensors' WeightIndex or any WeightLookup).
 */
export function buildT5(config: T5Config, weights: WeightLookup, options: T5BuildOptions = {}): T5Graphs {
  checkConfig(config);
  const prefix = options.prefix ?? 'language_model.';
  const io = t5GraphIO(config);
  const { dModel: D, vocabSize: V, numDecoderLayers: L } = config;

  // -- embed: the `shared` table (T5 does not scale embeddings)
  const ge = new GraphBuilder('t5.embed', { weights });
  const we = new WeightScope(ge, prefix);
  const ids = ge.input(T5_IO.embed.inputIds, 'int64', io.embed.inputs[0].dims);
  ge.output(
    gather(we.get('shared.weight', [V, D]), ids, 0),
    T5_IO.embed.inputsEmbeds,
    'float32',
    io.embed.outputs[0].dims,
  );

  // -- encoder, and the cross-attention keys/values every decoder step reuses
  const gx = new GraphBuilder('t5.encoder', { weights });
  const wx = new WeightScope(gx, prefix);
  const [embIn, maskIn, bucketsIn] = io.encoder.inputs.map((i) => gx.input(i.name, i.dtype, i.dims));
  const encoderOut = encoderStack(embIn, maskIn, bucketsIn, wx, config);
  gx.output(encoderOut, T5_IO.encoder.lastHiddenState, 'float32', io.encoder.outputs[0].dims);
  for (let i = 0; i < L; i++) {
    const at = `decoder.block.${i}.layer.1.EncDecAttention`;
    gx.scope(at, () => {
      const kvDims = io.encoder.outputs[1 + 2 * i].dims;
      gx.output(project(encoderOut, wx, `${at}.k`, config), T5_IO.crossKey(i), 'float32', kvDims);
      gx.output(project(encoderOut, wx, `${at}.v`, config), T5_IO.crossValue(i), 'float32', kvDims);
    });
  }

  // -- decoder stack + lm_head, in either layout of its matrix products
  const buildDecoder = (
    graph: 'decoder' | 'decoderBatched' | 'decoderReorder',
    graphName: string,
  ): BuiltGraph => {
    const gd = new GraphBuilder(graphName, { weights });
    const wd = new WeightScope(gd, prefix, { weightFirst: graph !== 'decoder' });
    const inputs = new Map(io[graph].inputs.map((i) => [i.name, gd.input(i.name, i.dtype, i.dims)]));
    const input = (name: string) => inputs.get(name) as Value;
    // the self-attention rows each beam continues, before the new key/value is appended
    const beamIdx = inputs.get(KV_IO.beamIdx);
    const pastInput = (name: string) => (beamIdx ? gather(input(name), beamIdx, 0) : input(name));
    const inputIds = input(T5_IO.decoder.inputIds);
    const selfBias = add(
      computeBias(input(T5_IO.decoder.positionBuckets), wd, 'decoder', config),
      causalMask(gd, inputIds, input(KV_IO.pastKey(0))),
    );
    // cross-attention has no position bias: only the encoder's padding mask
    const crossBias = paddingMask(input(T5_IO.decoder.encoderAttentionMask));
    const presents: Value[] = [];
    let x = gather(wd.get('shared.weight', [V, D]), inputIds, 0);
    for (let i = 0; i < L; i++) {
      const at = `decoder.block.${i}`;
      x = gd.scope(at, () => {
        const past = { key: pastInput(KV_IO.pastKey(i)), value: pastInput(KV_IO.pastValue(i)) };
        const sa = layerSelfAttention(x, selfBias, wd, `${at}.layer.0`, config, past);
        presents.push(sa.key, sa.value);
        const ca = layerCrossAttention(
          sa.hidden,
          input(T5_IO.crossKey(i)),
          input(T5_IO.crossValue(i)),
          crossBias,
          wd,
          `${at}.layer.1`,
          config,
        );
        return layerFF(ca, wd, `${at}.layer.2`, config);
      });
    }
    let sequenceOutput = t5LayerNorm(
      x,
      wd.get('decoder.final_layer_norm.weight', [D]),
      config.layerNormEpsilon,
    );
    // original T5 ties lm_head to `shared` and rescales; Flan-T5 (v1.1) has its own lm_head and does not
    if (config.scaleDecoderOutputs) sequenceOutput = mul(sequenceOutput, D ** -0.5);
    // tied: `lm_head` is `shared` (a checkpoint may still store a copy, which the reference ignores)
    if (!config.tieWordEmbeddings && !wd.has('lm_head.weight')) {
      // the builder would name lm_head alone; say why `shared` cannot stand in
      throw new GraphBuildError(
        'E_MISSING_WEIGHT',
        `${gd.name}: tie_word_embeddings is false but the checkpoint has no '${wd.name('lm_head.weight')}'`,
        wd.name('lm_head.weight'),
      );
    }
    const lmHead = config.tieWordEmbeddings ? 'shared' : 'lm_head';
    gd.output(
      wd.linear(sequenceOutput, lmHead, [V, D]),
      T5_IO.decoder.logits,
      'float32',
      io.decoder.outputs[0].dims,
    );
    presents.forEach((p, j) => {
      const { name, dims } = io.decoder.outputs[1 + j];
      gd.output(p, name, 'float32', dims);
    });

    return gd.build();
  };

  return {
    embed: ge.build(),
    encoder: gx.build(),
    decoder: buildDecoder('decoder', 't5.decoder'),
    decoderBatched: buildDecoder('decoderBatched', 't5.decoder_batched'),
    decoderReorder: buildDecoder('decoderReorder', 't5.decoder_reorder'),
  };
}
