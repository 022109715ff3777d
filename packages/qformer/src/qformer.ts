/**
 * BLIP-2's Querying Transformer (transformers' `Blip2QFormerModel`) and the
 * `language_projection` of `Blip2ForConditionalGeneration`, as one ONNX graph over
 * the checkpoint's own weights. Read top to bottom like `modeling_blip_2.py`.
 *
 * Only the query path exists: captioning and VQA feed no text to the Q-Former
 * (`use_qformer_text_input` is false in every published variant), so each layer
 * runs self-attention over the learned queries, cross-attention to the image on
 * every `cross_attention_frequency`-th layer, and the query feed-forward
 * (`intermediate_query` / `output_query`).
 */
import type { Blip2QFormerConfig } from '@blip2/configs';
import {
  add,
  cast,
  concat,
  expand,
  FLOAT32_MIN,
  GraphBuilder,
  gelu,
  ints,
  layerNorm,
  linear,
  matmul,
  mul,
  reshape,
  shapeOf,
  slice,
  softmax,
  sub,
  transpose,
  unsqueeze,
  type Value,
  type WeightLookup,
  WeightScope,
} from '@blip2/onnx';
import type { BuiltGraph, GraphIO } from '@blip2/tensor';
import { QFormerError } from './errors.js';

export interface QFormerOptions {
  /** Learned queries (`num_query_tokens` of the BLIP-2 config; 32 in every published variant). */
  readonly numQueryTokens: number;
  /** Adds input `image_attention_mask` (int64 [batch, image_tokens], 1 = attend); without it every image token is attended. */
  readonly imageAttentionMask?: boolean;
  /** Applies `language_projection` and outputs `query_embeds` (default true). */
  readonly languageProjection?: boolean;
  /** Weight names (defaults: the published layout). */
  readonly prefix?: string;
  readonly queryTokensName?: string;
  readonly languageProjectionPrefix?: string;
  /** Graph name (default `qformer`). */
  readonly name?: string;
}

/** Names of the graph's inputs and outputs, for whoever wires the graph to a session. */
export const QFORMER_IO = {
  /** float32 [batch, image_tokens, encoder_hidden_size]: the vision model's last_hidden_state */
  imageEmbeds: 'image_embeds',
  /** int64 [batch, image_tokens], only with `imageAttentionMask: true` */
  imageAttentionMask: 'image_attention_mask',
  /** float32 [batch, num_query_tokens, hidden_size] */
  lastHiddenState: 'last_hidden_state',
  /** float32 [batch, num_query_tokens, text hidden size]: language_projection(last_hidden_state) */
  queryEmbeds: 'query_embeds',
} as const;

/** Every input and output of the graph built with `options`, with dtypes and dims. */
export function qformerIO(
  config: Blip2QFormerConfig,
  options: QFormerOptions,
  projectionWidth?: number,
): { inputs: GraphIO[]; outputs: GraphIO[] } {
  const inputs: GraphIO[] = [
    {
      name: QFORMER_IO.imageEmbeds,
      dtype: 'float32',
      dims: ['batch', 'image_tokens', config.encoderHiddenSize],
    },
  ];
  if (options.imageAttentionMask)
    inputs.push({ name: QFORMER_IO.imageAttentionMask, dtype: 'int64', dims: ['batch', 'image_tokens'] });
  const outputs: GraphIO[] = [
    {
      name: QFORMER_IO.lastHiddenState,
      dtype: 'float32',
      dims: ['batch', options.numQueryTokens, config.hiddenSize],
    },
  ];
  if (options.languageProjection ?? true) {
    outputs.push({
      name: QFORMER_IO.queryEmbeds,
      dtype: 'float32',
      dims: ['batch', options.numQueryTokens, projectionWidth ?? 'text_hidden_size'],
    });
  }
  return { inputs, outputs };
}

/**
 * Blip2QFormerMultiHeadAttention: BERT attention; keys and values come from the
 * image embeddings in a cross-attention layer, from the queries otherwise.
 * `attentionMask` is the additive [B, 1, 1, T] mask, or null when nothing is masked.
 */
function multiHeadAttention(
  w: WeightScope,
  config: Blip2QFormerConfig,
  hiddenStates: Value,
  keyValueStates: Value,
  kvWidth: number,
  attentionMask: Value | null,
): Value {
  const { hiddenSize: D, numAttentionHeads: H } = config;
  const headSize = D / H;
  // transpose_for_scores: [B, T, D] -> [B, H, T, hd]
  const heads = (x: Value, perm: number[]) => transpose(reshape(x, [0, 0, H, headSize]), perm);
  const query = heads(w.linear(hiddenStates, 'query', [D, D], true), [0, 2, 1, 3]);
  const keyT = heads(w.linear(keyValueStates, 'key', [D, kvWidth], true), [0, 2, 3, 1]);
  const value = heads(w.linear(keyValueStates, 'value', [D, kvWidth], true), [0, 2, 1, 3]);
  let scores = mul(matmul(query, keyT), 1 / Math.sqrt(headSize));
  if (attentionMask) scores = add(scores, attentionMask);
  const context = matmul(softmax(scores, -1), value);
  return reshape(transpose(context, [0, 2, 1, 3]), [0, 0, D]);
}

/** Blip2QFormerSelfOutput / Blip2QFormerOutput: dense, then LayerNorm over the residual sum. */
function denseAddNorm(
  w: WeightScope,
  config: Blip2QFormerConfig,
  hiddenStates: Value,
  inputTensor: Value,
  inWidth: number,
): Value {
  const D = config.hiddenSize;
  const h = w.linear(hiddenStates, 'dense', [D, inWidth], true);
  return layerNorm(
    add(h, inputTensor),
    w.get('LayerNorm.weight', [D]),
    w.get('LayerNorm.bias', [D]),
    config.layerNormEps,
  );
}

/** Blip2QFormerAttention: multi-head attention plus its output block. */
function attentionBlock(
  w: WeightScope,
  config: Blip2QFormerConfig,
  hiddenStates: Value,
  keyValueStates: Value,
  kvWidth: number,
  mask: Value | null,
): Value {
  const selfOutputs = multiHeadAttention(
    w.at('attention.'),
    config,
    hiddenStates,
    keyValueStates,
    kvWidth,
    mask,
  );
  return denseAddNorm(w.at('output.'), config, selfOutputs, hiddenStates, config.hiddenSize);
}

/** Blip2QFormerLayer, query path: self-attention, cross-attention where the layer has it, the query FFN. */
function qformerLayer(
  w: WeightScope,
  config: Blip2QFormerConfig,
  layerIdx: number,
  hiddenStates: Value,
  imageEmbeds: Value,
  imageMask: Value | null,
): Value {
  const D = config.hiddenSize;
  // the reference's self-attention mask over the queries is all ones: nothing to add
  let attentionOutput = attentionBlock(w.at('attention.'), config, hiddenStates, hiddenStates, D, null);
  if (layerIdx % config.crossAttentionFrequency === 0) {
    attentionOutput = attentionBlock(
      w.at('crossattention.'),
      config,
      attentionOutput,
      imageEmbeds,
      config.encoderHiddenSize,
      imageMask,
    );
  }
  // feed_forward_chunk_query: intermediate_query (dense + GELU), output_query
  const intermediate = gelu(
    w.at('intermediate_query.').linear(attentionOutput, 'dense', [config.intermediateSize, D], true),
  );
  return denseAddNorm(w.at('output_query.'), config, intermediate, attentionOutput, config.intermediateSize);
}

/**
 * Blip2QFormerModel over the learned `query_tokens`, then `language_projection`:
 * `image_embeds [B, T, Dv]` to `last_hidden_state [B, Q, D]` and `query_embeds [B, Q, Dllm]`.
 */
export function buildQFormer(
  config: Blip2QFormerConfig,
  weights: WeightLookup,
  options: QFormerOptions,
): BuiltGraph {
  const { hiddenSize: D, layerNormEps: eps } = config;
  const Q = options.numQueryTokens;
  if (!Number.isInteger(Q) || Q < 1)
    throw new QFormerError('E_OPTION', `qformer: numQueryTokens must be a positive integer, got ${Q}`);
  if (config.hiddenAct !== 'gelu') {
    throw new QFormerError(
      'E_OPTION',
      `qformer: hidden_act '${config.hiddenAct}' is not supported (the published Q-Formers use 'gelu')`,
    );
  }
  const g = new GraphBuilder(options.name ?? 'qformer', { weights });
  const w = new WeightScope(g, options.prefix ?? 'qformer.');
  const root = new WeightScope(g, '');
  const projection = new WeightScope(g, options.languageProjectionPrefix ?? 'language_projection.');
  const withProjection = options.languageProjection ?? true;
  const projectionWidth = withProjection ? projection.shape('weight', ['text_hidden_size', D])[0] : undefined;
  const io = qformerIO(config, options, projectionWidth);

  const imageEmbeds = g.input(QFORMER_IO.imageEmbeds, 'float32', io.inputs[0].dims);
  let imageMask: Value | null = null;
  if (options.imageAttentionMask) {
    // get_extended_attention_mask: (1 - mask) * finfo(float32).min, broadcast over heads and queries
    const mask = g.input(QFORMER_IO.imageAttentionMask, 'int64', io.inputs[1].dims);
    imageMask = mul(sub(1, cast(unsqueeze(mask, [1, 2]), 'float32')), FLOAT32_MIN);
  }

  // query_tokens.expand(batch_size, -1, -1)
  const batch = slice(shapeOf(imageEmbeds), [0], [1], [0]);
  const queryTokens = root.get(options.queryTokensName ?? 'query_tokens', [1, Q, D]);
  const queryEmbeds = expand(queryTokens, concat([batch, ints(g, [Q, D])], 0));
  // the query embeddings are layer-normed before the first layer (`qformer.layernorm`)
  let hiddenStates = layerNorm(
    queryEmbeds,
    w.get('layernorm.weight', [D]),
    w.get('layernorm.bias', [D]),
    eps,
  );
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const input = hiddenStates;
    hiddenStates = g.scope(`layer.${i}`, () =>
      qformerLayer(w.at(`encoder.layer.${i}.`), config, i, input, imageEmbeds, imageMask),
    );
  }
  g.output(hiddenStates, QFORMER_IO.lastHiddenState, 'float32', io.outputs[0].dims);

  if (withProjection && projectionWidth !== undefined) {
    const projected = linear(
      hiddenStates,
      projection.get('weight', [projectionWidth, D]),
      projection.get('bias', [projectionWidth]),
    );
    g.output(projected, QFORMER_IO.queryEmbeds, 'float32', io.outputs[1].dims);
  }
  return g.build();
}
