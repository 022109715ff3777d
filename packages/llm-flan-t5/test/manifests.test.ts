import { readFileSync } from 'node:fs';
import { parseBlip2Config, type T5Config } from '@blip2/configs';
import { fixtures, shapeOnlyWeights } from '@blip2/fixtures';
import { GraphBuildError, KV_IO } from '@blip2/onnx';
import { describe, expect, it } from 'vitest';
import { buildT5, T5_IO, T5Error, t5GraphIO } from '../src/index.js';

interface Manifest {
  config: unknown;
  weights: Record<string, number[]>;
}
const manifests = JSON.parse(readFileSync(fixtures.manifests, 'utf8')) as Record<string, Manifest>;

describe('published Flan-T5 variants build from their manifests (graph construction only)', () => {
  for (const variant of ['blip2-flan-t5-xl', 'blip2-flan-t5-xxl']) {
    it(variant, () => {
      const m = manifests[variant];
      const config = parseBlip2Config(m.config, `manifests.json#${variant}`).textConfig as T5Config;
      expect(config.modelType).toBe('t5');
      const weights = shapeOnlyWeights(m.weights, 'BF16');
      const graphs = buildT5(config, weights);
      const L = config.numDecoderLayers;
      // the graphs carry exactly the documented inputs and outputs, in order
      const io = t5GraphIO(config);
      for (const k of ['embed', 'encoder', 'decoder'] as const) {
        expect(graphs[k].inputs).toEqual(io[k].inputs);
        expect(graphs[k].outputs).toEqual(io[k].outputs);
      }
      expect(graphs.decoder.inputs).toHaveLength(3 + 4 * L);
      expect(graphs.decoder.outputs.map((o) => o.name)).toEqual([
        T5_IO.decoder.logits,
        ...Array.from({ length: L }, (_, i) => [KV_IO.presentKey(i), KV_IO.presentValue(i)]).flat(),
      ]);
      expect(graphs.encoder.outputs).toHaveLength(1 + 2 * L);
      expect(graphs.decoder.outputs[0].dims).toEqual(['batch', 'target', config.vocabSize]);
      expect(graphs.decoder.outputs[1].dims).toEqual(['batch', config.numHeads, 'total', config.dKv]);
      for (const g of Object.values(graphs)) {
        expect(g.externalData).toEqual([
          { location: 'model.safetensors', uri: '/nonexistent/model.safetensors', size: expect.any(Number) },
        ]);
      }
      // every language-model weight is used except the copies of `shared` (and lm_head when tied)
      const unused = Object.keys(m.weights).filter(
        (n) => n.startsWith('language_model.') && !weights.used.has(n),
      );
      const expectedUnused = [
        'language_model.encoder.embed_tokens.weight',
        'language_model.decoder.embed_tokens.weight',
      ];
      if (config.tieWordEmbeddings) expectedUnused.push('language_model.lm_head.weight');
      expect(unused.sort()).toEqual(expectedUnused.sort());
    });
  }

  it('names the weight at fault when the checkpoint does not fit the config', () => {
    const m = manifests['blip2-flan-t5-xl'];
    const config = parseBlip2Config(m.config).textConfig as T5Config;
    const missing = { ...m.weights };
    delete missing['language_model.decoder.block.3.layer.1.EncDecAttention.v.weight'];
    const v = 'language_model.decoder.block.3.layer.1.EncDecAttention.v.weight';
    expect(() => buildT5(config, shapeOnlyWeights(missing, 'BF16'))).toThrow(
      expect.objectContaining({
        name: 'GraphBuildError',
        code: 'E_MISSING_WEIGHT',
        weight: v,
        message: `t5.encoder: checkpoint has no weight '${v}' (expected shape [2048,2048])`,
      }),
    );
    expect(() => buildT5({ ...config, dFf: 4096 }, shapeOnlyWeights(m.weights, 'BF16'))).toThrow(
      expect.objectContaining({
        name: 'GraphBuildError',
        code: 'E_WEIGHT_SHAPE',
        weight: 'language_model.encoder.block.0.layer.1.DenseReluDense.wi_0.weight',
        message: expect.stringMatching(
          /wi_0\.weight' has shape \[5120,2048\], the config implies \[4096,2048\]/,
        ),
      }),
    );
    expect(() => buildT5({ ...config, denseActFn: 'swish' }, shapeOnlyWeights(m.weights, 'BF16'))).toThrow(
      expect.objectContaining({ code: 'E_ACTIVATION', message: expect.stringContaining("'swish'") }),
    );
    expect(() => buildT5({ ...config, denseActFn: 'swish' }, shapeOnlyWeights(m.weights, 'BF16'))).toThrow(
      T5Error,
    );
    expect(() => buildT5({ ...config, tieWordEmbeddings: false }, shapeOnlyWeights(missing, 'BF16'))).toThrow(
      GraphBuildError,
    );
    const noHead = { ...m.weights };
    delete noHead['language_model.lm_head.weight'];
    expect(() => buildT5({ ...config, tieWordEmbeddings: false }, shapeOnlyWeights(noHead, 'BF16'))).toThrow(
      expect.objectContaining({
        name: 'GraphBuildError',
        code: 'E_MISSING_WEIGHT',
        weight: 'language_model.lm_head.weight',
        message: expect.stringMatching(/tie_word_embeddings is false .*lm_head\.weight/),
      }),
    );
    expect(() => buildT5({ ...config, numHeads: 0 }, shapeOnlyWeights(m.weights, 'BF16'))).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('numHeads') }),
    );
  });

  it('honours a weight prefix', () => {
    const m = manifests['blip2-flan-t5-xl'];
    const config = parseBlip2Config(m.config).textConfig as T5Config;
    const bare = Object.fromEntries(
      Object.entries(m.weights)
        .filter(([n]) => n.startsWith('language_model.'))
        .map(([n, s]) => [n.slice('language_model.'.length), s]),
    );
    expect(() => buildT5(config, shapeOnlyWeights(bare, 'BF16'), { prefix: '' })).not.toThrow();
    expect(() => buildT5(config, shapeOnlyWeights(bare, 'BF16'))).toThrow(/'language_model\.shared\.weight'/);
  });
});
