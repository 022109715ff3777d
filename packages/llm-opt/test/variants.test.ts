// The OPT variants the tiny fixture does not exercise (post-LN as opt-350m,
// project_in/project_out, a stored lm_head, no biases, non-affine layer norms),
// checked against a float64 TypeScript transcription of modeling_opt.py's forward
// over random synthetic checkpoints.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import type { OPTConfig } from '@blip2/configs';
import { seeded } from '@blip2/fixtures';
import { serializeSafetensors, type TensorBytes } from '@blip2/safetensors';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { float32, gather, int64, maxAbsDiff, slice } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { buildOpt, OptAdapter } from '../src/index.js';
import { ids } from './tiny.js';

const base: OPTConfig = {
  modelType: 'opt',
  vocabSize: 31,
  hiddenSize: 8,
  numHiddenLayers: 2,
  ffnDim: 11,
  maxPositionEmbeddings: 16,
  doLayerNormBefore: true,
  removeFinalLayerNorm: false,
  wordEmbedProjDim: 8,
  dropout: 0,
  attentionDropout: 0,
  numAttentionHeads: 2,
  activationFunction: 'relu',
  layerdrop: 0,
  initStd: 0.02,
  useCache: true,
  padTokenId: 1,
  bosTokenId: 2,
  eosTokenId: 2,
  enableBias: true,
  layerNormElementwiseAffine: true,
  tieWordEmbeddings: true,
};

type Weights = Map<string, { shape: number[]; data: Float32Array }>;

/** Random weights with the names and shapes OPTForCausalLM saves for `c`. */
function randomCheckpoint(c: OPTConfig, storeLmHead: boolean, seed: number): Weights {
  const rand = seeded(seed);
  const w: Weights = new Map();
  const put = (name: string, shape: number[], around = 0) =>
    w.set(name, {
      shape,
      data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => around + rand()),
    });
  const d = c.hiddenSize;
  const dw = c.wordEmbedProjDim;
  const p = 'language_model.model.decoder.';
  put(`${p}embed_tokens.weight`, [c.vocabSize, dw]);
  put(`${p}embed_positions.weight`, [c.maxPositionEmbeddings + 2, d]);
  if (dw !== d) {
    put(`${p}project_in.weight`, [d, dw]);
    put(`${p}project_out.weight`, [dw, d]);
  }
  const ln = (name: string) => {
    if (!c.layerNormElementwiseAffine) return;
    put(`${name}.weight`, [d], 1);
    put(`${name}.bias`, [d]);
  };
  const lin = (name: string, out: number, inp: number) => {
    put(`${name}.weight`, [out, inp]);
    if (c.enableBias) put(`${name}.bias`, [out]);
  };
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const l = `${p}layers.${i}.`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) lin(`${l}self_attn.${proj}`, d, d);
    ln(`${l}self_attn_layer_norm`);
    lin(`${l}fc1`, c.ffnDim, d);
    lin(`${l}fc2`, d, c.ffnDim);
    ln(`${l}final_layer_norm`);
  }
  if (c.doLayerNormBefore && !c.removeFinalLayerNorm) ln(`${p}final_layer_norm`);
  if (storeLmHead) put('language_model.lm_head.weight', [c.vocabSize, dw]);
  return w;
}

// ---- the reference forward, written out in float64 -----------------------------

type Mat = number[][]; // [tokens][features]

function linearRef(x: Mat, w: Weights, name: string): Mat {
  const { shape, data } =
    w.get(`${name}.weight`) ??
    w.get(name) ??
    (() => {
      throw new Error(name);
    })();
  const bias = w.get(`${name}.bias`)?.data;
  const [out, inp] = shape;
  return x.map((row) =>
    Array.from({ length: out }, (_, o) => {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < inp; i++) s += row[i] * data[o * inp + i];
      return s;
    }),
  );
}

function layerNormRef(x: Mat, w: Weights, name: string): Mat {
  const g = w.get(`${name}.weight`)?.data;
  const b = w.get(`${name}.bias`)?.data;
  return x.map((row) => {
    const mean = row.reduce((a, v) => a + v, 0) / row.length;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / row.length;
    return row.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * (g ? g[i] : 1) + (b ? b[i] : 0));
  });
}

/** OPTForCausalLM(input_ids, attention_mask).logits for one row. */
function referenceLogits(c: OPTConfig, w: Weights, tokens: number[], mask: number[]): Mat {
  const p = 'language_model.model.decoder.';
  const d = c.hiddenSize;
  const dw = c.wordEmbedProjDim;
  const table = (name: string, row: number, width: number) =>
    Array.from(w.get(name)?.data.subarray(row * width, (row + 1) * width) ?? []);
  // position_ids = cumsum(attention_mask) * attention_mask - 1
  const positions: number[] = [];
  let cum = 0;
  for (const m of mask) {
    cum += m;
    positions.push(cum * m - 1);
  }
  let embeds: Mat = tokens.map((t) => table(`${p}embed_tokens.weight`, t, dw));
  if (dw !== d) embeds = linearRef(embeds, w, `${p}project_in`);
  let h: Mat = embeds.map((row, i) =>
    row.map((v, j) => v + table(`${p}embed_positions.weight`, positions[i] + 2, d)[j]),
  );
  const heads = c.numAttentionHeads;
  const hd = d / heads;
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const L = `${p}layers.${l}.`;
    let residual = h;
    let x = c.doLayerNormBefore ? layerNormRef(h, w, `${L}self_attn_layer_norm`) : h;
    const q = linearRef(x, w, `${L}self_attn.q_proj`);
    const k = linearRef(x, w, `${L}self_attn.k_proj`);
    const v = linearRef(x, w, `${L}self_attn.v_proj`);
    const ctx: Mat = x.map(() => new Array(d).fill(0));
    for (let head = 0; head < heads; head++) {
      for (let i = 0; i < tokens.length; i++) {
        const scores = k.map((kr, j) => {
          if (j > i || !mask[j]) return Number.NEGATIVE_INFINITY;
          let s = 0;
          for (let e = 0; e < hd; e++) s += q[i][head * hd + e] * kr[head * hd + e];
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const ex = scores.map((s) => (m === Number.NEGATIVE_INFINITY ? 1 : Math.exp(s - m)));
        const z = ex.reduce((a, b) => a + b, 0);
        for (let j = 0; j < tokens.length; j++)
          for (let e = 0; e < hd; e++) ctx[i][head * hd + e] += (ex[j] / z) * v[j][head * hd + e];
      }
    }
    x = linearRef(ctx, w, `${L}self_attn.out_proj`);
    h = residual.map((r, i) => r.map((val, j) => val + x[i][j]));
    if (!c.doLayerNormBefore) h = layerNormRef(h, w, `${L}self_attn_layer_norm`);
    residual = h;
    x = c.doLayerNormBefore ? layerNormRef(h, w, `${L}final_layer_norm`) : h;
    x = linearRef(
      linearRef(x, w, `${L}fc1`).map((r) => r.map((val) => Math.max(0, val))),
      w,
      `${L}fc2`,
    );
    h = residual.map((r, i) => r.map((val, j) => val + x[i][j]));
    if (!c.doLayerNormBefore) h = layerNormRef(h, w, `${L}final_layer_norm`);
  }
  if (c.doLayerNormBefore && !c.removeFinalLayerNorm) h = layerNormRef(h, w, `${p}final_layer_norm`);
  if (dw !== d) h = linearRef(h, w, `${p}project_out`);
  return linearRef(
    h,
    w,
    w.has('language_model.lm_head.weight') ? 'language_model.lm_head.weight' : `${p}embed_tokens.weight`,
  );
}

async function adapterFor(c: OPTConfig, w: Weights) {
  const dir = mkdtempSync(join(tmpdir(), 'opt-variant-'));
  const tensors: Record<string, TensorBytes> = {};
  for (const [name, t] of w)
    tensors[name] = { dtype: 'F32', shape: t.shape, data: new Uint8Array(t.data.buffer) };
  writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
  const weights = await openWeightsFromDir(dir);
  const adapter = await OptAdapter.load(c, buildOpt(c, weights), createNodeBackend());
  // the graphs map the file themselves: the header reader is no longer needed
  await weights.close();
  return adapter;
}

const variants: [string, OPTConfig, boolean][] = [
  [
    'post-LN with project_in/project_out and a stored lm_head (opt-350m layout)',
    { ...base, doLayerNormBefore: false, wordEmbedProjDim: 6, tieWordEmbeddings: false },
    true,
  ],
  [
    'pre-LN without biases, non-affine layer norms',
    { ...base, enableBias: false, layerNormElementwiseAffine: false },
    false,
  ],
  ['pre-LN with _remove_final_layer_norm', { ...base, removeFinalLayerNorm: true }, false],
];

describe('OPT variants against a float64 transcription of the reference forward', () => {
  for (const [name, config, storeLmHead] of variants) {
    it(name, async () => {
      const w = randomCheckpoint(config, storeLmHead, name.length);
      const adapter = await adapterFor(config, w);
      // row 1 is left padded: positions must restart at its first real token
      const rows = [
        [2, 5, 9, 14, 3, 7],
        [1, 1, 2, 8, 30, 4],
      ];
      const masks = [
        [1, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
      ];
      const inputIds = ids(rows);
      const mask = int64([2, 6], masks.flat());
      const embeds = await adapter.embed(inputIds);
      const logits = await adapter.forward(embeds, mask);
      const { logits: last, cache } = await adapter.prefill(embeds, mask);
      // the prefill's LM head runs at the last position only, with the same numbers
      expect(last.dims).toEqual([2, 1, config.vocabSize]);
      let worst = maxAbsDiff(last, slice(logits, 1, 5, 6));
      for (let b = 0; b < 2; b++) {
        const expected = referenceLogits(config, w, rows[b], masks[b]);
        for (let t = 0; t < 6; t++) {
          if (!masks[b][t]) continue;
          const got = slice(gather(logits, 0, [b]), 1, t, t + 1);
          worst = Math.max(worst, maxAbsDiff(got, float32(got.dims, expected[t])));
        }
      }
      // one cached step against the reference over the extended row
      const next = await adapter.step(ids([[11], [12]]), cache);
      for (let b = 0; b < 2; b++) {
        const expected = referenceLogits(config, w, [...rows[b], [11, 12][b]], [...masks[b], 1]);
        const got = gather(next.logits, 0, [b]);
        worst = Math.max(worst, maxAbsDiff(got, float32(got.dims, expected[6])));
      }
      console.log(`${name}: max |diff| ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(1e-4);
      await adapter.release();
    });
  }
});
