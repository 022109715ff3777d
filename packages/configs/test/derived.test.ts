// One case per row of DERIVED_FIELDS: the value used when the file is silent, and what
// a stored value does (wins, is ignored, or is refused when it disagrees).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { thrown } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { ConfigError, DERIVED_FIELDS, parseBlip2Config, parseTextConfigJson } from '../src/index.js';
import { derivedFieldsTable } from './docs-table.js';

const t5 = (json: Record<string, unknown>) => parseTextConfigJson({ model_type: 't5', ...json });
const opt = (json: Record<string, unknown>) => parseTextConfigJson({ model_type: 'opt', ...json });
const blip2 = (json: Record<string, unknown>) => parseBlip2Config({ model_type: 'blip-2', ...json });

const refused = (fn: () => unknown) => thrown(fn, ConfigError);

const CASES: Record<string, () => void> = {
  'text_config (t5).dense_act_fn': () => {
    expect(t5({ feed_forward_proj: 'gated-gelu' }).denseActFn).toBe('gelu_new');
    expect(t5({ feed_forward_proj: 'gated-silu' }).denseActFn).toBe('silu');
    expect(t5({ feed_forward_proj: 'relu' }).denseActFn).toBe('relu');
    // what the BLIP-2 conversion stores for Flan-T5: the derived 'gelu_new' is overridden
    expect(t5({ feed_forward_proj: 'gated-gelu', dense_act_fn: 'gelu' }).denseActFn).toBe('gelu');
    expect(t5({ feed_forward_proj: 'gated-gelu', dense_act_fn: null }).denseActFn).toBe('gelu_new');
    expect(refused(() => t5({ dense_act_fn: 1 })).message).toBe(
      'config.json: text_config.dense_act_fn: expected a string, got 1',
    );
  },
  'text_config (t5).is_gated_act': () => {
    expect(t5({ feed_forward_proj: 'gated-gelu' }).isGatedAct).toBe(true);
    expect(t5({ feed_forward_proj: 'gelu' }).isGatedAct).toBe(false);
    expect(t5({ feed_forward_proj: 'gated-gelu', is_gated_act: false }).isGatedAct).toBe(false);
    expect(t5({ feed_forward_proj: 'relu', is_gated_act: true }).isGatedAct).toBe(true);
  },
  'text_config (t5).num_decoder_layers': () => {
    expect(t5({ num_layers: 5 }).numDecoderLayers).toBe(5);
    expect(t5({ num_layers: 5, num_decoder_layers: 3 }).numDecoderLayers).toBe(3);
  },
  'text_config (t5).scale_decoder_outputs': () => {
    expect(t5({}).scaleDecoderOutputs).toBe(true);
    expect(t5({ tie_word_embeddings: false }).scaleDecoderOutputs).toBe(false);
    expect(t5({ tie_word_embeddings: true, scale_decoder_outputs: false }).scaleDecoderOutputs).toBe(false);
  },
  'text_config (t5).decoder_start_token_id': () => {
    expect(t5({}).decoderStartTokenId).toBe(0);
    expect(t5({ pad_token_id: 7 }).decoderStartTokenId).toBe(7);
    expect(t5({ pad_token_id: 7, bos_token_id: 1 })).toMatchObject({ bosTokenId: 1, decoderStartTokenId: 1 });
    expect(t5({ bos_token_id: 1, decoder_start_token_id: 0 }).decoderStartTokenId).toBe(0);
    expect(t5({}).bosTokenId).toBeUndefined();
  },
  'text_config (opt).word_embed_proj_dim': () => {
    expect(opt({ hidden_size: 64, num_attention_heads: 4 }).wordEmbedProjDim).toBe(64);
    expect(
      blip2({ text_config: { hidden_size: 64, num_attention_heads: 4, word_embed_proj_dim: 64 } }).textConfig,
    ).toMatchObject({ hiddenSize: 64, wordEmbedProjDim: 64 });
    // OPT-350m: 1024-wide layers over 512-wide embeddings
    const e = refused(() =>
      blip2({ text_config: { hidden_size: 1024, num_attention_heads: 16, word_embed_proj_dim: 512 } }),
    );
    expect(e.code).toBe('E_CONFIG_FIELD');
    expect(e.field).toBe('text_config.word_embed_proj_dim');
    expect(e.message).toMatch(
      /^config\.json: text_config\.word_embed_proj_dim \(512\) differs from text_config\.hidden_size \(1024\): /,
    );
    // the OPT config alone (a standalone OPT-350m) stays valid: only BLIP-2 cannot use it
    expect(
      opt({ hidden_size: 1024, num_attention_heads: 16, word_embed_proj_dim: 512 }).wordEmbedProjDim,
    ).toBe(512);
  },
  'text_config (opt).eos_token_id': () => {
    expect(opt({})).toMatchObject({ bosTokenId: 2, eosTokenId: 2, padTokenId: 1 });
    expect(opt({ eos_token_id: 50118 }).eosTokenId).toBe(50118);
  },
  'blip-2.qformer_config.encoder_hidden_size': () => {
    const c = blip2({
      vision_config: { hidden_size: 64, num_attention_heads: 4 },
      qformer_config: { encoder_hidden_size: 1408 },
    });
    expect(c.qformerConfig.encoderHiddenSize).toBe(64);
  },
  'blip-2.use_decoder_only_language_model': () => {
    expect(blip2({}).useDecoderOnlyLanguageModel).toBe(true);
    expect(blip2({ text_config: { model_type: 't5' } }).useDecoderOnlyLanguageModel).toBe(false);
    expect(blip2({ use_decoder_only_language_model: true }).useDecoderOnlyLanguageModel).toBe(true);
    const e = refused(() =>
      blip2({ use_decoder_only_language_model: true, text_config: { model_type: 't5' } }),
    );
    expect(e.field).toBe('use_decoder_only_language_model');
    expect(e.message).toBe(
      "config.json: use_decoder_only_language_model (true) contradicts text_config.model_type 't5' (an encoder-decoder language model)",
    );
  },
  'blip-2.is_encoder_decoder': () => {
    expect(blip2({ is_encoder_decoder: true }).isEncoderDecoder).toBe(false);
    expect(blip2({ is_encoder_decoder: false, text_config: { model_type: 't5' } }).isEncoderDecoder).toBe(
      true,
    );
  },
};

describe('stored fields over derived ones (DERIVED_FIELDS)', () => {
  it('every row of the table has a case, and every case a row', () => {
    expect(Object.keys(CASES).sort()).toEqual(DERIVED_FIELDS.map((r) => `${r.config}.${r.field}`).sort());
  });
  for (const row of DERIVED_FIELDS) {
    it(`${row.config} ${row.field}: ${row.rule}`, () => CASES[`${row.config}.${row.field}`]());
  }
});

describe('docs/configs.md', () => {
  it('prints DERIVED_FIELDS as it is', () => {
    const page = readFileSync(fileURLToPath(new URL('../../../docs/configs.md', import.meta.url)), 'utf8');
    expect(page).toContain(derivedFieldsTable(DERIVED_FIELDS));
  });
});
