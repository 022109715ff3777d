// Real sizes: the blip2-opt-2.7b / -6.7b language models built from the published
// weight names and shapes alone (graph construction only: no weight file exists).
import { readFileSync } from 'node:fs';
import { type OPTConfig, parseBlip2Config } from '@blip2/configs';
import { fixtures, shapeOnlyWeights } from '@blip2/fixtures';
import { KV_IO } from '@blip2/onnx';
import { describe, expect, it } from 'vitest';
import { buildOpt, optGraphIO } from '../src/index.js';

interface Manifest {
  config: unknown;
  weights: Record<string, number[]>;
}
const manifests = JSON.parse(readFileSync(fixtures.manifests, 'utf8')) as Record<string, Manifest>;

function includes(bytes: Uint8Array, text: string): boolean {
  return Buffer.from(bytes).includes(Buffer.from(text));
}

describe('real-size OPT graphs from manifests.json', () => {
  for (const [variant, hidden] of [
    ['blip2-opt-2.7b', 2560],
    ['blip2-opt-6.7b', 4096],
  ] as const) {
    it(`builds ${variant}`, () => {
      const manifest = manifests[variant];
      const config = parseBlip2Config(manifest.config, `manifests.json ${variant}`).textConfig as OPTConfig;
      if (config.modelType !== 'opt') throw new Error(`${variant} is not OPT`);
      expect(config.hiddenSize).toBe(hidden);
      const started = performance.now();
      const graphs = buildOpt(config, shapeOnlyWeights(manifest.weights));
      const ms = performance.now() - started;
      const io = optGraphIO(config);
      for (const name of ['embed', 'prefill', 'step'] as const) {
        expect(graphs[name].inputs).toEqual(io[name].inputs);
        expect(graphs[name].outputs).toEqual(io[name].outputs);
        expect(graphs[name].externalData).toEqual([
          { location: 'model.safetensors', uri: '/nonexistent/model.safetensors', size: expect.any(Number) },
        ]);
      }
      const layers = config.numHiddenLayers;
      expect(graphs.step.inputs).toHaveLength(2 + 2 * layers);
      expect(graphs.prefill.outputs).toHaveLength(1 + 2 * layers);
      expect(graphs.step.inputs.at(-1)).toEqual({
        name: KV_IO.pastValue(layers - 1),
        dtype: 'float32',
        dims: ['batch', config.numAttentionHeads, 'past_sequence', hidden / config.numAttentionHeads],
      });
      // the published checkpoints store lm_head: the head must be it, not the tied embed_tokens
      expect(includes(graphs.prefill.bytes, 'language_model.lm_head.weight')).toBe(true);
      expect(
        includes(graphs.prefill.bytes, `language_model.model.decoder.layers.${layers - 1}.fc2.weight`),
      ).toBe(true);
      // weights are referenced, not embedded: the graphs stay small whatever the model size
      for (const g of Object.values(graphs)) expect(g.bytes.length).toBeLessThan(2_000_000);
      console.log(
        `${variant}: ${layers} layers, built in ${ms.toFixed(0)} ms; prefill ${(graphs.prefill.bytes.length / 1024).toFixed(0)} KiB, step ${(graphs.step.bytes.length / 1024).toFixed(0)} KiB`,
      );
    });
  }
});

describe('weight prefix', () => {
  it("prefix '' reads a plain OPTForCausalLM checkpoint (model.decoder.*, lm_head.weight)", () => {
    const m = manifests['blip2-opt-2.7b'];
    const config = parseBlip2Config(m.config).textConfig as OPTConfig;
    const bare: Manifest = {
      config: m.config,
      weights: Object.fromEntries(
        Object.entries(m.weights)
          .filter(([n]) => n.startsWith('language_model.'))
          .map(([n, s]) => [n.slice('language_model.'.length), s]),
      ),
    };
    const graphs = buildOpt(config, shapeOnlyWeights(bare.weights), { prefix: '' });
    expect(includes(graphs.prefill.bytes, 'model.decoder.layers.0.fc1.weight')).toBe(true);
    expect(includes(graphs.prefill.bytes, 'language_model.')).toBe(false);
    expect(() => buildOpt(config, shapeOnlyWeights(bare.weights))).toThrow(
      /'language_model\.model\.decoder\.embed_tokens\.weight'/,
    );
  });
});
