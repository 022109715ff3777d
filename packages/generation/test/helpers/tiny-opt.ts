/**
 * A plain-TypeScript OPT decoder (transformers' OPTDecoder, pre-LN, ReLU, learned
 * positions with offset 2, tied lm_head) over the tiny-blip2-opt fixture weights,
 * behind the LanguageModelAdapter interface. It recomputes the whole sequence each
 * step (the "cache" is the embeddings so far): slow but obviously right, which is
 * what a test model for the search code should be. Float64 inside.
 */
import { readSafetensorsFile } from '@blip2/safetensors/node';
import { asFloat32, float32, type Tensor } from '@blip2/tensor';
import type { LanguageModelAdapter } from '../../src/adapter.js';

interface OptConfig {
  hidden_size: number;
  num_attention_heads: number;
  num_hidden_layers: number;
  vocab_size: number;
  max_position_embeddings: number;
}

export interface OptCache {
  /** per row: the embeddings fed so far [T * D] and their attention mask */
  readonly rows: { embeds: number[]; mask: number[] }[];
}

export class TinyOpt implements LanguageModelAdapter<OptCache> {
  readonly kind = 'decoder-only' as const;
  readonly vocabSize: number;
  readonly maxPositions: number;
  /** how many times each method ran (tests check that the prompt is prefilled once) */
  readonly calls = { prefill: 0, step: 0, reorderCache: 0, embed: 0 };
  private readonly w: (name: string) => Tensor<'float32'>;
  private readonly d: number;
  private readonly heads: number;
  private readonly layers: number;

  /** The decoder of the checkpoint at `weightsPath`, read whole (the test model is small). */
  static async load(weightsPath: string, config: OptConfig, prefix = 'language_model.model.decoder.') {
    return new TinyOpt(await readSafetensorsFile(weightsPath), config, prefix);
  }

  private constructor(tensors: ReadonlyMap<string, Tensor>, config: OptConfig, prefix: string) {
    this.w = (name) => {
      const t = tensors.get(prefix + name);
      if (!t) throw new Error(`missing weight ${prefix + name}`);
      return asFloat32(t);
    };
    this.d = config.hidden_size;
    this.heads = config.num_attention_heads;
    this.layers = config.num_hidden_layers;
    this.vocabSize = config.vocab_size;
    this.maxPositions = config.max_position_embeddings;
  }

  async embed(inputIds: Tensor<'int64'>): Promise<Tensor<'float32'>> {
    this.calls.embed++;
    const table = this.w('embed_tokens.weight').data;
    const out = new Float32Array(inputIds.data.length * this.d);
    inputIds.data.forEach((id, i) => {
      out.set(table.subarray(Number(id) * this.d, (Number(id) + 1) * this.d), i * this.d);
    });
    return float32([...inputIds.dims, this.d], out);
  }

  async prefill(inputsEmbeds: Tensor<'float32'>, attentionMask: Tensor<'int64'>) {
    this.calls.prefill++;
    const [b, t, d] = inputsEmbeds.dims;
    const rows = Array.from({ length: b }, (_, r) => ({
      embeds: Array.from(inputsEmbeds.data.subarray(r * t * d, (r + 1) * t * d)),
      mask: Array.from(attentionMask.data.subarray(r * t, (r + 1) * t), Number),
    }));
    const logits = new Float32Array(b * t * this.vocabSize);
    rows.forEach((row, r) => {
      logits.set(this.decode(row.embeds, row.mask, false), r * t * this.vocabSize);
    });
    return { logits: float32([b, t, this.vocabSize], logits), cache: { rows } };
  }

  async step(tokenIds: Tensor<'int64'>, cache: OptCache) {
    this.calls.step++;
    const embeds = await this.embed(tokenIds);
    this.calls.embed--;
    const rows = cache.rows.map((row, r) => ({
      embeds: [...row.embeds, ...embeds.data.subarray(r * this.d, (r + 1) * this.d)],
      mask: [...row.mask, 1],
    }));
    const logits = new Float32Array(rows.length * this.vocabSize);
    rows.forEach((row, r) => {
      logits.set(this.decode(row.embeds, row.mask, true), r * this.vocabSize);
    });
    return { logits: float32([rows.length, 1, this.vocabSize], logits), cache: { rows } };
  }

  async reorderCache(cache: OptCache, rows: readonly number[]): Promise<OptCache> {
    this.calls.reorderCache++;
    return { rows: rows.map((r) => cache.rows[r]) };
  }

  /** logits [T, V] (or [1, V] for the last position only) of one row */
  private decode(embeds: number[], mask: number[], lastOnly: boolean): Float32Array {
    const { d, heads } = this;
    const t = mask.length;
    const hd = d / heads;
    const pos = this.w('embed_positions.weight').data;
    let h: Float64Array = new Float64Array(t * d);
    let count = 0;
    for (let i = 0; i < t; i++) {
      count += mask[i];
      const p = count * mask[i] - 1 + 2; // OPT's learned positions start at offset 2
      for (let j = 0; j < d; j++) h[i * d + j] = embeds[i * d + j] + pos[p * d + j];
    }
    for (let l = 0; l < this.layers; l++) {
      const P = `layers.${l}.`;
      const x = layerNorm(
        h,
        t,
        d,
        this.w(`${P}self_attn_layer_norm.weight`),
        this.w(`${P}self_attn_layer_norm.bias`),
      );
      const q = linear(x, t, this.w(`${P}self_attn.q_proj.weight`), this.w(`${P}self_attn.q_proj.bias`));
      const k = linear(x, t, this.w(`${P}self_attn.k_proj.weight`), this.w(`${P}self_attn.k_proj.bias`));
      const v = linear(x, t, this.w(`${P}self_attn.v_proj.weight`), this.w(`${P}self_attn.v_proj.bias`));
      const ctx = new Float64Array(t * d);
      const scale = 1 / Math.sqrt(hd);
      const att = new Float64Array(t);
      for (let hh = 0; hh < heads; hh++) {
        for (let i = 0; i < t; i++) {
          let max = Number.NEGATIVE_INFINITY;
          for (let j = 0; j < t; j++) {
            if (j > i || !mask[j]) {
              att[j] = Number.NEGATIVE_INFINITY;
              continue;
            }
            let s = 0;
            for (let c = 0; c < hd; c++) s += q[i * d + hh * hd + c] * k[j * d + hh * hd + c];
            att[j] = s * scale;
            if (att[j] > max) max = att[j];
          }
          let sum = 0;
          for (let j = 0; j < t; j++) sum += att[j] = Number.isFinite(max) ? Math.exp(att[j] - max) : 0;
          for (let j = 0; j < t; j++) {
            if (att[j] === 0) continue;
            for (let c = 0; c < hd; c++) ctx[i * d + hh * hd + c] += (att[j] / sum) * v[j * d + hh * hd + c];
          }
        }
      }
      const attnOut = linear(
        ctx,
        t,
        this.w(`${P}self_attn.out_proj.weight`),
        this.w(`${P}self_attn.out_proj.bias`),
      );
      for (let i = 0; i < h.length; i++) h[i] += attnOut[i];
      const y = layerNorm(
        h,
        t,
        d,
        this.w(`${P}final_layer_norm.weight`),
        this.w(`${P}final_layer_norm.bias`),
      );
      const f = linear(y, t, this.w(`${P}fc1.weight`), this.w(`${P}fc1.bias`));
      for (let i = 0; i < f.length; i++) f[i] = Math.max(0, f[i]);
      const o = linear(f, t, this.w(`${P}fc2.weight`), this.w(`${P}fc2.bias`));
      for (let i = 0; i < h.length; i++) h[i] += o[i];
    }
    h = layerNorm(h, t, d, this.w('final_layer_norm.weight'), this.w('final_layer_norm.bias'));
    const first = lastOnly ? t - 1 : 0;
    const table = this.w('embed_tokens.weight').data;
    const out = new Float32Array((t - first) * this.vocabSize);
    for (let i = first; i < t; i++) {
      for (let tok = 0; tok < this.vocabSize; tok++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += h[i * d + j] * table[tok * d + j];
        out[(i - first) * this.vocabSize + tok] = s;
      }
    }
    return out;
  }
}

function layerNorm(
  x: Float64Array,
  t: number,
  d: number,
  w: Tensor<'float32'>,
  b: Tensor<'float32'>,
): Float64Array {
  const out = new Float64Array(t * d);
  for (let i = 0; i < t; i++) {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += x[i * d + j];
    mean /= d;
    let varSum = 0;
    for (let j = 0; j < d; j++) varSum += (x[i * d + j] - mean) ** 2;
    const inv = 1 / Math.sqrt(varSum / d + 1e-5);
    for (let j = 0; j < d; j++) out[i * d + j] = (x[i * d + j] - mean) * inv * w.data[j] + b.data[j];
  }
  return out;
}

/** x [t, in] @ W^T + b, W stored [out, in] as in torch.nn.Linear */
function linear(x: Float64Array, t: number, w: Tensor<'float32'>, b: Tensor<'float32'>): Float64Array {
  const [outDim, inDim] = w.dims;
  const out = new Float64Array(t * outDim);
  for (let i = 0; i < t; i++) {
    for (let o = 0; o < outDim; o++) {
      let s = b.data[o];
      for (let j = 0; j < inDim; j++) s += x[i * inDim + j] * w.data[o * inDim + j];
      out[i * outDim + o] = s;
    }
  }
  return out;
}
