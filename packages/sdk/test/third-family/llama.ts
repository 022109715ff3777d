/**
 * A third language-model family, written as a package outside blip2-ts would write it:
 * Llama (transformers' `modeling_llama.py`: RMSNorm before each block, rotary positions,
 * a SwiGLU feed-forward, no biases), the decoder of InstructBLIP-Vicuna and of most
 * open chat models. It touches no blip2-ts source: its config reader, its graphs (built
 * with @blip2/onnx), its adapter (on @blip2/onnx's KV adapter core) and its VQA presets
 * are all here, and `registerLanguageModel(llamaModule)` makes `text_config.model_type:
 * 'llama'` load through `Blip2ForConditionalGeneration.fromPretrained`.
 * docs/architecture.md shows this module; ./third-family.test.ts checks it against a
 * float64 forward (./llama-reference.ts).
 */
import { checkHeads, type LanguageModelConfig, textConfigFields } from '@blip2/configs';
import { defineLanguageModel, type StepOutput } from '@blip2/generation';
import {
  add,
  cast,
  concat,
  cos,
  cumsum,
  disposeLayers,
  div,
  FLOAT32_MIN,
  GraphBuilder,
  gather,
  intScalar,
  ints,
  KV_IO,
  KvAdapterCore,
  type KvAdapterErrorCode,
  type KvLayers,
  type KvSteps,
  linear,
  matmul,
  matmulTransB,
  mul,
  neg,
  reduceMean,
  reshape,
  shapeOf,
  sin,
  slice,
  softmax,
  sqrt,
  sub,
  transpose,
  unsqueeze,
  type Value,
  type WeightLookup,
  where,
} from '@blip2/onnx';
import {
  type AnyTensor,
  type Backend,
  Blip2Error,
  type BuiltGraph,
  concat as concatTensors,
  float32,
  gather as gatherRows,
  type Session,
  type Tensor,
  tensor,
} from '@blip2/tensor';

// ---- config (transformers' LlamaConfig, the fields a BLIP-2 decoder reads) ----------

export interface LlamaConfig extends LanguageModelConfig {
  readonly modelType: 'llama';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly maxPositionEmbeddings: number;
  readonly rmsNormEps: number;
  /** base of the rotary frequencies: inv_freq[j] = rope_theta^(-2j / head_dim) */
  readonly ropeTheta: number;
  readonly hiddenAct: string;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId?: number;
}

// the family's config type for @blip2/configs' typed readers (`parseTextConfigJson` of a
// 'llama' text_config is a LlamaConfig), declared where the family lives
declare module '@blip2/configs' {
  interface TextConfigRegistry {
    llama: LlamaConfig;
  }
}

/** `LlamaConfig()`'s defaults; the field errors are @blip2/configs' (file and `text_config.<field>`). */
export function parseLlamaConfig(json: unknown, file: string): LlamaConfig {
  const f = textConfigFields(json, file);
  const hiddenSize = f.size('hidden_size', 4096);
  const numAttentionHeads = f.size('num_attention_heads', 32);
  checkHeads(f, 'num_attention_heads', 'hidden_size', numAttentionHeads, hiddenSize);
  if ((hiddenSize / numAttentionHeads) % 2 !== 0)
    throw f.fieldError('hidden_size', `/ num_attention_heads must be even for rotary positions`);
  // grouped-query attention (fewer key/value heads) is a Llama 2 70B / Llama 3 feature this module leaves out
  if (f.has('num_key_value_heads') && f.size('num_key_value_heads', numAttentionHeads) !== numAttentionHeads)
    throw f.fieldError('num_key_value_heads', `must equal num_attention_heads (${numAttentionHeads}) here`);
  const hiddenAct = f.string('hidden_act', 'silu');
  if (hiddenAct !== 'silu')
    throw f.fieldError('hidden_act', `${JSON.stringify(hiddenAct)} is not supported (silu)`);
  if (f.has('rope_scaling'))
    throw f.fieldError('rope_scaling', 'is not supported (plain rotary positions only)');
  return {
    modelType: 'llama',
    vocabSize: f.size('vocab_size', 32000),
    hiddenSize,
    intermediateSize: f.size('intermediate_size', 11008),
    numHiddenLayers: f.size('num_hidden_layers', 32),
    numAttentionHeads,
    maxPositionEmbeddings: f.size('max_position_embeddings', 2048),
    rmsNormEps: f.positive('rms_norm_eps', 1e-6),
    ropeTheta: f.positive('rope_theta', 10000),
    hiddenAct,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    bosTokenId: f.index('bos_token_id', 1),
    eosTokenId: f.index('eos_token_id', 2),
    padTokenId: f.optionalIndex('pad_token_id'),
  };
}

// ---- graphs -----------------------------------------------------------------------

/** What the adapter feeds and reads. */
export const LLAMA_IO = {
  inputIds: 'input_ids',
  inputsEmbeds: 'inputs_embeds',
  attentionMask: 'attention_mask',
  logits: 'logits',
} as const;

export interface LlamaGraphs {
  /** input_ids -> inputs_embeds */
  readonly embed: BuiltGraph;
  /** inputs_embeds + attention_mask -> logits at every position + present keys/values */
  readonly prefill: BuiltGraph;
  /** input_ids + attention_mask (past + new) + past keys/values -> logits + presents */
  readonly step: BuiltGraph;
}

interface Ctx {
  readonly g: GraphBuilder;
  readonly config: LlamaConfig;
  readonly prefix: string;
}

const headDim = (c: LlamaConfig) => c.hiddenSize / c.numAttentionHeads;

function weight(c: Ctx, name: string, shape: readonly number[]): Value {
  return c.g.weight(`${c.prefix}${name}`, shape);
}

/** `LlamaRMSNorm`: x / sqrt(mean(x^2) + eps) * weight, over the last axis. */
function rmsNorm(c: Ctx, name: string, x: Value): Value {
  const variance = reduceMean(mul(x, x), [-1]);
  return mul(
    div(x, sqrt(add(variance, c.config.rmsNormEps))),
    weight(c, `${name}.weight`, [c.config.hiddenSize]),
  );
}

/** dims[1] of a shape vector as a 1-element int64 vector. */
function dim1(g: GraphBuilder, shape: Value): Value {
  return g.op1('Slice', [shape, ints(g, [1]), ints(g, [2]), ints(g, [0])]);
}

/**
 * The position of each new token, as `LlamaForCausalLM.prepare_inputs_for_generation`
 * derives it from the mask: `cumsum(attention_mask) - 1` (pads: 1), cut to the new tokens.
 * Counting attended tokens is what lets a left-padded row start at position 0.
 */
function positionIds(c: Ctx, attentionMask: Value, newTokens: Value): Value {
  const { g } = c;
  const counted = sub(cumsum(attentionMask, 1), intScalar(g, 1));
  const positions = where(cast(attentionMask, 'bool'), counted, intScalar(g, 1));
  const total = dim1(g, shapeOf(attentionMask));
  return g.op1('Slice', [positions, g.op1('Sub', [total, newTokens]), total, ints(g, [1])]);
}

/** `LlamaRotaryEmbedding`: cos and sin of position x inv_freq, the halves repeated, [B, 1, S, head_dim]. */
function rotary(c: Ctx, positions: Value): { cos: Value; sin: Value } {
  const { g, config } = c;
  const d = headDim(config);
  const invFreq = Float32Array.from({ length: d / 2 }, (_, j) => 1 / config.ropeTheta ** ((2 * j) / d));
  const freqs = mul(
    unsqueeze(cast(positions, 'float32'), [2]),
    g.constant(float32([d / 2], invFreq), 'inv_freq'),
  );
  const emb = unsqueeze(concat([freqs, freqs], -1), [1]);
  return { cos: cos(emb), sin: sin(emb) };
}

/** `apply_rotary_pos_emb`: x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1]. */
function applyRotary(c: Ctx, x: Value, r: { cos: Value; sin: Value }): Value {
  const half = headDim(c.config) / 2;
  const x1 = slice(x, [0], [half], [3]);
  const x2 = slice(x, [half], [2 * half], [3]);
  return add(mul(x, r.cos), mul(concat([neg(x2), x1], 3), r.sin));
}

/** Causal over past + new keys, never a padded key: [B, 1, S, L] bool. */
function attentionAllowed(c: Ctx, attentionMask: Value, newTokens: Value): Value {
  const { g } = c;
  const total = g.op1('Squeeze', [dim1(g, shapeOf(attentionMask)), ints(g, [0])]);
  const s = g.op1('Squeeze', [newTokens, ints(g, [0])]);
  const one = intScalar(g, 1);
  const keyIndex = g.op1('Range', [intScalar(g, 0), total, one]);
  const queryIndex = g.op1('Range', [g.op1('Sub', [total, s]), total, one]);
  const causal = g.op1('LessOrEqual', [unsqueeze(keyIndex, [0]), unsqueeze(queryIndex, [1])]);
  return g.op1('And', [causal, unsqueeze(cast(attentionMask, 'bool'), [1, 2])]);
}

interface KV {
  readonly key: Value;
  readonly value: Value;
}

/** `LlamaAttention` with the cache: rotary q and k, the past prepended, scores scaled by head_dim^-0.5. */
function attention(
  c: Ctx,
  p: string,
  hidden: Value,
  r: { cos: Value; sin: Value },
  allowed: Value,
  past: KV | null,
): { out: Value; present: KV } {
  const { config } = c;
  const d = config.hiddenSize;
  const h = config.numAttentionHeads;
  const heads = (x: Value) => transpose(reshape(x, [0, 0, h, d / h]), [0, 2, 1, 3]);
  const proj = (name: string, x: Value) => linear(x, weight(c, `${p}${name}.weight`, [d, d]));
  const query = applyRotary(c, heads(proj('q_proj', hidden)), r);
  let key = applyRotary(c, heads(proj('k_proj', hidden)), r);
  let value = heads(proj('v_proj', hidden));
  if (past) {
    key = concat([past.key, key], 2);
    value = concat([past.value, value], 2);
  }
  const probs = softmax(where(allowed, matmulTransB(query, key, (d / h) ** -0.5), FLOAT32_MIN), -1);
  const context = reshape(transpose(matmul(probs, value), [0, 2, 1, 3]), [0, 0, d]);
  return { out: proj('o_proj', context), present: { key, value } };
}

/** `LlamaMLP`: down_proj(silu(gate_proj(x)) * up_proj(x)). */
function mlp(c: Ctx, p: string, x: Value): Value {
  const { hiddenSize: d, intermediateSize: f } = c.config;
  const gate = linear(x, weight(c, `${p}gate_proj.weight`, [f, d]));
  const up = linear(x, weight(c, `${p}up_proj.weight`, [f, d]));
  const silu = mul(gate, c.g.op1('Sigmoid', [gate]));
  return linear(mul(silu, up), weight(c, `${p}down_proj.weight`, [d, f]));
}

/** `LlamaModel` + `lm_head`: embeddings to logits, one K/V pair per layer. */
function decoder(
  c: Ctx,
  inputsEmbeds: Value,
  attentionMask: Value,
  past: KV[] | null,
): { logits: Value; presents: KV[] } {
  const { g, config } = c;
  const newTokens = dim1(g, shapeOf(inputsEmbeds));
  const r = rotary(c, positionIds(c, attentionMask, newTokens));
  const allowed = attentionAllowed(c, attentionMask, newTokens);
  let hidden = inputsEmbeds;
  const presents: KV[] = [];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    const a = attention(
      c,
      `${p}self_attn.`,
      rmsNorm(c, `${p}input_layernorm`, hidden),
      r,
      allowed,
      past?.[i] ?? null,
    );
    hidden = add(hidden, a.out);
    hidden = add(hidden, mlp(c, `${p}mlp.`, rmsNorm(c, `${p}post_attention_layernorm`, hidden)));
    presents.push(a.present);
  }
  hidden = rmsNorm(c, 'model.norm', hidden);
  const head = config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return { logits: linear(hidden, weight(c, head, [config.vocabSize, config.hiddenSize])), presents };
}

/** The three graphs over a BLIP-2 checkpoint's `language_model.*` weights. */
export function buildLlama(config: LlamaConfig, weights: WeightLookup): LlamaGraphs {
  const { hiddenSize: d, vocabSize: v, numAttentionHeads: h, numHiddenLayers: layers } = config;
  const make = (name: string): Ctx => ({
    g: new GraphBuilder(name, { weights }),
    config,
    prefix: 'language_model.',
  });
  const kvDims = (seq: string) => ['batch', h, seq, headDim(config)];
  const outputs = (c: Ctx, out: { logits: Value; presents: KV[] }, seq: string) => {
    c.g.output(out.logits, LLAMA_IO.logits, 'float32', ['batch', 'sequence', v]);
    out.presents.forEach((kv, i) => {
      c.g.output(kv.key, KV_IO.presentKey(i), 'float32', kvDims(seq));
      c.g.output(kv.value, KV_IO.presentValue(i), 'float32', kvDims(seq));
    });
  };
  const embedTokens = (c: Ctx, ids: Value) => gather(weight(c, 'model.embed_tokens.weight', [v, d]), ids, 0);

  const e = make('llama.embed');
  const ids = e.g.input(LLAMA_IO.inputIds, 'int64', ['batch', 'sequence']);
  e.g.output(embedTokens(e, ids), LLAMA_IO.inputsEmbeds, 'float32', ['batch', 'sequence', d]);

  const p = make('llama.prefill');
  const embeds = p.g.input(LLAMA_IO.inputsEmbeds, 'float32', ['batch', 'sequence', d]);
  const mask = p.g.input(LLAMA_IO.attentionMask, 'int64', ['batch', 'sequence']);
  outputs(p, decoder(p, embeds, mask, null), 'sequence');

  const s = make('llama.step');
  const stepIds = s.g.input(LLAMA_IO.inputIds, 'int64', ['batch', 'sequence']);
  const stepMask = s.g.input(LLAMA_IO.attentionMask, 'int64', ['batch', 'total_sequence']);
  const past = Array.from({ length: layers }, (_, i) => ({
    key: s.g.input(KV_IO.pastKey(i), 'float32', kvDims('past_sequence')),
    value: s.g.input(KV_IO.pastValue(i), 'float32', kvDims('past_sequence')),
  }));
  outputs(s, decoder(s, embedTokens(s, stepIds), stepMask, past), 'total_sequence');

  return { embed: e.g.build(), prefill: p.g.build(), step: s.g.build() };
}

// ---- adapter ----------------------------------------------------------------------

export class LlamaError extends Blip2Error<KvAdapterErrorCode | 'E_SEQUENCE_TOO_LONG'> {
  static override readonly marker: symbol = Symbol.for('blip2.error.LlamaError');
}

export interface LlamaCache extends KvLayers {
  /** the prompt's mask and a 1 per generated token: the positions come from it */
  readonly attentionMask: Tensor<'int64'>;
}

/** Llama behind generation's adapter interface; the core checks ids and outputs and reorders the cache. */
export class LlamaAdapter {
  readonly kind = 'decoder-only' as const;
  readonly vocabSize: number;
  readonly maxPositions: number;
  private readonly core: KvAdapterCore;

  private constructor(
    readonly config: LlamaConfig,
    private readonly embedSession: Session,
    private readonly prefillSession: Session,
    steps: KvSteps,
    backend: Backend,
  ) {
    this.vocabSize = config.vocabSize;
    this.maxPositions = config.maxPositionEmbeddings;
    this.core = new KvAdapterCore({
      family: 'llama',
      adapter: 'LlamaAdapter',
      vocabSize: config.vocabSize,
      numLayers: config.numHiddenLayers,
      error: (code, message) => new LlamaError(code, message),
      ...steps,
      backend,
      sessions: [embedSession, prefillSession],
    });
  }

  static async load(config: LlamaConfig, graphs: LlamaGraphs, backend: Backend): Promise<LlamaAdapter> {
    // one step graph (no weight-first twin, no reorder step)
    const { sessions, steps } = await KvAdapterCore.loadSessions(
      backend,
      { embed: graphs.embed, prefill: graphs.prefill },
      { step: graphs.step },
      KV_IO.presents(config.numHiddenLayers),
    );
    return new LlamaAdapter(config, sessions.embed, sessions.prefill, steps, backend);
  }

  async embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    this.core.checkIds('inputIds', inputIds);
    const out = await this.embedSession.run({ [LLAMA_IO.inputIds]: inputIds });
    return this.core.output(out, LLAMA_IO.inputsEmbeds, this.embedSession.name);
  }

  async prefill(
    inputsEmbeds: Tensor<'float32'>,
    attentionMask: Tensor<'int64'>,
  ): Promise<StepOutput<LlamaCache>> {
    const out = await this.prefillSession.runOnDevice({
      [LLAMA_IO.inputsEmbeds]: inputsEmbeds,
      [LLAMA_IO.attentionMask]: attentionMask,
    });
    return {
      logits: this.core.output(out, LLAMA_IO.logits, this.prefillSession.name),
      cache: this.cacheFrom(out, attentionMask, this.prefillSession.name),
    };
  }

  async step(tokenIds: Tensor<'int64'>, cache: LlamaCache): Promise<StepOutput<LlamaCache>> {
    this.core.checkIds('tokenIds', tokenIds);
    const [b, s] = tokenIds.dims;
    const attentionMask = concatTensors(
      [cache.attentionMask, tensor('int64', [b, s], new BigInt64Array(b * s).fill(1n))],
      1,
    );
    if (attentionMask.dims[1] > this.maxPositions)
      throw new LlamaError(
        'E_SEQUENCE_TOO_LONG',
        `the sequence would pass max_position_embeddings ${this.maxPositions}`,
      );
    // one step graph (no weight-first twin, no reorder step): the core gives it with no extra feeds
    const { session } = await this.core.stepFor(b * s);
    const out = await session.runOnDevice({
      [LLAMA_IO.inputIds]: tokenIds,
      [LLAMA_IO.attentionMask]: attentionMask,
      ...this.core.feeds(cache),
    });
    const next = {
      logits: this.core.output(out, LLAMA_IO.logits, session.name),
      cache: this.cacheFrom(out, attentionMask, session.name),
    };
    await this.releaseCache(cache);
    return next;
  }

  async reorderCache(cache: LlamaCache, rows: readonly number[]): Promise<LlamaCache> {
    if (this.core.keepsRows(rows, cache.attentionMask.dims[0])) return cache;
    const [moved] = await this.core.gatherLayers([cache], rows);
    await this.releaseCache(cache);
    return { ...moved, attentionMask: gatherRows(cache.attentionMask, 0, rows) };
  }

  async releaseCache(cache: LlamaCache): Promise<void> {
    disposeLayers(cache);
  }

  async release(): Promise<void> {
    await this.core.release();
  }

  private cacheFrom(
    out: Record<string, AnyTensor>,
    attentionMask: Tensor<'int64'>,
    session: string,
  ): LlamaCache {
    return { ...this.core.layers(out, session), attentionMask };
  }
}

// ---- the module -------------------------------------------------------------------

const LLAMA_VQA = {
  prompt: 'Question: {} Answer:',
  questionPreprocess: 'lavis',
  numBeams: 5,
  lengthPenalty: -1,
  stopOn: 'eos',
  maxNewTokens: 10,
  minNewTokens: 1,
  paddingSide: 'left',
  maxPromptTokens: null,
} as const;

export const llamaModule = defineLanguageModel({
  modelType: 'llama',
  kind: 'decoder-only',
  paddingSide: 'left',
  configClass: 'LlamaConfig',
  vqaPresets: { lavis: LLAMA_VQA, paper: LLAMA_VQA },
  parseConfig: parseLlamaConfig,
  build: buildLlama,
  load: LlamaAdapter.load,
  summary: (config, raw, file) => ({
    text: {
      modelType: 'llama',
      hiddenSize: config.hiddenSize,
      layers: config.numHiddenLayers,
      heads: config.numAttentionHeads,
      vocabSize: config.vocabSize,
    },
    activation: {
      value: config.hiddenAct,
      source: raw.hidden_act != null ? `${file} text_config.hidden_act` : 'LlamaConfig default',
    },
  }),
});
