// The config files of every published checkpoint, as the conversion script writes them
// (tooling/fixtures/published, reconstructed field by field): each parses the way
// transformers reads it, and the ITM ones are refused by name.
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  GENERATION_TOKEN_FIELDS,
  generationDefaultsFromModelConfig,
  getPreset,
  type OPTConfig,
  parseBlip2Config,
  parseImageProcessorConfig,
  type T5Config,
} from '../src/index.js';
import { readJson } from './helpers.js';

interface Expected {
  family: 'opt' | 't5';
  imageSize: number;
  legacy?: boolean;
}
const GENERATION: Record<string, Expected> = {
  'blip2-opt-2.7b': { family: 'opt', imageSize: 224 },
  'blip2-opt-6.7b': { family: 'opt', imageSize: 224 },
  'blip2-opt-2.7b-coco': { family: 'opt', imageSize: 364 },
  'blip2-opt-6.7b-coco': { family: 'opt', imageSize: 364 },
  'blip2-flan-t5-xl': { family: 't5', imageSize: 224 },
  'blip2-flan-t5-xl-coco': { family: 't5', imageSize: 364 },
  'blip2-flan-t5-xxl': { family: 't5', imageSize: 224 },
  'legacy/blip2-opt-2.7b': { family: 'opt', imageSize: 224, legacy: true },
  'legacy/blip2-flan-t5-xl': { family: 't5', imageSize: 224, legacy: true },
};
const file = (variant: string, name: string) => join(fixtures.published, variant, name);

describe('published checkpoints (config files reconstructed from the conversion script)', () => {
  for (const [variant, want] of Object.entries(GENERATION)) {
    it(`${variant}: ${want.family}, ${want.imageSize} px${want.legacy ? ', legacy prefix layout' : ''}`, () => {
      const raw = readJson(file(variant, 'config.json'));
      const config = parseBlip2Config(raw, `${variant}/config.json`);
      expect(config.textConfig.modelType).toBe(want.family);
      expect(config.visionConfig.imageSize).toBe(want.imageSize);
      expect(config.numQueryTokens).toBe(32);
      const pre = parseImageProcessorConfig(readJson(file(variant, 'preprocessor_config.json')));
      expect(pre.size).toEqual({ height: want.imageSize, width: want.imageSize });
      if (want.family === 't5') {
        const t = config.textConfig as T5Config;
        // feed_forward_proj alone would mean 'gelu_new'; the stored field selects exact GELU
        expect(t).toMatchObject({ feedForwardProj: 'gated-gelu', denseActFn: 'gelu', isGatedAct: true });
        expect(t).toMatchObject({ bosTokenId: 1, decoderStartTokenId: 0, eosTokenId: 1, padTokenId: 0 });
        expect(t).toMatchObject({ tieWordEmbeddings: false, scaleDecoderOutputs: false });
      } else {
        const t = config.textConfig as OPTConfig;
        expect(t).toMatchObject({
          eosTokenId: 50118,
          bosTokenId: 2,
          padTokenId: 1,
          activationFunction: 'relu',
        });
      }
      if (want.legacy) {
        expect(config.imageTokenIndex).toBeUndefined();
        expect(pre.numQueryTokens).toBeUndefined();
        // 4.27's from_model_config read the top-level config only: a file without token ids
        const gen = readJson(file(variant, 'generation_config.json'));
        expect(gen._from_model_config).toBe(true);
        expect(GENERATION_TOKEN_FIELDS.filter((k) => k in gen)).toEqual([]);
      } else {
        expect(config.imageTokenIndex).toBe(want.family === 'opt' ? 50265 : 32100);
        expect(pre.numQueryTokens).toBe(32);
        // the generation_config.json beside it holds what from_model_config derives
        const gen = readJson(file(variant, 'generation_config.json'));
        const tokens = Object.fromEntries(
          GENERATION_TOKEN_FIELDS.filter((k) => k in gen).map((k) => [k, gen[k]]),
        );
        expect(generationDefaultsFromModelConfig(raw, config).json).toEqual(tokens);
      }
    });
  }

  it('from the model config, generation stops where transformers stops: "\\n" for OPT, </s> for Flan-T5', () => {
    const opt = readJson(file('legacy/blip2-opt-2.7b', 'config.json'));
    const d = generationDefaultsFromModelConfig(opt, parseBlip2Config(opt));
    expect(d.json).toEqual({ bos_token_id: 2, eos_token_id: 50118, pad_token_id: 1 });
    expect(d.sources.eos_token_id).toBe('config.json text_config.eos_token_id');
    const t5 = readJson(file('legacy/blip2-flan-t5-xl', 'config.json'));
    expect(generationDefaultsFromModelConfig(t5, parseBlip2Config(t5)).json).toEqual({
      bos_token_id: 1,
      eos_token_id: 1,
      pad_token_id: 0,
      decoder_start_token_id: 0,
    });
  });

  for (const variant of ['blip2-itm-vit-g', 'blip2-itm-vit-g-coco']) {
    it(`${variant} is refused, naming its architecture`, () => {
      const raw = readJson(file(variant, 'config.json'));
      expect((raw.qformer_config as Record<string, unknown>).use_qformer_text_input).toBe(true);
      let error: unknown;
      try {
        parseBlip2Config(raw, `${variant}/config.json`);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ code: 'E_ARCHITECTURE', field: 'architectures' });
      expect((error as Error).message).toMatch(
        new RegExp(`^${variant}/config\\.json: architectures names "Blip2ForImageTextRetrieval", `),
      );
    });
  }

  it('the presets are these files', () => {
    for (const variant of Object.keys(GENERATION).filter((v) => !v.startsWith('legacy/'))) {
      const parsed = parseBlip2Config(readJson(file(variant, 'config.json')));
      expect(getPreset(variant), variant).toEqual(parsed);
    }
  });
});
