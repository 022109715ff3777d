import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import {
  GENERATION_TOKEN_FIELDS,
  generationDefaultsFromModelConfig,
  parseBlip2Config,
} from '../src/index.js';
import { readJson } from './helpers.js';

function defaults(json: Record<string, unknown>) {
  return generationDefaultsFromModelConfig(json, parseBlip2Config(json));
}

describe('generationDefaultsFromModelConfig (GenerationConfig.from_model_config)', () => {
  // transformers 5.17 wrote these generation_config.json files from the config with from_model_config
  for (const dir of [fixtures.tinyOpt, fixtures.tinyT5, fixtures.shapesOpt, fixtures.shapesT5]) {
    it(`gives the token ids transformers wrote for ${dir.split('/').pop()}`, () => {
      const written = readJson(join(dir, 'generation_config.json'));
      const expected = Object.fromEntries(
        GENERATION_TOKEN_FIELDS.filter((k) => written[k] != null).map((k) => [k, written[k]]),
      );
      expect(defaults(readJson(join(dir, 'config.json'))).json).toEqual(expected);
    });
  }

  it('a Salesforce OPT config stops on "\\n": text_config.eos_token_id 50118', () => {
    const d = defaults({ model_type: 'blip-2', text_config: { model_type: 'opt', eos_token_id: 50118 } });
    expect(d.json).toEqual({ bos_token_id: 2, eos_token_id: 50118, pad_token_id: 1 });
    expect(d.sources).toEqual({
      bos_token_id: 'OPTConfig default',
      eos_token_id: 'config.json text_config.eos_token_id',
      pad_token_id: 'OPTConfig default',
    });
  });

  it('Flan-T5 as converted: bos 1, start 0, no bos default of its own', () => {
    const d = defaults({
      model_type: 'blip-2',
      text_config: { model_type: 't5', bos_token_id: 1, decoder_start_token_id: 0 },
    });
    expect(d.json).toEqual({ bos_token_id: 1, eos_token_id: 1, pad_token_id: 0, decoder_start_token_id: 0 });
    expect(d.sources.eos_token_id).toBe('T5Config default');
    expect(defaults({ model_type: 'blip-2', text_config: { model_type: 't5' } }).json).toEqual({
      eos_token_id: 1,
      pad_token_id: 0,
    });
  });

  it('a field of the top-level config comes first; null counts as unset', () => {
    const d = generationDefaultsFromModelConfig(
      { model_type: 'blip-2', eos_token_id: [7, 8], pad_token_id: null, text_config: { eos_token_id: 9 } },
      parseBlip2Config({ model_type: 'blip-2', text_config: { eos_token_id: 9 } }),
      'ckpt/config.json',
    );
    expect(d.json.eos_token_id).toEqual([7, 8]);
    expect(d.sources).toMatchObject({
      eos_token_id: 'ckpt/config.json eos_token_id',
      pad_token_id: 'OPTConfig default',
    });
  });
});
