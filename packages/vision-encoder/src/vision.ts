/**
 * BLIP-2's image encoder, EVA ViT-g (transformers' `Blip2VisionModel`), as an ONNX
 * graph over the checkpoint's own weights. Read top to bottom like
 * `modeling_blip_2.py`: embeddings, attention, MLP, encoder layer, vision model.
 */
import type { Blip2VisionConfig } from '@blip2/configs';
import {
  add,
  concat,
  conv2d,
  expand,
  GraphBuildError,
  GraphBuilder,
  gather,
  gelu,
  intScalar,
  ints,
  layerNorm,
  linear,
  matmul,
  mul,
  reshape,
  shapeOf,
  slice,
  softmax,
  transpose,
  type Value,
  type WeightLookup,
  WeightScope,
} from '@blip2/onnx';
import { type BuiltGraph, float32, type GraphIO } from '@blip2/tensor';
import { VisionEncoderError } from './errors.js';

export interface VisionModelOptions {
  /** Prefix of the vision weights in the checkpoint (default `vision_model.`, the published layout). */
  readonly prefix?: string;
  /**
   * Adds outputs `hidden_states.0 .. hidden_states.N`: the embeddings, then every
   * encoder layer's output (before `post_layernorm`), as transformers'
   * `output_hidden_states=True` returns them.
   */
  readonly outputHiddenStates?: boolean;
  /** Graph name (default `vision_model`). */
  readonly name?: string;
}

/** Names of the graph's inputs and outputs, for whoever wires the graph to a session. */
export const VISION_MODEL_IO = {
  /** float32 [batch, 3, imageSize, imageSize], normalized as the image processor does */
  pixelValues: 'pixel_values',
  /** float32 [batch, 1 + numPatches, hiddenSize], after `post_layernorm` */
  lastHiddenState: 'last_hidden_state',
  /** float32 [batch, hiddenSize]: the CLS token, `post_layernorm` applied once more */
  poolerOutput: 'pooler_output',
  /** float32 [batch, 1 + numPatches, hiddenSize]; 0 is the embeddings, i is layer i-1's output */
  hiddenStates: (i: number) => `hidden_states.${i}`,
} as const;

/** Every input and output the graph built with `options` has, with dtypes and dims. */
export function visionModelIO(
  config: Blip2VisionConfig,
  options: Pick<VisionModelOptions, 'outputHiddenStates'> = {},
): { inputs: GraphIO[]; outputs: GraphIO[] } {
  const { hiddenSize: D, imageSize: S } = config;
  const tokens = 1 + numPatches(config);
  const seq = ['batch', tokens, D];
  const outputs: GraphIO[] = [
    { name: VISION_MODEL_IO.lastHiddenState, dtype: 'float32', dims: seq },
    { name: VISION_MODEL_IO.poolerOutput, dtype: 'float32', dims: ['batch', D] },
  ];
  if (options.outputHiddenStates) {
    for (let i = 0; i <= config.numHiddenLayers; i++) {
      outputs.push({ name: VISION_MODEL_IO.hiddenStates(i), dtype: 'float32', dims: seq });
    }
  }
  return {
    inputs: [{ name: VISION_MODEL_IO.pixelValues, dtype: 'float32', dims: ['batch', 3, S, S] }],
    outputs,
  };
}

export function numPatches(config: Blip2VisionConfig): number {
  const side = Math.floor(config.imageSize / config.patchSize);
  return side * side;
}

/** Blip2VisionEmbeddings: patch embedding (a strided Conv), class token, absolute position embeddings. */
function embeddings(g: GraphBuilder, w: WeightScope, config: Blip2VisionConfig, pixelValues: Value): Value {
  const { hiddenSize: D, patchSize: P } = config;
  const tokens = 1 + numPatches(config);
  const kernel = w.get('patch_embedding.weight', [D, 3, P, P]);
  const patchEmbeds = conv2d(pixelValues, kernel, w.get('patch_embedding.bias', [D]), P, P); // [B, D, g, g]
  // .flatten(2).transpose(1, 2): one token per patch, row-major over the grid
  const patches = transpose(reshape(patchEmbeds, [0, D, -1]), [0, 2, 1]);
  // class_embedding.expand(batch_size, 1, -1)
  const batch = slice(shapeOf(pixelValues), [0], [1], [0]);
  const classEmbeds = expand(w.get('class_embedding', [1, 1, D]), concat([batch, ints(g, [1, D])], 0));
  const embeds = concat([classEmbeds, patches], 1);
  // the reference adds position_embedding[:, :seq_len]: a longer table is sliced, a shorter one cannot work
  const posName = 'position_embedding';
  const atLeast = `>=${tokens}`;
  const stored = w.shape(posName, [1, atLeast, D]);
  if (stored[1] < tokens) {
    throw new GraphBuildError(
      'E_WEIGHT_SHAPE',
      `${g.name}: weight '${w.name(posName)}' has shape [${stored}], needs [1,${atLeast},${D}] for image_size ${config.imageSize} / patch_size ${P}`,
      w.name(posName),
    );
  }
  let position = w.get(posName, stored);
  if (stored[1] > tokens) position = slice(position, [0], [tokens], [1]);
  return add(embeds, position);
}

/**
 * Blip2Attention: multi-head self-attention with one fused `qkv` projection.
 * EVA has no key bias: transformers 4 stores `q_bias` and `v_bias` and builds
 * `cat(q_bias, zeros, v_bias)`; transformers 5 stores that as one `qkv.bias`.
 */
function attention(
  g: GraphBuilder,
  w: WeightScope,
  config: Blip2VisionConfig,
  hiddenStates: Value,
  zeros: () => Value,
): Value {
  const { hiddenSize: D, numAttentionHeads: H } = config;
  const headDim = D / H;
  const qkvWeight = w.get('qkv.weight', [3 * D, D]);
  let qkvBias: Value | null = null;
  if (w.has('qkv.bias')) qkvBias = w.get('qkv.bias', [3 * D]);
  else if (w.has('q_bias') || w.has('v_bias'))
    qkvBias = concat([w.get('q_bias', [D]), zeros(), w.get('v_bias', [D])], 0);
  else if (config.qkvBias) {
    // two layouts could hold the bias: the builder's own message would name only one
    throw new GraphBuildError(
      'E_MISSING_WEIGHT',
      `${g.name}: qkv_bias is true but the checkpoint has neither '${w.name('qkv.bias')}' nor '${w.name('q_bias')}' / 'v_bias'`,
      w.name('qkv.bias'),
    );
  }
  // mixed_qkv.reshape(bsz, tgt_len, 3, num_heads, head_dim): split without copying the weight
  const mixedQkv = reshape(linear(hiddenStates, qkvWeight, qkvBias), [0, 0, 3, H, headDim]);
  const query = transpose(gather(mixedQkv, intScalar(g, 0), 2), [0, 2, 1, 3]); // [B, H, T, hd]
  const keyT = transpose(gather(mixedQkv, intScalar(g, 1), 2), [0, 2, 3, 1]); // [B, H, hd, T]
  const value = transpose(gather(mixedQkv, intScalar(g, 2), 2), [0, 2, 1, 3]);
  const scale = headDim ** -0.5;
  const attentionProbs = softmax(mul(matmul(query, keyT), scale), -1);
  const context = reshape(transpose(matmul(attentionProbs, value), [0, 2, 1, 3]), [0, 0, D]);
  return w.linear(context, 'projection', [D, D], true);
}

/** Blip2MLP: fc1, GELU, fc2. */
function mlp(w: WeightScope, config: Blip2VisionConfig, hiddenStates: Value): Value {
  const { hiddenSize: D, intermediateSize: I } = config;
  const h = gelu(w.linear(hiddenStates, 'fc1', [I, D], true));
  return w.linear(h, 'fc2', [D, I], true);
}

/** Blip2EncoderLayer: pre-LN attention and MLP, each with a residual. */
function encoderLayer(
  g: GraphBuilder,
  w: WeightScope,
  config: Blip2VisionConfig,
  hiddenStates: Value,
  zeros: () => Value,
): Value {
  const D = config.hiddenSize;
  const eps = config.layerNormEps;
  const ln1 = layerNorm(hiddenStates, w.get('layer_norm1.weight', [D]), w.get('layer_norm1.bias', [D]), eps);
  const h = add(hiddenStates, attention(g, w.at('self_attn.'), config, ln1, zeros));
  const ln2 = layerNorm(h, w.get('layer_norm2.weight', [D]), w.get('layer_norm2.bias', [D]), eps);
  return add(h, mlp(w.at('mlp.'), config, ln2));
}

/**
 * Blip2VisionModel as a graph: `pixel_values [B,3,S,S]` (dynamic batch) to
 * `last_hidden_state [B,1+P,D]` and `pooler_output [B,D]`.
 */
export function buildVisionModel(
  config: Blip2VisionConfig,
  weights: WeightLookup,
  options: VisionModelOptions = {},
): BuiltGraph {
  const { hiddenSize: D, imageSize: S, layerNormEps: eps } = config;
  if (config.imageSize % config.patchSize !== 0) {
    // the Conv would drop the remainder silently, and position embeddings would not line up
    throw new VisionEncoderError(
      'E_OPTION',
      `vision_model: image_size ${S} is not a multiple of patch_size ${config.patchSize}`,
    );
  }
  if (config.hiddenAct !== 'gelu') {
    throw new VisionEncoderError(
      'E_OPTION',
      `vision_model: hidden_act '${config.hiddenAct}' is not supported (EVA ViT-g uses 'gelu')`,
    );
  }
  const g = new GraphBuilder(options.name ?? 'vision_model', { weights });
  const root = new WeightScope(g, options.prefix ?? 'vision_model.');
  const io = visionModelIO(config, options);
  const tokenDims = io.outputs[0].dims;
  const pixelValues = g.input(VISION_MODEL_IO.pixelValues, 'float32', io.inputs[0].dims);

  let zerosValue: Value | undefined;
  const zeros = () => {
    zerosValue ??= g.constant(float32([D]), 'k_bias_zeros');
    return zerosValue;
  };

  let hiddenStates = g.scope('embeddings', () => embeddings(g, root.at('embeddings.'), config, pixelValues));
  const all: Value[] = [hiddenStates];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const layer = root.at(`encoder.layers.${i}.`);
    const input = hiddenStates;
    hiddenStates = g.scope(`layers.${i}`, () => encoderLayer(g, layer, config, input, zeros));
    all.push(hiddenStates);
  }

  const post = root.at('post_layernorm.');
  const postW = post.get('weight', [D]);
  const postB = post.get('bias', [D]);
  const lastHiddenState = layerNorm(hiddenStates, postW, postB, eps);
  // the reference takes the CLS row of the already normalized sequence and normalizes it again
  const pooledOutput = layerNorm(gather(lastHiddenState, intScalar(g, 0), 1), postW, postB, eps);

  g.output(lastHiddenState, VISION_MODEL_IO.lastHiddenState, 'float32', tokenDims);
  g.output(pooledOutput, VISION_MODEL_IO.poolerOutput, 'float32', ['batch', D]);
  if (options.outputHiddenStates) {
    for (const [i, h] of all.entries()) g.output(h, VISION_MODEL_IO.hiddenStates(i), 'float32', tokenDims);
  }
  return g.build();
}
