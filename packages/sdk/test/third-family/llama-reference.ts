/**
 * Llama's forward in float64, plain TypeScript, one unpadded row at a time, written from
 * transformers' `modeling_llama.py` (LlamaRMSNorm, LlamaRotaryEmbedding,
 * apply_rotary_pos_emb, LlamaAttention, LlamaMLP), independently of the graphs of
 * ./llama.ts: what the third family's ONNX run is checked against.
 */
import type { LlamaConfig } from './llama.js';

/** A row-major float64 matrix [rows, cols]. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** `language_model.*` weights (without the prefix) as float64 matrices / vectors. */
export type LlamaWeights = ReadonlyMap<string, Matrix>;

function get(w: LlamaWeights, name: string): Matrix {
  const m = w.get(name);
  if (!m) throw new Error(`reference: no weight ${name}`);
  return m;
}

/** x [T, in] @ W^T with W [out, in] (torch.nn.Linear without bias). */
function linear(x: Matrix, w: Matrix): Matrix {
  const out = new Float64Array(x.rows * w.rows);
  for (let t = 0; t < x.rows; t++) {
    for (let o = 0; o < w.rows; o++) {
      let s = 0;
      for (let i = 0; i < x.cols; i++) s += x.data[t * x.cols + i] * w.data[o * w.cols + i];
      out[t * w.rows + o] = s;
    }
  }
  return { rows: x.rows, cols: w.rows, data: out };
}

function addInto(a: Matrix, b: Matrix): Matrix {
  return { ...a, data: a.data.map((v, i) => v + b.data[i]) };
}

function rmsNorm(x: Matrix, weight: Matrix, eps: number): Matrix {
  const out = new Float64Array(x.data.length);
  for (let t = 0; t < x.rows; t++) {
    let ms = 0;
    for (let i = 0; i < x.cols; i++) ms += x.data[t * x.cols + i] ** 2;
    const scale = 1 / Math.sqrt(ms / x.cols + eps);
    for (let i = 0; i < x.cols; i++) out[t * x.cols + i] = x.data[t * x.cols + i] * scale * weight.data[i];
  }
  return { ...x, data: out };
}

/** q or k of one head at position `pos`, rotated in place: x*cos + rotate_half(x)*sin. */
function rotate(v: Float64Array, pos: number, theta: number): void {
  const d = v.length;
  const half = d / 2;
  const x = Float64Array.from(v);
  for (let j = 0; j < d; j++) {
    const freq = pos * theta ** (-(2 * (j % half)) / d);
    const rotated = j < half ? -x[j + half] : x[j - half];
    v[j] = x[j] * Math.cos(freq) + rotated * Math.sin(freq);
  }
}

function attention(c: LlamaConfig, w: LlamaWeights, p: string, x: Matrix): Matrix {
  const T = x.rows;
  const d = c.hiddenSize;
  const h = c.numAttentionHeads;
  const dh = d / h;
  const q = linear(x, get(w, `${p}q_proj.weight`));
  const k = linear(x, get(w, `${p}k_proj.weight`));
  const v = linear(x, get(w, `${p}v_proj.weight`));
  const head = (m: Matrix, t: number, hh: number) => m.data.subarray(t * d + hh * dh, t * d + (hh + 1) * dh);
  for (let t = 0; t < T; t++) {
    for (let hh = 0; hh < h; hh++) {
      rotate(head(q, t, hh), t, c.ropeTheta);
      rotate(head(k, t, hh), t, c.ropeTheta);
    }
  }
  const context = new Float64Array(T * d);
  for (let hh = 0; hh < h; hh++) {
    for (let t = 0; t < T; t++) {
      // causal: position t sees keys 0..t
      const scores = new Float64Array(t + 1);
      let max = -Infinity;
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        const qs = head(q, t, hh);
        const ks = head(k, s, hh);
        for (let j = 0; j < dh; j++) dot += qs[j] * ks[j];
        scores[s] = dot / Math.sqrt(dh);
        max = Math.max(max, scores[s]);
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) sum += scores[s] = Math.exp(scores[s] - max);
      for (let s = 0; s <= t; s++) {
        const vs = head(v, s, hh);
        for (let j = 0; j < dh; j++) context[t * d + hh * dh + j] += (scores[s] / sum) * vs[j];
      }
    }
  }
  return linear({ rows: T, cols: d, data: context }, get(w, `${p}o_proj.weight`));
}

function mlp(w: LlamaWeights, p: string, x: Matrix): Matrix {
  const gate = linear(x, get(w, `${p}gate_proj.weight`));
  const up = linear(x, get(w, `${p}up_proj.weight`));
  const act = gate.data.map((g, i) => (g / (1 + Math.exp(-g))) * up.data[i]);
  return linear({ ...gate, data: act }, get(w, `${p}down_proj.weight`));
}

/** Logits [T, vocab] of one row's inputs_embeds [T, hidden] (no padding: positions 0..T-1). */
export function llamaLogits(c: LlamaConfig, w: LlamaWeights, inputsEmbeds: Matrix): Matrix {
  let x = inputsEmbeds;
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    x = addInto(
      x,
      attention(c, w, `${p}self_attn.`, rmsNorm(x, get(w, `${p}input_layernorm.weight`), c.rmsNormEps)),
    );
    x = addInto(
      x,
      mlp(w, `${p}mlp.`, rmsNorm(x, get(w, `${p}post_attention_layernorm.weight`), c.rmsNormEps)),
    );
  }
  x = rmsNorm(x, get(w, 'model.norm.weight'), c.rmsNormEps);
  return linear(x, get(w, c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'));
}

/** The first index of the largest value (torch.argmax's tie rule). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * Greedy decoding by recomputing the whole row each step (no cache): the tokens after
 * `inputsEmbeds`, stopping after `eos` or `maxNewTokens`.
 */
export function llamaGreedy(
  c: LlamaConfig,
  w: LlamaWeights,
  inputsEmbeds: Matrix,
  maxNewTokens: number,
  eos: number,
): number[] {
  const table = get(w, 'model.embed_tokens.weight');
  let x = inputsEmbeds;
  const tokens: number[] = [];
  while (tokens.length < maxNewTokens) {
    const logits = llamaLogits(c, w, x);
    const next = argmax(logits.data.subarray((x.rows - 1) * logits.cols, x.rows * logits.cols));
    tokens.push(next);
    if (next === eos) break;
    const data = new Float64Array((x.rows + 1) * x.cols);
    data.set(x.data);
    data.set(table.data.subarray(next * table.cols, (next + 1) * table.cols), x.rows * x.cols);
    x = { rows: x.rows + 1, cols: x.cols, data };
  }
  return tokens;
}
