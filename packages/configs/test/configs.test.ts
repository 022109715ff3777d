import { join } from 'node:path';
import { fixtures, thrown as thrownBy } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import {
  Blip2Config,
  ConfigError,
  type OPTConfig,
  parseBlip2Config,
  parseBlip2QFormerConfig,
  parseBlip2VisionConfig,
  parseTextConfigJson,
  type T5Config,
} from '../src/index.js';
import { expectMirrors, readJson } from './helpers.js';

const checkpoints = {
  'tiny-blip2-opt': fixtures.tinyOpt,
  'tiny-blip2-t5': fixtures.tinyT5,
  'shapes-blip2-opt': fixtures.shapesOpt,
  'shapes-blip2-t5': fixtures.shapesT5,
};

const thrown = (fn: () => unknown) => thrownBy(fn, ConfigError);

describe('fixture config.json files', () => {
  for (const [name, dir] of Object.entries(checkpoints)) {
    it(`${name} parses with every value it holds`, () => {
      const raw = readJson(join(dir, 'config.json'));
      const config = parseBlip2Config(raw);
      // vision, Q-Former and text fields plus the top-level ones: over 55 compared
      expect(expectMirrors(config, raw)).toBeGreaterThan(55);
      expect(config.textConfig.modelType).toBe(name.endsWith('opt') ? 'opt' : 't5');
      expect(config.useDecoderOnlyLanguageModel).toBe(name.endsWith('opt'));
      expect(config.qformerConfig.encoderHiddenSize).toBe(config.visionConfig.hiddenSize);
    });
  }

  it('tiny-blip2-opt holds the sizes the fixture README gives', () => {
    const c = parseBlip2Config(readJson(join(fixtures.tinyOpt, 'config.json')));
    expect(c.visionConfig).toMatchObject({
      hiddenSize: 32,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      imageSize: 32,
      patchSize: 4,
    });
    expect(c.qformerConfig).toMatchObject({ hiddenSize: 32, numHiddenLayers: 3, crossAttentionFrequency: 2 });
    expect(c.numQueryTokens).toBe(5);
    expect(c.imageTokenIndex).toBe(946);
    const t = c.textConfig as OPTConfig;
    expect(t).toMatchObject({
      hiddenSize: 24,
      numHiddenLayers: 2,
      doLayerNormBefore: true,
      activationFunction: 'relu',
    });
    expect(t.tieWordEmbeddings).toBe(true);
  });

  it('tiny-blip2-t5 derives the gated GELU and the buckets', () => {
    const c = parseBlip2Config(readJson(join(fixtures.tinyT5, 'config.json')));
    const t = c.textConfig as T5Config;
    expect(t).toMatchObject({
      dModel: 24,
      dKv: 6,
      numLayers: 2,
      numDecoderLayers: 2,
      feedForwardProj: 'gated-gelu',
      denseActFn: 'gelu_new',
      isGatedAct: true,
      relativeAttentionNumBuckets: 8,
      decoderStartTokenId: 0,
      scaleDecoderOutputs: false,
    });
    expect(c.imageTokenIndex).toBe(343);
    expect(c.isEncoderDecoder).toBe(true);
  });

  it('shapes checkpoints have 8 queries on a 64 px image', () => {
    for (const dir of [fixtures.shapesOpt, fixtures.shapesT5]) {
      const c = parseBlip2Config(readJson(join(dir, 'config.json')));
      expect(c.numQueryTokens).toBe(8);
      expect(c.visionConfig.imageSize).toBe(64);
      expect(c.visionConfig.patchSize).toBe(8);
    }
  });
});

describe('defaults (the reference with no arguments)', () => {
  it('an empty blip-2 config is EVA ViT-g + BERT-base Q-Former + default OPT', () => {
    const c = parseBlip2Config({ model_type: 'blip-2' });
    expect(c.visionConfig).toEqual({
      modelType: 'blip_2_vision_model',
      hiddenSize: 1408,
      intermediateSize: 6144,
      numHiddenLayers: 39,
      numAttentionHeads: 16,
      imageSize: 224,
      patchSize: 14,
      hiddenAct: 'gelu',
      layerNormEps: 1e-6,
      attentionDropout: 0,
      initializerRange: 1e-10,
      qkvBias: true,
    });
    expect(c.qformerConfig).toMatchObject({
      hiddenSize: 768,
      numHiddenLayers: 12,
      layerNormEps: 1e-12,
      encoderHiddenSize: 1408,
    });
    expect(c.textConfig).toMatchObject({
      modelType: 'opt',
      hiddenSize: 768,
      ffnDim: 3072,
      wordEmbedProjDim: 768,
      padTokenId: 1,
    });
    expect(c.numQueryTokens).toBe(32);
    expect(c.imageTokenIndex).toBeUndefined();
  });

  it('T5: num_decoder_layers follows num_layers, plain relu is not gated, old files scale by tie_word_embeddings', () => {
    const t = parseTextConfigJson({ model_type: 't5', num_layers: 3 });
    expect(t).toMatchObject({ numLayers: 3, numDecoderLayers: 3, denseActFn: 'relu', isGatedAct: false });
    expect(t.scaleDecoderOutputs).toBe(true);
    const untied = parseTextConfigJson({ model_type: 't5', tie_word_embeddings: false });
    expect(untied.scaleDecoderOutputs).toBe(false);
    const silu = parseTextConfigJson({ model_type: 't5', feed_forward_proj: 'gated-silu' });
    expect(silu).toMatchObject({ denseActFn: 'silu', isGatedAct: true });
  });

  it('OPT: word_embed_proj_dim null falls back to hidden_size', () => {
    const t = parseTextConfigJson({
      model_type: 'opt',
      hidden_size: 576,
      word_embed_proj_dim: null,
    });
    expect(t.wordEmbedProjDim).toBe(576);
  });

  it('accepts the image_token_id spelling', () => {
    expect(parseBlip2Config({ model_type: 'blip-2', image_token_id: 50265 }).imageTokenIndex).toBe(50265);
    const e = thrown(() =>
      parseBlip2Config({ model_type: 'blip-2', image_token_id: 5, image_token_index: 6 }),
    );
    expect(e.code).toBe('E_CONFIG_FIELD');
    expect(e.message).toBe('config.json: image_token_id (5) disagrees with image_token_index (6)');
  });
});

describe('Blip2Config.fromVisionQformerTextConfigs', () => {
  it('builds what parsing the whole file builds, and ties the cross-attention width to the ViT', () => {
    const raw = readJson(join(fixtures.tinyT5, 'config.json'));
    const parsed = parseBlip2Config(raw);
    const vision = parseBlip2VisionConfig(raw.vision_config);
    const qformer = parseBlip2QFormerConfig({ ...(raw.qformer_config as object), encoder_hidden_size: 999 });
    const text = parseTextConfigJson(raw.text_config);
    const built = Blip2Config.fromVisionQformerTextConfigs(vision, qformer, text, {
      numQueryTokens: 5,
      imageTokenIndex: 343,
    });
    expect(built).toEqual(parsed);
    expect(built.qformerConfig.encoderHiddenSize).toBe(32);
  });

  it('rejects an image token outside the vocabulary', () => {
    const c = parseBlip2Config({ model_type: 'blip-2' });
    const e = thrown(() =>
      Blip2Config.fromVisionQformerTextConfigs(c.visionConfig, c.qformerConfig, c.textConfig, {
        imageTokenIndex: 60000,
      }),
    );
    expect(e.code).toBe('E_CONFIG_FIELD');
    expect(e.message).toContain('image_token_index (60000) is outside text_config.vocab_size (50272)');
  });
});

type Section = Record<string, unknown>;
type TinyJson = Section & { vision_config: Section; qformer_config: Section; text_config: Section };

describe('validation errors name the file, the field and the value', () => {
  const tiny = () => structuredClone(readJson(join(fixtures.tinyOpt, 'config.json'))) as TinyJson;

  it('heads that do not divide the width', () => {
    const j = tiny();
    j.text_config.num_attention_heads = 5;
    const e = thrown(() => parseBlip2Config(j));
    expect(e.code).toBe('E_CONFIG_FIELD');
    expect(e.message).toBe(
      'config.json: text_config.num_attention_heads (5) does not divide hidden_size (24)',
    );
    expect(e.field).toBe('text_config.num_attention_heads');

    const v = tiny();
    v.vision_config.num_attention_heads = 3;
    expect(thrown(() => parseBlip2Config(v, '/models/x/config.json')).message).toBe(
      '/models/x/config.json: vision_config.num_attention_heads (3) does not divide hidden_size (32)',
    );
    const q = tiny();
    q.qformer_config.num_attention_heads = 5;
    expect(thrown(() => parseBlip2Config(q)).message).toBe(
      'config.json: qformer_config.num_attention_heads (5) does not divide hidden_size (32)',
    );
  });

  it('wrong JSON types', () => {
    const j = tiny();
    j.vision_config.hidden_size = '32';
    const e = thrown(() => parseBlip2Config(j));
    expect(e.code).toBe('E_CONFIG_TYPE');
    expect(e.message).toBe('config.json: vision_config.hidden_size: expected an integer, got "32"');

    const b = tiny();
    b.text_config.do_layer_norm_before = 1;
    expect(thrown(() => parseBlip2Config(b)).message).toBe(
      'config.json: text_config.do_layer_norm_before: expected true or false, got 1',
    );

    const s = tiny();
    (s as Section).qformer_config = [1];
    expect(thrown(() => parseBlip2Config(s)).code).toBe('E_CONFIG_TYPE');

    expect(thrown(() => parseBlip2Config('nope')).code).toBe('E_CONFIG_TYPE');
  });

  it('out-of-range values', () => {
    const j = tiny();
    j.text_config.num_hidden_layers = 0;
    expect(thrown(() => parseBlip2Config(j)).message).toBe(
      'config.json: text_config.num_hidden_layers must be an integer in [1, 1024], got 0',
    );
    const d = tiny();
    d.qformer_config.hidden_dropout_prob = 1.5;
    expect(thrown(() => parseBlip2Config(d)).message).toBe(
      'config.json: qformer_config.hidden_dropout_prob must be in [0, 1], got 1.5',
    );
    const p = tiny();
    p.vision_config.patch_size = 64;
    expect(thrown(() => parseBlip2Config(p)).message).toBe(
      'config.json: vision_config.patch_size (64) exceeds image_size (32)',
    );
    const n = tiny();
    n.num_query_tokens = -1;
    expect(thrown(() => parseBlip2Config(n)).field).toBe('num_query_tokens');
    const i = tiny();
    i.image_token_index = 947;
    expect(thrown(() => parseBlip2Config(i)).message).toBe(
      'config.json: image_token_index (947) is outside text_config.vocab_size (947)',
    );
  });

  it('unsupported model types', () => {
    const top = tiny();
    top.model_type = 'blip';
    const e = thrown(() => parseBlip2Config(top));
    expect(e.code).toBe('E_MODEL_TYPE');
    expect(e.message).toBe(`config.json: model_type "blip" is not supported (expected 'blip-2')`);

    const text = tiny();
    text.text_config.model_type = 'llama';
    const t = thrown(() => parseBlip2Config(text));
    expect(t.code).toBe('E_MODEL_TYPE');
    expect(t.message).toBe(
      `config.json: text_config.model_type "llama" is not supported (supported: 'opt', 't5')`,
    );

    const vision = tiny();
    vision.vision_config.model_type = 'clip_vision_model';
    expect(thrown(() => parseBlip2Config(vision)).code).toBe('E_MODEL_TYPE');
  });

  it('an image-text retrieval architecture, named', () => {
    const itm = tiny() as Record<string, unknown>;
    itm.architectures = ['Blip2ForImageTextRetrieval'];
    const e = thrown(() => parseBlip2Config(itm));
    expect(e.code).toBe('E_ARCHITECTURE');
    expect(e.field).toBe('architectures');
    expect(e.message).toBe(
      'config.json: architectures names "Blip2ForImageTextRetrieval", an image-text retrieval checkpoint without a language model; blip2-ts runs Blip2ForConditionalGeneration checkpoints (captioning, VQA)',
    );
    itm.architectures = 'Blip2ForConditionalGeneration';
    expect(thrown(() => parseBlip2Config(itm)).code).toBe('E_CONFIG_TYPE');
    itm.architectures = ['Blip2Model'];
    expect(parseBlip2Config(itm).modelType).toBe('blip-2');
  });

  it('a feed_forward_proj the reference rejects', () => {
    for (const bad of ['gelu-new-x', 'fancy-gelu', 'gated-']) {
      const e = thrown(() => parseTextConfigJson({ model_type: 't5', feed_forward_proj: bad }));
      expect(e.code).toBe('E_CONFIG_FIELD');
      expect(e.message).toContain(`text_config.feed_forward_proj ("${bad}") must be of the form`);
    }
  });
});
