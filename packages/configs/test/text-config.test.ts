// The text-config seam: parseBlip2Config reads the BLIP-2 envelope and hands text_config to
// the family registered for its model_type. A family registered here (as
// registerLanguageModel does for a module) parses with its own reader and its own typed
// errors; an unregistered type is refused with the registered ones listed.
import { join } from 'node:path';
import { fixtures, thrown } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  generationDefaultsFromModelConfig,
  type LanguageModelConfig,
  parseBlip2Config,
  registeredTextModelTypes,
  registerTextConfig,
  type TextConfigFamily,
  textConfigFields,
} from '../src/index.js';
import { readJson } from './helpers.js';

interface GruConfig extends LanguageModelConfig {
  readonly modelType: 'toy-gru';
  readonly hiddenSize: number;
  readonly eosTokenId: number;
}

// an encoder-decoder family, so `kind` is seen to decide use_decoder_only_language_model
const gru: TextConfigFamily<GruConfig> = {
  modelType: 'toy-gru',
  kind: 'encoder-decoder',
  paddingSide: 'right',
  configClass: 'GruConfig',
  parseConfig(json, file) {
    const f = textConfigFields(json, file);
    return {
      modelType: 'toy-gru',
      vocabSize: f.size('vocab_size', 100),
      hiddenSize: f.size('hidden_size', 16),
      eosTokenId: f.index('eos_token_id', 3),
    };
  },
  checkForBlip2(config, file) {
    if (config.hiddenSize % 2 !== 0)
      throw new ConfigError(
        'E_CONFIG_FIELD',
        file,
        'text_config.hidden_size must be even',
        'text_config.hidden_size',
      );
  },
};

/** tiny-blip2-opt's envelope around another text_config (without OPT's stored decoder-only flag). */
function tinyWith(text: Record<string, unknown>): Record<string, unknown> {
  const { use_decoder_only_language_model: _, ...envelope } = readJson(join(fixtures.tinyOpt, 'config.json'));
  return { ...envelope, image_token_index: 7, text_config: text };
}

describe('text_config goes to the family of its model_type', () => {
  it('an unregistered model_type is refused, naming it and listing the registered ones', () => {
    const e = thrown(() => parseBlip2Config(tinyWith({ model_type: 'toy-unknown' })), ConfigError);
    expect(e.code).toBe('E_MODEL_TYPE');
    expect(e.field).toBe('text_config.model_type');
    expect(e.message).toBe(
      `config.json: text_config.model_type "toy-unknown" is not supported (supported: ${registeredTextModelTypes()
        .map((t) => `'${t}'`)
        .join(', ')})`,
    );
    expect(registeredTextModelTypes().slice(0, 2)).toEqual(['opt', 't5']);
  });

  it('a family passed for one parse reads its config without being registered', () => {
    const config = parseBlip2Config(tinyWith({ model_type: 'toy-gru', hidden_size: 8 }), 'c.json', {
      textConfig: gru,
    });
    expect(config.textConfig).toEqual({ modelType: 'toy-gru', vocabSize: 100, hiddenSize: 8, eosTokenId: 3 });
    expect(registeredTextModelTypes()).not.toContain('toy-gru');
  });

  it('a registered family parses, validates with its own typed errors, and sets the envelope from its kind', () => {
    registerTextConfig(gru);
    expect(registeredTextModelTypes()).toContain('toy-gru');
    const json = tinyWith({ model_type: 'toy-gru', hidden_size: 8, vocab_size: 50 });
    const config = parseBlip2Config(json);
    expect(config.textConfig).toEqual({ modelType: 'toy-gru', vocabSize: 50, hiddenSize: 8, eosTokenId: 3 });
    expect(config.useDecoderOnlyLanguageModel).toBe(false);
    expect(config.isEncoderDecoder).toBe(true);
    // the envelope's own checks run against the family's config
    expect(thrown(() => parseBlip2Config({ ...json, image_token_index: 50 }), ConfigError).message).toBe(
      'config.json: image_token_index (50) is outside text_config.vocab_size (50)',
    );
    // the family's field errors and its BLIP-2 check, named
    const typeError = thrown(
      () => parseBlip2Config(tinyWith({ model_type: 'toy-gru', hidden_size: 'wide' })),
      ConfigError,
    );
    expect(typeError).toMatchObject({ code: 'E_CONFIG_TYPE', field: 'text_config.hidden_size' });
    expect(typeError.message).toBe('config.json: text_config.hidden_size: expected an integer, got "wide"');
    const odd = thrown(
      () => parseBlip2Config(tinyWith({ model_type: 'toy-gru', hidden_size: 7 })),
      ConfigError,
    );
    expect(odd).toMatchObject({ code: 'E_CONFIG_FIELD', field: 'text_config.hidden_size' });
    // a stored use_decoder_only_language_model must agree with the family's kind
    const contradicts = thrown(
      () => parseBlip2Config({ ...json, use_decoder_only_language_model: true }),
      ConfigError,
    );
    expect(contradicts.message).toContain("contradicts text_config.model_type 'toy-gru' (an encoder-decoder");
    // generation defaults name the family's config class for a class default
    expect(generationDefaultsFromModelConfig(json, config).sources.eos_token_id).toBe('GruConfig default');
  });
});
