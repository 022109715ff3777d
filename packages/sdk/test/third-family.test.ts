// A third language-model family through the module seam: a Llama module written in the
// tests (./third-family/llama.ts: RMSNorm, rotary positions with Sin/Cos, SwiGLU), registered
// with one call, loaded by Blip2ForConditionalGeneration.fromPretrained from a tiny
// checkpoint written here (tiny-blip2-opt's ViT, Q-Former, projection and tokenizer around
// random Llama weights), run on onnxruntime-node, and checked against a float64 forward
// written in plain TypeScript (./third-family/llama-reference.ts): logits within 1e-4,
// greedy tokens equal to the reference's argmax chain, a left-padded batch included.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseTextConfigJson } from '@blip2/configs';
import { fixtures, seeded } from '@blip2/fixtures';
import { registerLanguageModel } from '@blip2/generation';
import { readSafetensorsFile, type StreamedTensor, writeSafetensorsFile } from '@blip2/safetensors/node';
import { float32, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../src/cli/bench.js';
import { inspectModel } from '../src/cli/inspect.js';
import { main } from '../src/cli/main.js';
import { Blip2ForConditionalGeneration } from '../src/index.js'; // also registers the Node platform
import { capture } from './cli-io.js';
import { type LlamaConfig, llamaModule } from './third-family/llama.js';
import { llamaGreedy, llamaLogits, type Matrix } from './third-family/llama-reference.js';

// the one call that makes text_config.model_type 'llama' load everywhere
registerLanguageModel(llamaModule);

const TEXT_CONFIG = {
  model_type: 'llama' as const,
  vocab_size: 947, // tiny-blip2-opt's tokenizer, whose <image> is 946
  hidden_size: 24, // tiny-blip2-opt's language_projection emits 24 features
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 2,
  eos_token_id: 2,
  pad_token_id: 1,
};

/** Llama's weights under `language_model.`, uniform in [-scale, scale] (norms around 1). */
function llamaWeights(c: LlamaConfig): Map<string, { shape: number[]; data: Float32Array }> {
  const next = seeded(13);
  const { hiddenSize: d, intermediateSize: f, vocabSize: v } = c;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const put = (name: string, shape: number[], scale: number, center = 0) =>
    out.set(name, {
      shape,
      data: Float32Array.from(
        { length: shape.reduce((a, b) => a * b, 1) },
        () => center + scale * 2 * next(),
      ),
    });
  put('model.embed_tokens.weight', [v, d], 1);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) put(`${p}self_attn.${n}.weight`, [d, d], 0.4);
    put(`${p}mlp.gate_proj.weight`, [f, d], 0.4);
    put(`${p}mlp.up_proj.weight`, [f, d], 0.4);
    put(`${p}mlp.down_proj.weight`, [d, f], 0.3);
    put(`${p}input_layernorm.weight`, [d], 0.2, 1);
    put(`${p}post_attention_layernorm.weight`, [d], 0.2, 1);
  }
  put('model.norm.weight', [d], 0.2, 1);
  put('lm_head.weight', [v, d], 0.5);
  return out;
}

// read by the registered module, and typed as its LlamaConfig by the TextConfigRegistry entry
// ./third-family/llama.ts declares: no cast
const config = parseTextConfigJson(TEXT_CONFIG);
const weights = llamaWeights(config);
const reference = new Map(
  [...weights].map(([name, w]): [string, Matrix] => [
    name,
    { rows: w.shape[0], cols: w.shape[1] ?? 1, data: Float64Array.from(w.data) },
  ]),
);

/** tiny-blip2-opt with its OPT replaced by the random Llama: config.json, weights, tokenizer. */
async function writeCheckpoint(dir: string): Promise<void> {
  const tiny = fixtures.tinyOpt;
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json'])
    await copyFile(join(tiny, name), join(dir, name));
  const blip2 = JSON.parse(await readFile(join(tiny, 'config.json'), 'utf8'));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...blip2, text_config: TEXT_CONFIG }));
  const imageSide = [...(await readSafetensorsFile(join(tiny, 'model.safetensors')))].filter(
    ([name]) => !name.startsWith('language_model.'),
  );
  const tensors: StreamedTensor[] = [
    ...imageSide.map(([name, t]) => ({ name, shape: t.dims, data: t.data as Float32Array })),
    ...[...weights].map(([name, w]) => ({ name: `language_model.${name}`, shape: w.shape, data: w.data })),
  ].map(({ name, shape, data }) => ({
    name,
    dtype: 'F32' as const,
    shape,
    fill: (values: Float32Array, start: number) => values.set(data.subarray(start, start + values.length)),
  }));
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors);
}

/** A row's unpadded inputs_embeds in float64: word embeddings, query embeddings at the <image> tokens. */
function referenceEmbeds(
  ids: number[],
  queryEmbeds: Tensor<'float32'>,
  row: number,
  imageToken: number,
): Matrix {
  const d = config.hiddenSize;
  const table = reference.get('model.embed_tokens.weight') as Matrix;
  const data = new Float64Array(ids.length * d);
  let query = 0;
  ids.forEach((id, t) => {
    const src =
      id === imageToken
        ? queryEmbeds.data.subarray(
            (row * queryEmbeds.dims[1] + query++) * d,
            (row * queryEmbeds.dims[1] + query) * d,
          )
        : table.data.subarray(id * d, (id + 1) * d);
    data.set(src, t * d);
  });
  return { rows: ids.length, cols: d, data };
}

describe('a third family (Llama) registered with one call', () => {
  let dir: string;
  let model: Blip2ForConditionalGeneration;
  const pixels = (() => {
    const next = seeded(5);
    return float32(
      [2, 3, 32, 32],
      Array.from({ length: 2 * 3 * 32 * 32 }, () => 2 * next()),
    );
  })();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blip2-llama-'));
    await writeCheckpoint(dir);
    model = await Blip2ForConditionalGeneration.fromPretrained(dir);
  });
  afterAll(async () => {
    await model?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads through fromPretrained: the parsed config, the module, the processor padding side', () => {
    expect(model.config.textConfig).toEqual(config);
    expect(model.config.useDecoderOnlyLanguageModel).toBe(true);
    expect(model.languageModel.kind).toBe('decoder-only');
    expect(model.processor.paddingSide).toBe('left');
    expect([...model.graphs.keys()]).toEqual(expect.arrayContaining(['lm.embed', 'lm.prefill', 'lm.step']));
  });

  it('logits of a left-padded batch match the float64 forward within 1e-4', async () => {
    const { inputIds, attentionMask } = model.processor.encodeText(
      ['a photo of', 'a picture of two red'],
      'left',
    );
    const out = await model.forward({ pixelValues: pixels, inputIds, attentionMask });
    const [b, T] = inputIds.dims;
    const V = config.vocabSize;
    expect(out.logits.dims).toEqual([b, T, V]);
    let worst = 0;
    for (let r = 0; r < b; r++) {
      const kept = Array.from({ length: T }, (_, t) => t).filter((t) => attentionMask.data[r * T + t] === 1n);
      const ids = kept.map((t) => Number(inputIds.data[r * T + t]));
      const want = llamaLogits(config, reference, referenceEmbeds(ids, out.languageModelInputs, r, 946));
      kept.forEach((t, i) => {
        for (let k = 0; k < V; k++) {
          worst = Math.max(worst, Math.abs(out.logits.data[(r * T + t) * V + k] - want.data[i * V + k]));
        }
      });
    }
    // the first row is padded (between its image tokens and its text, as the processor pads):
    // its positions come from the mask, the reference's from the row without pads
    expect(Array.from(attentionMask.data.subarray(0, T)).filter((m) => m === 0n)).toHaveLength(4);
    expect(worst).toBeLessThan(1e-4);
  });

  it('greedy tokens equal the float64 argmax chain, per row of a padded batch', async () => {
    const { inputIds, attentionMask } = model.processor.encodeText(
      ['a photo of', 'a picture of two red'],
      'left',
    );
    const maxNewTokens = 8;
    const out = await model.generate(
      { pixelValues: pixels, inputIds, attentionMask },
      { maxNewTokens, numBeams: 1 },
    );
    const { languageModelInputs } = await model.getLanguageModelInputs(pixels);
    const [b, T] = inputIds.dims;
    for (let r = 0; r < b; r++) {
      const ids = Array.from({ length: T }, (_, t) => t)
        .filter((t) => attentionMask.data[r * T + t] === 1n)
        .map((t) => Number(inputIds.data[r * T + t]));
      const want = llamaGreedy(
        config,
        reference,
        referenceEmbeds(ids, languageModelInputs, r, 946),
        maxNewTokens,
        2,
      );
      expect(out.sequences[r].slice(0, want.length)).toEqual(want);
      // a row that stopped early is padded with the pad token after its EOS
      expect(out.sequences[r].slice(want.length).every((id) => id === TEXT_CONFIG.pad_token_id)).toBe(true);
    }
  });

  it('inspect reports the family from its module', async () => {
    const report = await inspectModel(dir);
    expect(report.languageModel).toBe('llama');
    expect(report.uses.activation).toEqual({ value: 'silu', source: 'LlamaConfig default' });
    expect(report.missing).toEqual([]);
    expect(report.unexpected).toEqual([]);
  });

  it('docs/architecture.md shows this module as the file has it', async () => {
    const docs = await readFile(join(import.meta.dirname, '../../../docs/architecture.md'), 'utf8');
    const shown = /```ts\n(export const llamaModule[\s\S]*?)\n```/.exec(docs)?.[1];
    expect(shown).toBeDefined();
    expect(await readFile(join(import.meta.dirname, 'third-family/llama.ts'), 'utf8')).toContain(shown);
  });

  it('blip2 bench measures it: what a step reads and multiplies, counted from the graphs it ran', async () => {
    const c = capture();
    const args = ['bench', '--model', dir, '--json', '--peer', 'none', '--repeats', '1'];
    // positions within the tiny Llama's 64
    const code = await main([...args, '--figures', 'prefill,steps', '--positions', '20,40'], c.io);
    expect(code, c.err()).toBe(0);
    const report = JSON.parse(c.out()) as BenchReport;
    const figure = (key: string) => report.figures.find((f) => f.key === key);
    // by hand: per layer q/k/v/o 4 x 24 x 24, gate and up 2 x 40 x 24, down 24 x 40, two RMSNorm
    // gains 2 x 24; the final norm 24; the untied LM head 947 x 24; one row of the token table
    const d = 24;
    const layer = 4 * d * d + 2 * 40 * d + d * 40 + 2 * d;
    expect(figure('stepBytes')?.value).toBeCloseTo((4 * (2 * layer + d + 947 * d + d)) / 1e6, 12);
    expect(figure('step20')?.limitFrom).toMatch(/^one row through the step's 15 matrices/);
    // its prefill computes logits at every position (the adapter keeps the last): counted so
    expect(figure('prefill')?.limitFrom).toMatch(/15 products, the LM head at every position/);
    for (const key of ['prefill', 'step20', 'step40', 'positionRatio'])
      expect(Number.isFinite(figure(key)?.ratio), key).toBe(true);
  });

  it("the module's own config errors name the field", async () => {
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        ...JSON.parse(await readFile(join(fixtures.tinyOpt, 'config.json'), 'utf8')),
        text_config: { ...TEXT_CONFIG, num_key_value_heads: 2 },
      }),
    );
    const e = await Blip2ForConditionalGeneration.fromPretrained(dir).catch((x: unknown) => x);
    expect(ConfigError.isInstance(e)).toBe(true);
    expect(e).toMatchObject({ code: 'E_CONFIG_FIELD', field: 'text_config.num_key_value_heads' });
    expect((e as Error).message).toContain(`${dir}/config.json: text_config.num_key_value_heads must equal`);
  });
});
