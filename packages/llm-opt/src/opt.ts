/**
 * OPT (Zhang et al., 2022) as transformers' `modeling_opt.py` computes it, built
 * as ONNX graphs over the checkpoint's own weights. Read top to bottom like the
 * reference: learned positions, attention, decoder layer, decoder, LM head, and
 * the three graphs BLIP-2 generation runs:
 *
 * - `embed`:   input_ids -> inputs_embeds (`embed_tokens`, so query embeddings can be merged in)
 * - `prefill`: inputs_embeds + attention_mask -> the last position's logits + present keys/values
 * - `forward`: inputs_embeds + attention_mask -> logits at every position (teacher
 *   forcing, scoring, parity with transformers' full forward)
 * - `step`:    input_ids + attention_mask + past keys/values -> logits + present keys/values
 * - `stepBatched`: the same step with every matrix product written weight-first
 *   (`linear`'s `weightFirst`), for steps of several rows (beams, batches) on a device
 * - `stepAppend`: `step` that reads the past where it lies and outputs only the new
 *   keys/values (`appended.*`), which the adapter writes into free slots of the cache's
 *   buffers: no Concat of the whole cache in onnxruntime and, above all, no copy of it
 *   out of onnxruntime-node (which copies every output into a new JavaScript buffer)
 * - `stepBeams`: `stepAppend` for beams (one new token per row, weight-first): beam
 *   search's cache never moves either (transformers' `_reorder_cache` copies it). Each
 *   beam appends into its own row of the buffers; `past_rows` says which row holds each
 *   beam's token at each slot (beam search's reorders compose it, in JavaScript), and
 *   every beam attends over every row's slots, masked to its own (see `beamAttention`)
 *
 * Prefill and step are the same decoder; the step graph only adds the past
 * keys/values and embeds its ids itself (one session run per generated token).
 * Two graphs rather than one with a zero-length past: the prefill then never
 * needs dummy inputs, whatever the backend thinks of empty tensors.
 *
 * Why two step graphs: with the weights mapped in place (pre-packing off),
 * onnxruntime's CPU Gemm re-packs the whole transposed weight on every run from
 * 2 rows up, so a 5-beam step cost twice a greedy one; y^T = W x^T reads the
 * weight as it lies at any row count but is slower at exactly one row. The
 * adapter picks the graph by the number of rows a step multiplies.
 */
import type { OPTConfig } from '@blip2/configs';
import {
  add,
  cast,
  concat,
  cumsum,
  div,
  equal,
  exp,
  FLOAT32_MIN,
  GraphBuildError,
  GraphBuilder,
  gather,
  gelu,
  geluTanh,
  intScalar,
  ints,
  KV_IO,
  layerNorm,
  matmul,
  matmulTransB,
  maximum,
  mul,
  reduceMax,
  reduceSum,
  relu,
  reshape,
  shapeOf,
  slice,
  softmax,
  squeeze,
  sub,
  transpose,
  unsqueeze,
  type Value,
  type WeightLookup,
  WeightScope,
  where,
} from '@blip2/onnx';
import type { BuiltGraph, GraphIO } from '@blip2/tensor';
import { OptError } from './errors.js';

/** OPT's learned position table has two extra leading rows (a fairseq padding_idx leftover). */
export const OPT_POSITION_OFFSET = 2;

/** nn.LayerNorm's default; OPT never changes it. */
const LAYER_NORM_EPS = 1e-5;

export interface OptBuildOptions {
  /**
   * Prefix of the language model's weights in the checkpoint (default `language_model.`,
   * the BLIP-2 layout: `language_model.model.decoder.*`, `language_model.lm_head.weight`).
   * Use '' for a plain OPTForCausalLM checkpoint.
   */
  readonly prefix?: string;
}

export interface OptGraphs {
  readonly embed: BuiltGraph;
  /** logits of the last position only: generation reads no other, and the LM head is the widest product */
  readonly prefill: BuiltGraph;
  /** logits at every position, no cache */
  readonly forward: BuiltGraph;
  readonly step: BuiltGraph;
  /** `step` with weight-first matrix products: same inputs, outputs and numbers, faster from 2 rows up */
  readonly stepBatched: BuiltGraph;
  /**
   * Prefill and step in one graph: embeddings of the new tokens over a past, the last
   * position's logits. For backends that copy the weights into every session
   * (onnxruntime-web): one copy of the decoder instead of two (see OptAdapter).
   */
  readonly decoder: BuiltGraph;
  /** `step` with the past read in place and only the new keys/values out (`appended.*`) */
  readonly stepAppend: BuiltGraph;
  /**
   * `stepAppend` for several rows of one new token each, weight-first, over buffers whose
   * rows `past_rows` assigns to each row's slots (beam search's cache, never moved)
   */
  readonly stepBeams: BuiltGraph;
}

/** Names of the graphs' inputs and outputs: the contract the adapter (and an SDK) wires against. */
export const OPT_IO = {
  embed: { inputIds: 'input_ids', inputsEmbeds: 'inputs_embeds' },
  prefill: { inputsEmbeds: 'inputs_embeds', attentionMask: 'attention_mask', logits: 'logits' },
  forward: { inputsEmbeds: 'inputs_embeds', attentionMask: 'attention_mask', logits: 'logits' },
  step: { inputIds: 'input_ids', attentionMask: 'attention_mask', logits: 'logits' },
  /** the same names as `step` (the graph differs only in how it multiplies) */
  stepBatched: { inputIds: 'input_ids', attentionMask: 'attention_mask', logits: 'logits' },
  decoder: { inputsEmbeds: 'inputs_embeds', attentionMask: 'attention_mask', logits: 'logits' },
  /**
   * `step`'s names, and int64 [batch, past_sequence] `past_rows`: the row of the past
   * buffers that holds row b's token at slot t (any row: beams share their history)
   */
  stepBeams: {
    inputIds: 'input_ids',
    attentionMask: 'attention_mask',
    pastRows: 'past_rows',
    logits: 'logits',
  },
  // the cache's names are @blip2/onnx's KV_IO: step-graph inputs `past_key_values.{i}.*`
  // [batch, num_heads, past_sequence, head_dim]; prefill/step outputs `present.{i}.*`
  // [batch, num_heads, total_sequence, head_dim] (past + new); `stepAppend`'s inputs are
  // `step`'s, its outputs `logits` and `appended.{i}.*` [batch, num_heads, sequence, head_dim] (new only)
} as const;

/** Inputs and outputs of each graph with dtypes and dims (string dims are dynamic). */
export function optGraphIO(
  config: OPTConfig,
): Record<keyof OptGraphs, { inputs: GraphIO[]; outputs: GraphIO[] }> {
  const { wordEmbedProjDim: dw, vocabSize: v, numAttentionHeads: h } = config;
  const dh = config.hiddenSize / h;
  const kvIO = (
    seq: string,
    key: (i: number) => string,
    value: (i: number) => string,
    batch = 'batch',
  ): GraphIO[] =>
    Array.from({ length: config.numHiddenLayers }, (_, i) => [
      { name: key(i), dtype: 'float32' as const, dims: [batch, h, seq, dh] },
      { name: value(i), dtype: 'float32' as const, dims: [batch, h, seq, dh] },
    ]).flat();
  const presents = (seq: string) => kvIO(seq, KV_IO.presentKey, KV_IO.presentValue);
  const pasts = kvIO('past_sequence', KV_IO.pastKey, KV_IO.pastValue);
  const prompt: GraphIO[] = [
    { name: 'inputs_embeds', dtype: 'float32', dims: ['batch', 'sequence', dw] },
    { name: 'attention_mask', dtype: 'int64', dims: ['batch', 'sequence'] },
  ];
  const step = {
    inputs: [
      { name: 'input_ids', dtype: 'int64' as const, dims: ['batch', 'sequence'] },
      { name: 'attention_mask', dtype: 'int64' as const, dims: ['batch', 'total_sequence'] },
      ...pasts,
    ],
    outputs: [
      { name: 'logits', dtype: 'float32' as const, dims: ['batch', 'sequence', v] },
      ...presents('total_sequence'),
    ],
  };
  return {
    embed: {
      inputs: [{ name: 'input_ids', dtype: 'int64', dims: ['batch', 'sequence'] }],
      outputs: [{ name: 'inputs_embeds', dtype: 'float32', dims: ['batch', 'sequence', dw] }],
    },
    prefill: {
      inputs: prompt,
      outputs: [{ name: 'logits', dtype: 'float32', dims: ['batch', 1, v] }, ...presents('sequence')],
    },
    forward: {
      inputs: prompt,
      outputs: [{ name: 'logits', dtype: 'float32', dims: ['batch', 'sequence', v] }],
    },
    step,
    stepBatched: step,
    stepAppend: {
      inputs: step.inputs,
      outputs: [step.outputs[0], ...kvIO('sequence', KV_IO.appendedKey, KV_IO.appendedValue)],
    },
    stepBeams: {
      inputs: [
        { name: 'input_ids', dtype: 'int64', dims: ['batch', 1] },
        step.inputs[1],
        { name: OPT_IO.stepBeams.pastRows, dtype: 'int64', dims: ['batch', 'past_sequence'] },
        ...kvIO('past_sequence', KV_IO.pastKey, KV_IO.pastValue, 'past_batch'),
      ],
      outputs: [
        { name: 'logits', dtype: 'float32', dims: ['batch', 1, v] },
        ...kvIO('1', KV_IO.appendedKey, KV_IO.appendedValue),
      ],
    },
    decoder: {
      inputs: [prompt[0], ...step.inputs.slice(1)],
      outputs: [{ name: 'logits', dtype: 'float32', dims: ['batch', 1, v] }, ...presents('total_sequence')],
    },
  };
}

interface Ctx {
  readonly g: GraphBuilder;
  /** the language model's weights (`lm_head.weight`), under the build's prefix */
  readonly lm: WeightScope;
  /** `OPTDecoder`'s weights (`model.decoder.`), whose `linear`s are weight-first in the batched step graph */
  readonly w: WeightScope;
  readonly config: OPTConfig;
  /** attention reads the past in place and `present` is the new keys/values only (`stepAppend`) */
  readonly append?: boolean;
  /** `stepBeams`: the past is every row's buffers, assigned to the beams' slots by `pastRows` */
  readonly beams?: { readonly pastRows: Value };
}

// ---- embeddings --------------------------------------------------------------------

/** `embed_tokens`: token ids -> [B, T, word_embed_proj_dim]. */
function embedTokens(c: Ctx, inputIds: Value): Value {
  const table = c.w.get('embed_tokens.weight', [c.config.vocabSize, c.config.wordEmbedProjDim]);
  return gather(table, inputIds, 0);
}

/**
 * `OPTLearnedPositionalEmbedding` with the decoder's default `position_ids`:
 * `cumsum(attention_mask) * attention_mask - 1`, cut to the new tokens, plus the
 * offset 2. Counting only attended tokens is what makes left padding work: the
 * first real token of every row is position 0 however many pads precede it
 * (pads themselves land on row 1 of the table, and nothing attends to them).
 */
function embedPositions(c: Ctx, attentionMask: Value, newTokens: Value): Value {
  const { g, config } = c;
  const table = c.w.get('embed_positions.weight', [
    config.maxPositionEmbeddings + OPT_POSITION_OFFSET,
    config.hiddenSize,
  ]);
  // int64 throughout: every operand is a graph value, so no float scalar sneaks in
  const positionIds = sub(mul(cumsum(attentionMask, 1), attentionMask), intScalar(g, 1));
  const total = dim1(shapeOf(attentionMask));
  const past = g.op1('Sub', [total, newTokens]);
  // position_ids[:, past_key_values_length:]
  const current = g.op1('Slice', [positionIds, past, total, ints(g, [1])]);
  return gather(table, g.op1('Add', [current, intScalar(g, OPT_POSITION_OFFSET)]), 0);
}

/** dims[1] of a shape vector, as a 1-element int64 vector (what Slice wants). */
function dim1(shape: Value): Value {
  const g = shape.graph;
  return g.op1('Slice', [shape, ints(g, [1]), ints(g, [2]), ints(g, [0])]);
}

/**
 * Which keys each new query may see, [B, 1, S, L] bool: causal over the whole
 * sequence (the new tokens sit at the end, after the past) and never a padded
 * key. This is the reference's `create_causal_mask` for a left-padded batch.
 */
function attentionAllowed(c: Ctx, attentionMask: Value, newTokens: Value): Value {
  const { g } = c;
  const total = g.op1('Squeeze', [dim1(shapeOf(attentionMask)), ints(g, [0])]);
  const s = g.op1('Squeeze', [newTokens, ints(g, [0])]);
  const one = intScalar(g, 1);
  const keyIndex = g.op1('Range', [intScalar(g, 0), total, one]);
  const queryIndex = g.op1('Range', [g.op1('Sub', [total, s]), total, one]);
  const causal = g.op1('LessOrEqual', [unsqueeze(keyIndex, [0]), unsqueeze(queryIndex, [1])]); // [S, L]
  const notPadding = unsqueeze(cast(attentionMask, 'bool'), [1, 2]); // [B, 1, 1, L]
  return g.op1('And', [causal, notPadding]);
}

// ---- attention -------------------------------------------------------------------

interface KV {
  readonly key: Value;
  readonly value: Value;
}

/** [B, S, D] -> [B, H, S, head_dim] (the reference's `.view(...).transpose(1, 2)`). */
function splitHeads(c: Ctx, x: Value): Value {
  const h = c.config.numAttentionHeads;
  return transpose(reshape(x, [0, 0, h, c.config.hiddenSize / h]), [0, 2, 1, 3]);
}

/**
 * `OPTAttention`: multi-head self-attention with the key/value cache. The new
 * keys/values are appended to the past ones; the scaling `head_dim ** -0.5`
 * applies to the scores, as sdpa applies it.
 */
function attention(
  c: Ctx,
  i: number,
  hidden: Value,
  allowed: Value,
  past: KV | null,
): { out: Value; present: KV } {
  const { config } = c;
  const d = config.hiddenSize;
  const w = c.w.at(`layers.${i}.self_attn.`);
  const proj = (name: string, x: Value) => w.linear(x, name, [d, d], config.enableBias);
  const query = splitHeads(c, proj('q_proj', hidden));
  let key = splitHeads(c, proj('k_proj', hidden));
  let value = splitHeads(c, proj('v_proj', hidden));
  const headDim = d / config.numAttentionHeads;
  if (past && c.beams) {
    const out = proj('out_proj', beamAttention(c, query, key, value, past, allowed));
    return { out, present: { key, value } };
  }
  if (past && c.append) {
    // softmax over [past, new] without concatenating the keys: the scores are small, the
    // cache is not (the keys and values of every position so far)
    const g = c.g;
    const scores = concat(
      [matmulTransB(query, past.key, headDim ** -0.5), matmulTransB(query, key, headDim ** -0.5)],
      3,
    );
    const probs = softmax(where(allowed, scores, FLOAT32_MIN), -1);
    const pastLength = g.op1('Shape', [past.key], { start: 2, end: 3 });
    const axis = ints(g, [3]);
    const onPast = g.op1('Slice', [probs, ints(g, [0]), pastLength, axis]);
    const onNew = g.op1('Slice', [probs, pastLength, ints(g, [Number.MAX_SAFE_INTEGER]), axis]);
    const mixed = add(matmul(onPast, past.value), matmul(onNew, value));
    const context = reshape(transpose(mixed, [0, 2, 1, 3]), [0, 0, d]);
    return { out: proj('out_proj', context), present: { key, value } };
  }
  if (past) {
    key = concat([past.key, key], 2);
    value = concat([past.value, value], 2);
  }
  const scores = matmulTransB(query, key, headDim ** -0.5);
  const probs = softmax(where(allowed, scores, FLOAT32_MIN), -1);
  const context = reshape(transpose(matmul(probs, value), [0, 2, 1, 3]), [0, 0, d]);
  const out = proj('out_proj', context);
  return { out, present: { key, value } };
}

/**
 * Which slots of the past buffers each beam attends to, [R, 1, B, S] bool for
 * `beamAttention`: slot t of buffer row r when r holds beam b's token there
 * (past_rows[b, t] == r) and the beam's attention mask keeps it. Built once per step,
 * shared by every layer.
 */
function beamSlotsAllowed(c: Ctx, attentionMask: Value, pastRows: Value, pastKey: Value): Value {
  const { g } = c;
  const bufferRows = squeeze(g.op1('Shape', [pastKey], { start: 0, end: 1 }), [0]);
  const rowIds = reshape(g.op1('Range', [intScalar(g, 0), bufferRows, intScalar(g, 1)]), [-1, 1, 1, 1]);
  const own = equal(unsqueeze(pastRows, [0, 1]), rowIds);
  // the past's slots of the mask: the new token (the last one) always sees itself
  const pastLength = g.op1('Shape', [pastRows], { start: 1, end: 2 });
  const attended = g.op1('Slice', [attentionMask, ints(g, [0]), pastLength, ints(g, [1])]);
  return g.op1('And', [own, unsqueeze(cast(attended, 'bool'), [0, 1])]);
}

/**
 * Attention of B beams (one new token each, `query`/`key`/`value` [B, H, 1, head_dim])
 * over past buffers [R, H, S, head_dim] that none of them owns: the beams' tokens lie in
 * whichever row appended them, and `allowed` ([R, 1, B, S], `beamSlotsAllowed`) picks
 * each beam's. With the beams as the rows of one product per buffer row and head, the
 * cache is read once, where it lies: nothing is gathered, concatenated or copied out.
 * The softmax runs over every (row, slot) and the beam's own new key together: the
 * reference's softmax over its own past and new key, as masked slots weigh exactly 0.
 */
function beamAttention(c: Ctx, query: Value, key: Value, value: Value, past: KV, allowed: Value): Value {
  const d = c.config.hiddenSize;
  const scale = (d / c.config.numAttentionHeads) ** -0.5;
  // [B, H, 1, hd] <-> [1, H, B, hd]: a transpose of one position's activations
  const beamsAsRows = (x: Value) => transpose(x, [2, 1, 0, 3]);
  const scores = where(allowed, matmulTransB(beamsAsRows(query), past.key, scale), FLOAT32_MIN); // [R, H, B, S]
  const own = beamsAsRows(mul(reduceSum(mul(query, key), [3]), scale)); // [1, H, B, 1]
  const top = maximum(reduceMax(scores, [0, 3]), own);
  const weights = exp(sub(scores, top));
  const ownWeight = exp(sub(own, top));
  const total = add(reduceSum(weights, [0, 3]), ownWeight);
  const mixed = add(reduceSum(matmul(weights, past.value), [0]), mul(ownWeight, beamsAsRows(value)));
  // [1, H, B, hd] -> [B, 1, H, hd] -> [B, 1, d]
  return reshape(transpose(div(mixed, total), [2, 0, 1, 3]), [0, 0, d]);
}

// ---- decoder layer ---------------------------------------------------------------

function layerNormNamed(c: Ctx, name: string, x: Value): Value {
  const { config, w, g } = c;
  const d = config.hiddenSize;
  const affine = config.layerNormElementwiseAffine;
  const weight = affine ? w.get(`${name}.weight`, [d]) : g.constant(onesF32(d), 'ones');
  return layerNorm(x, weight, w.optional(affine, `${name}.bias`, [d]), LAYER_NORM_EPS);
}

function onesF32(n: number) {
  return { dtype: 'float32' as const, dims: [n], data: new Float32Array(n).fill(1) };
}

/** ACT2FN[config.activation_function] for the activations OPT checkpoints use. */
function activation(c: Ctx, x: Value): Value {
  switch (c.config.activationFunction) {
    case 'relu':
      return relu(x);
    case 'gelu':
      return gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return geluTanh(x);
    default:
      throw new OptError(
        'E_ACTIVATION',
        `text_config.activation_function '${c.config.activationFunction}' is not supported (relu, gelu, gelu_new, gelu_pytorch_tanh)`,
      );
  }
}

/**
 * `OPTDecoderLayer`: self-attention then a ReLU feed-forward, each with a
 * residual. `do_layer_norm_before` puts the layer norms before each block
 * (every published OPT but 350m) instead of after the residual sum.
 */
function decoderLayer(
  c: Ctx,
  i: number,
  hidden: Value,
  allowed: Value,
  past: KV | null,
): { hidden: Value; present: KV } {
  const { config, w } = c;
  const preLN = config.doLayerNormBefore;
  const d = config.hiddenSize;
  const f = config.ffnDim;
  const p = `layers.${i}.`;

  let residual = hidden;
  let h = preLN ? layerNormNamed(c, `${p}self_attn_layer_norm`, hidden) : hidden;
  const { out, present } = attention(c, i, h, allowed, past);
  h = add(residual, out);
  if (!preLN) h = layerNormNamed(c, `${p}self_attn_layer_norm`, h);

  residual = h;
  if (preLN) h = layerNormNamed(c, `${p}final_layer_norm`, h);
  h = w.linear(h, `${p}fc1`, [f, d], config.enableBias);
  h = activation(c, h);
  h = w.linear(h, `${p}fc2`, [d, f], config.enableBias);
  h = add(residual, h);
  if (!preLN) h = layerNormNamed(c, `${p}final_layer_norm`, h);
  return { hidden: h, present };
}

// ---- decoder + head --------------------------------------------------------------

/**
 * `OPTDecoder` + `OPTForCausalLM.lm_head` from token embeddings (before
 * `project_in`) to logits. `past` holds one K/V pair per layer for the step graph.
 * `lastPosition` computes the head at the last position only (prompts are left-padded,
 * so that is every row's next-token position).
 */
function decoder(
  c: Ctx,
  inputsEmbeds: Value,
  attentionMask: Value,
  past: KV[] | null,
  lastPosition = false,
): { logits: Value; presents: KV[] } {
  const { g, config, lm, w } = c;
  const d = config.hiddenSize;
  const dw = config.wordEmbedProjDim;
  const projected = dw !== d;
  const newTokens = dim1(shapeOf(inputsEmbeds));

  const positions = embedPositions(c, attentionMask, newTokens);
  // project_in/project_out (no bias) exist only when embed_tokens is narrower than the layers (opt-350m)
  const embeds = projected ? w.linear(inputsEmbeds, 'project_in', [d, dw]) : inputsEmbeds;
  let hidden = add(embeds, positions);

  const allowed =
    c.beams && past
      ? beamSlotsAllowed(c, attentionMask, c.beams.pastRows, past[0].key)
      : attentionAllowed(c, attentionMask, newTokens);
  const presents: KV[] = [];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const layer = g.scope(`layers.${i}`, () => decoderLayer(c, i, hidden, allowed, past ? past[i] : null));
    hidden = layer.hidden;
    presents.push(layer.present);
  }

  // what follows is per position: of a prompt, generation needs the last one
  if (lastPosition) hidden = slice(hidden, [-1], [Number.MAX_SAFE_INTEGER], [1]);
  // the reference keeps final_layer_norm only for pre-LN models not converted with _remove_final_layer_norm
  if (config.doLayerNormBefore && !config.removeFinalLayerNorm)
    hidden = layerNormNamed(c, 'final_layer_norm', hidden);
  if (projected) hidden = w.linear(hidden, 'project_out', [dw, d]);

  // lm_head is tied to embed_tokens when the checkpoint leaves it out (tie_word_embeddings)
  const stored = lm.has('lm_head.weight');
  if (!stored && !config.tieWordEmbeddings) {
    // the builder would name lm_head alone; say why embed_tokens cannot stand in
    throw new GraphBuildError(
      'E_MISSING_WEIGHT',
      `${g.name}: the checkpoint has no '${lm.name('lm_head.weight')}' and tie_word_embeddings is false`,
      lm.name('lm_head.weight'),
    );
  }
  const logits = stored
    ? lm.linear(hidden, 'lm_head', [config.vocabSize, dw])
    : w.linear(hidden, 'embed_tokens', [config.vocabSize, dw]);
  return { logits, presents };
}

function outputPresents(g: GraphBuilder, config: OPTConfig, presents: KV[], seq: string): void {
  const h = config.numAttentionHeads;
  const dh = config.hiddenSize / h;
  presents.forEach((kv, i) => {
    g.output(kv.key, KV_IO.presentKey(i), 'float32', ['batch', h, seq, dh]);
    g.output(kv.value, KV_IO.presentValue(i), 'float32', ['batch', h, seq, dh]);
  });
}

/**
 * The three OPT graphs over a checkpoint's weights (used in place). Throws
 * `GraphBuildError` (`E_MISSING_WEIGHT`, `E_WEIGHT_SHAPE`) naming the weight, or
 * `OptError` (`E_ACTIVATION`) naming the config field at fault.
 */
export function buildOpt(config: OPTConfig, weights: WeightLookup, options: OptBuildOptions = {}): OptGraphs {
  const prefix = options.prefix ?? 'language_model.';
  const io = optGraphIO(config);
  const make = (name: string, weightFirst = false, append = false) => {
    const g = new GraphBuilder(name, { weights });
    const lm = new WeightScope(g, prefix, { weightFirst });
    return { g, c: { g, lm, w: lm.at('model.decoder.'), config, append } satisfies Ctx };
  };
  const spec = (graph: keyof OptGraphs, name: string) => {
    const found = [...io[graph].inputs, ...io[graph].outputs].find((x) => x.name === name);
    if (!found) throw new Error(`internal: no ${name} in ${graph}`);
    return found;
  };

  // embed
  const e = make('opt.embed');
  const ids = e.g.input('input_ids', 'int64', spec('embed', 'input_ids').dims);
  e.g.output(embedTokens(e.c, ids), 'inputs_embeds', 'float32', spec('embed', 'inputs_embeds').dims);

  // prefill (the last position's logits and the cache), and the full forward (every position's logits)
  const buildPrompt = (graph: 'prefill' | 'forward', name: string): BuiltGraph => {
    const p = make(name);
    const embeds = p.g.input('inputs_embeds', 'float32', spec(graph, 'inputs_embeds').dims);
    const mask = p.g.input('attention_mask', 'int64', spec(graph, 'attention_mask').dims);
    const out = decoder(p.c, embeds, mask, null, graph === 'prefill');
    p.g.output(out.logits, 'logits', 'float32', spec(graph, 'logits').dims);
    if (graph === 'prefill') outputPresents(p.g, config, out.presents, 'sequence');
    return p.g.build();
  };

  // step, the same step multiplying weight-first for several rows, and the appending ones
  const buildStep = (
    graph: 'step' | 'stepBatched' | 'stepAppend' | 'stepBeams' | 'decoder',
    name: string,
  ): BuiltGraph => {
    const beams = graph === 'stepBeams';
    const append = graph === 'stepAppend' || beams;
    const s = make(name, graph === 'stepBatched' || beams, append);
    const fromEmbeds = graph === 'decoder';
    const newTokens = fromEmbeds
      ? s.g.input('inputs_embeds', 'float32', spec(graph, 'inputs_embeds').dims)
      : embedTokens(s.c, s.g.input('input_ids', 'int64', spec(graph, 'input_ids').dims));
    const stepMask = s.g.input('attention_mask', 'int64', spec(graph, 'attention_mask').dims);
    const rowsOf = OPT_IO.stepBeams.pastRows;
    const c: Ctx = beams
      ? { ...s.c, beams: { pastRows: s.g.input(rowsOf, 'int64', spec(graph, rowsOf).dims) } }
      : s.c;
    const pastInput = (name: string) => s.g.input(name, 'float32', spec(graph, name).dims);
    const past: KV[] = [];
    for (let i = 0; i < config.numHiddenLayers; i++) {
      past.push({ key: pastInput(KV_IO.pastKey(i)), value: pastInput(KV_IO.pastValue(i)) });
    }
    const st = decoder(c, newTokens, stepMask, past, fromEmbeds);
    s.g.output(st.logits, 'logits', 'float32', spec(graph, 'logits').dims);
    if (append) {
      st.presents.forEach((kv, i) => {
        s.g.output(kv.key, KV_IO.appendedKey(i), 'float32', spec(graph, KV_IO.appendedKey(i)).dims);
        s.g.output(kv.value, KV_IO.appendedValue(i), 'float32', spec(graph, KV_IO.appendedValue(i)).dims);
      });
    } else outputPresents(s.g, config, st.presents, 'total_sequence');
    return s.g.build();
  };

  return {
    embed: e.g.build(),
    prefill: buildPrompt('prefill', 'opt.prefill'),
    forward: buildPrompt('forward', 'opt.forward'),
    step: buildStep('step', 'opt.step'),
    stepBatched: buildStep('stepBatched', 'opt.step_batched'),
    stepAppend: buildStep('stepAppend', 'opt.step_append'),
    stepBeams: buildStep('stepBeams', 'opt.step_beams'),
    decoder: buildStep('decoder', 'opt.decoder'),
  };
}
