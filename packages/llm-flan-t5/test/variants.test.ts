/**
 * The T5 variants the tiny fixture does not cover (it is gated-GELU, tied without
 * rescaling, H * d_kv = d_model), checked against a plain float64 TypeScript
 * transcription of modeling_t5.py on random weights: ReLU `DenseReluDense`,
 * the original T5's tied `lm_head` with `d_model ** -0.5`, an untied `lm_head`,
 * and H * d_kv != d_model.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import type { T5Config } from '@blip2/configs';
import { serializeSafetensors } from '@blip2/safetensors';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { float32, int64, maxAbsDiff } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { buildT5, relativePositionBucket, T5Adapter } from '../src/index.js';

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

type Mat = { rows: number; cols: number; data: Float32Array };

function baseConfig(over: Partial<T5Config>): T5Config {
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
function randomWeights(config: T5Config, seed: number, withLmHead: boolean): Map<string, Mat> {
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

type Rows = number[][];

function reference(
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
  const act = (v: number) =>
    config.denseActFn === 'relu'
      ? Math.max(v, 0)
      : 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
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

const variants: { name: string; config: T5Config; lmHead: boolean }[] = [
  {
    name: 'ReLU DenseReluDense, tied lm_head scaled by d_model^-0.5, 3 heads x 4 != 10',
    config: baseConfig({}),
    lmHead: false,
  },
  {
    name: 'gated-gelu, untied lm_head, no scaling, 3 heads x 4 != 10',
    config: baseConfig({
      feedForwardProj: 'gated-gelu',
      denseActFn: 'gelu_new',
      isGatedAct: true,
      tieWordEmbeddings: false,
      scaleDecoderOutputs: false,
    }),
    lmHead: true,
  },
];

describe('T5 variants against a float64 transcription of modeling_t5.py', () => {
  variants.forEach((v, n) => {
    it(v.name, async () => {
      const weights = randomWeights(v.config, 11 + n, v.lmHead);
      const dir = mkdtempSync(join(tmpdir(), 't5-variant-'));
      const tensors = Object.fromEntries(
        [...weights].map(([name, m]) => [
          name,
          {
            dtype: 'F32' as const,
            shape: m.rows === 1 ? [m.cols] : [m.rows, m.cols],
            data: new Uint8Array(m.data.buffer),
          },
        ]),
      );
      writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
      const adapter = await T5Adapter.load(
        v.config,
        buildT5(v.config, await openWeightsFromDir(dir)),
        createNodeBackend(),
      );

      // a right-padded prompt of 14 tokens long enough to reach the logarithmic buckets
      const S = 14;
      const rand = seeded(99 + n);
      const embeds: Rows = Array.from({ length: S }, () =>
        Array.from({ length: v.config.dModel }, () => 2 * rand()),
      );
      const mask = Array.from({ length: S }, (_, t) => (t < 11 ? 1 : 0));
      const decoderIds = [0, 5, 17, 3, 3, 22, 8, 1, 12, 9, 14];
      const expected = reference(v.config, weights, embeds, mask, decoderIds);

      const embedsT = float32([1, S, v.config.dModel], embeds.flat());
      const maskT = int64([1, S], mask);
      const { lastHiddenState } = await adapter.encode(embedsT, maskT);
      const encDiff = maxAbsDiff(lastHiddenState, float32(lastHiddenState.dims, expected.encoderOut.flat()));
      expect(encDiff).toBeLessThan(1e-4);
      const full = await adapter.decode(
        int64([1, decoderIds.length], decoderIds),
        await adapter.encoderCache(embedsT, maskT),
      );
      const logitsDiff = maxAbsDiff(full.logits, float32(full.logits.dims, expected.logits.flat()));
      expect(logitsDiff).toBeLessThan(1e-4);
      // and token by token through the cache
      let out = await adapter.prefill(embedsT, maskT);
      const V = v.config.vocabSize;
      for (let t = 0; t < decoderIds.length; t++) {
        if (t > 0) out = await adapter.step(int64([1, 1], [decoderIds[t]]), out.cache);
        expect(maxAbsDiff(out.logits, float32([1, 1, V], expected.logits[t]))).toBeLessThan(1e-4);
      }
      console.log(`${v.name}: encoder ${encDiff.toExponential(2)}, logits ${logitsDiff.toExponential(2)}`);
      await adapter.release();
    });
  });
});
