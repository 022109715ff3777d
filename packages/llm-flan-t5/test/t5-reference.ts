/**
 * modeling_t5.py transcribed in float64, one sequence at a time, and random checkpoints
 * for it: the reference the variant and activation tests hold the graphs to.
 */
import type { T5Config } from '@blip2/configs';
import { relativePositionBucket } from '../src/index.js';

export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

export type Mat = { rows: number; cols: number; data: Float32Array };

export function baseConfig(over: Partial<T5Config>): T5Config {
  return {
    modelType: 't5',
    vocabSize: 23,
    dModel: 10,
    dKv: 4,
    dFf: 7,
    numLayers: 2,
    numDecoderLayers: 3,
    numHeads: 3,
    relativeAttentionNumBuckets: 6,
    relativeAttentionMaxDistance: 9,
    dropoutRate: 0,
    layerNormEpsilon: 1e-6,
    initializerFactor: 1,
    feedForwardProj: 'relu',
    denseActFn: 'relu',
    isGatedAct: false,
    isEncoderDecoder: true,
    useCache: true,
    padTokenId: 0,
    eosTokenId: 1,
    decoderStartTokenId: 0,
    classifierDropout: 0,
    tieWordEmbeddings: true,
    scaleDecoderOutputs: true,
    ...over,
  };
}

/** Random checkpoint for `config` under `language_model.`. */
export function randomWeights(config: T5Config, seed: number, withLmHead: boolean): Map<string, Mat> {
  const rand = seeded(seed);
  const { dModel: D, dKv, numHeads: H, dFf: F, vocabSize: V } = config;
  const inner = H * dKv;
  const w = new Map<string, Mat>();
  const put = (name: string, rows: number, cols: number, scale = 0.8) =>
    w.set(`language_model.${name}`, {
      rows,
      cols,
      data: Float32Array.from({ length: rows * cols }, () => scale * rand()),
    });
  const norm = (name: string) =>
    w.set(`language_model.${name}`, {
      rows: 1,
      cols: D,
      data: Float32Array.from({ length: D }, () => 1 + 0.3 * rand()),
    });
  put('shared.weight', V, D, 2);
  if (withLmHead) put('lm_head.weight', V, D, 2);
  const ff = (at: string) => {
    norm(`${at}.layer_norm.weight`);
    if (config.isGatedAct) {
      put(`${at}.DenseReluDense.wi_0.weight`, F, D);
      put(`${at}.DenseReluDense.wi_1.weight`, F, D);
    } else put(`${at}.DenseReluDense.wi.weight`, F, D);
    put(`${at}.DenseReluDense.wo.weight`, D, F);
  };
  const attn = (at: string, kind: string, bias: boolean) => {
    norm(`${at}.layer_norm.weight`);
    for (const p of ['q', 'k', 'v']) put(`${at}.${kind}.${p}.weight`, inner, D);
    put(`${at}.${kind}.o.weight`, D, inner);
    if (bias) put(`${at}.${kind}.relative_attention_bias.weight`, config.relativeAttentionNumBuckets, H, 2);
  };
  for (let i = 0; i < config.numLayers; i++) {
    attn(`encoder.block.${i}.layer.0`, 'SelfAttention', i === 0);
    ff(`encoder.block.${i}.layer.1`);
  }
  norm('encoder.final_layer_norm.weight');
  for (let i = 0; i < config.numDecoderLayers; i++) {
    attn(`decoder.block.${i}.layer.0`, 'SelfAttention', i === 0);
    attn(`decoder.block.${i}.layer.1`, 'EncDecAttention', false);
    ff(`decoder.block.${i}.layer.2`);
  }
  norm('decoder.final_layer_norm.weight');
  return w;
}

// ---- modeling_t5.py in float64, one sequence at a time -------------------------------

export type Rows = number[][];

export function reference(
  config: T5Config,
  w: Map<string, Mat>,
  embeds: Rows,
  mask: number[],
  decoderIds: number[],
) {
  const { dKv, numHeads: H } = config;
  const get = (name: string) => w.get(`language_model.${name}`) as Mat;
  const linear = (x: Rows, name: string) => {
    const m = get(name);
    return x.map((r) =>
      Array.from({ length: m.rows }, (_, o) => r.reduce((s, v, i) => s + v * m.data[o * m.cols + i], 0)),
    );
  };
  const rmsNorm = (x: Rows, name: string) => {
    const g = get(name).data;
    return x.map((r) => {
      const inv = 1 / Math.sqrt(r.reduce((s, v) => s + v * v, 0) / r.length + config.layerNormEpsilon);
      return r.map((v, i) => g[i] * v * inv);
    });
  };
  const addRows = (a: Rows, b: Rows) => a.map((r, i) => r.map((v, j) => v + b[i][j]));
  const act = activation(config.denseActFn);
  const ff = (x: Rows, at: string) => {
    const h = rmsNorm(x, `${at}.layer_norm.weight`);
    const inner = config.isGatedAct
      ? ((a: Rows, b: Rows) => a.map((r, i) => r.map((v, j) => act(v) * b[i][j])))(
          linear(h, `${at}.DenseReluDense.wi_0.weight`),
          linear(h, `${at}.DenseReluDense.wi_1.weight`),
        )
      : linear(h, `${at}.DenseReluDense.wi.weight`).map((r) => r.map(act));
    return addRows(x, linear(inner, `${at}.DenseReluDense.wo.weight`));
  };
  // bias(h, i, j): position bias + mask, added to unscaled q.k
  const attention = (
    q: Rows,
    k: Rows,
    v: Rows,
    bias: (h: number, i: number, j: number) => number,
    o: string,
  ) => {
    const out = q.map(() => new Array(H * dKv).fill(0));
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < q.length; i++) {
        const s = k.map((kr, j) => {
          let dot = 0;
          for (let d = 0; d < dKv; d++) dot += q[i][h * dKv + d] * kr[h * dKv + d];
          return dot + bias(h, i, j);
        });
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j < k.length; j++)
          for (let d = 0; d < dKv; d++) out[i][h * dKv + d] += (e[j] / z) * v[j][h * dKv + d];
      }
    }
    return linear(out, o);
  };
  const table = (stack: string) =>
    get(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`).data;
  const bucket = (rel: number, bidirectional: boolean) =>
    relativePositionBucket(rel, {
      bidirectional,
      numBuckets: config.relativeAttentionNumBuckets,
      maxDistance: config.relativeAttentionMaxDistance,
    });
  const MIN = -3.4028234663852886e38;

  let x = embeds;
  const encTable = table('encoder');
  const encBias = (h: number, i: number, j: number) =>
    encTable[bucket(j - i, true) * H + h] + (mask[j] ? 0 : MIN);
  for (let l = 0; l < config.numLayers; l++) {
    const at = `encoder.block.${l}.layer.0`;
    const n = rmsNorm(x, `${at}.layer_norm.weight`);
    const sa = `${at}.SelfAttention`;
    x = addRows(
      x,
      attention(
        linear(n, `${sa}.q.weight`),
        linear(n, `${sa}.k.weight`),
        linear(n, `${sa}.v.weight`),
        encBias,
        `${sa}.o.weight`,
      ),
    );
    x = ff(x, `encoder.block.${l}.layer.1`);
  }
  const encoderOut = rmsNorm(x, 'encoder.final_layer_norm.weight');

  const shared = get('shared.weight');
  let y: Rows = decoderIds.map((id) =>
    Array.from(shared.data.subarray(id * shared.cols, (id + 1) * shared.cols)),
  );
  const decTable = table('decoder');
  const selfBias = (h: number, i: number, j: number) =>
    decTable[bucket(j - i, false) * H + h] + (j > i ? MIN : 0);
  const crossBias = (_h: number, _i: number, j: number) => (mask[j] ? 0 : MIN);
  for (let l = 0; l < config.numDecoderLayers; l++) {
    const sa = `decoder.block.${l}.layer.0.SelfAttention`;
    let n = rmsNorm(y, `decoder.block.${l}.layer.0.layer_norm.weight`);
    y = addRows(
      y,
      attention(
        linear(n, `${sa}.q.weight`),
        linear(n, `${sa}.k.weight`),
        linear(n, `${sa}.v.weight`),
        selfBias,
        `${sa}.o.weight`,
      ),
    );
    const ca = `decoder.block.${l}.layer.1.EncDecAttention`;
    n = rmsNorm(y, `decoder.block.${l}.layer.1.layer_norm.weight`);
    y = addRows(
      y,
      attention(
        linear(n, `${ca}.q.weight`),
        linear(encoderOut, `${ca}.k.weight`),
        linear(encoderOut, `${ca}.v.weight`),
        crossBias,
        `${ca}.o.weight`,
      ),
    );
    y = ff(y, `decoder.block.${l}.layer.2`);
  }
  let out = rmsNorm(y, 'decoder.final_layer_norm.weight');
  if (config.scaleDecoderOutputs) out = out.map((r) => r.map((v) => v * config.dModel ** -0.5));
  const logits = linear(out, config.tieWordEmbeddings ? 'shared.weight' : 'lm_head.weight');
  return { encoderOut, logits };
}

/** ACT2FN's activations a T5 FFN uses, in float64. */
export function activation(name: string): (v: number) => number {
  if (name === 'relu') return (v) => Math.max(v, 0);
  // torch.nn.GELU(): x * Phi(x), with the exact erf
  if (name === 'gelu') return (v) => 0.5 * v * (1 + erf(v / Math.SQRT2));
  // NewGELUActivation / gelu_pytorch_tanh: the tanh approximation
  if (name === 'gelu_new' || name === 'gelu_pytorch_tanh')
    return (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  throw new Error(`no float64 reference for activation '${name}'`);
}

/**
 * erf in float64 (JavaScript has none): the Maclaurin series below 2.5 (terms stay under
 * ~200, so ~1e-13 is kept), the continued fraction of erfc above, ~1e-15 there.
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 2.5) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 100 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + 2 / (a + ...)))))
  let f = a;
  for (let k = 80; k >= 1; k--) f = a + k / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}
