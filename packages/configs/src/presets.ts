/**
 * Configs of the published Salesforce checkpoints, for building real-size graphs
 * without downloading anything (graph construction, memory planning, benchmarks
 * on random weights). Written as the JSON the conversion script saves (the test
 * corpus tooling/fixtures/published holds those files in full), minus the fields
 * equal to the reference's defaults, and parsed like any `config.json`, so a
 * preset can never hold a value a file could not.
 */
import { type Blip2Config, parseBlip2Config } from './blip2.js';
import { ConfigError } from './fields.js';

type Json = Record<string, unknown>;

function opt(hiddenSize: number, ffnDim: number): Json {
  return {
    model_type: 'opt',
    hidden_size: hiddenSize,
    word_embed_proj_dim: hiddenSize,
    ffn_dim: ffnDim,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    vocab_size: 50272,
    // the conversion script's eos_token_id: the id of "\n", where LAVIS stops
    eos_token_id: 50118,
  };
}

function flanT5(dModel: number, dFf: number, numHeads: number): Json {
  return {
    model_type: 't5',
    d_model: dModel,
    d_ff: dFf,
    d_kv: 64,
    num_heads: numHeads,
    num_layers: 24,
    num_decoder_layers: 24,
    feed_forward_proj: 'gated-gelu',
    // the conversion script's T5Config.from_pretrained(..., dense_act_fn="gelu", bos_token_id=1):
    // exact GELU in the gated FFN, as LAVIS runs Flan-T5
    dense_act_fn: 'gelu',
    bos_token_id: 1,
    // Flan-T5 (T5 v1.1): an lm_head of its own and no rescaling of the decoder output
    tie_word_embeddings: false,
    decoder_start_token_id: 0,
  };
}

// The ViT and Q-Former of every variant are the reference defaults (EVA ViT-g/14,
// BERT-base Q-Former); only the fine-tuned COCO captioners run at 364 px.
function blip2(text: Json, imageTokenIndex: number, imageSize = 224): Json {
  return {
    model_type: 'blip-2',
    num_query_tokens: 32,
    image_token_index: imageTokenIndex,
    vision_config: { image_size: imageSize },
    qformer_config: {},
    text_config: text,
  };
}

const OPT_IMAGE_TOKEN = 50265;
const T5_IMAGE_TOKEN = 32100;

const PRESET_JSON = {
  'Salesforce/blip2-opt-2.7b': blip2(opt(2560, 10240), OPT_IMAGE_TOKEN),
  'Salesforce/blip2-opt-6.7b': blip2(opt(4096, 16384), OPT_IMAGE_TOKEN),
  'Salesforce/blip2-flan-t5-xl': blip2(flanT5(2048, 5120, 32), T5_IMAGE_TOKEN),
  'Salesforce/blip2-flan-t5-xxl': blip2(flanT5(4096, 10240, 64), T5_IMAGE_TOKEN),
  'Salesforce/blip2-opt-2.7b-coco': blip2(opt(2560, 10240), OPT_IMAGE_TOKEN, 364),
  'Salesforce/blip2-opt-6.7b-coco': blip2(opt(4096, 16384), OPT_IMAGE_TOKEN, 364),
  'Salesforce/blip2-flan-t5-xl-coco': blip2(flanT5(2048, 5120, 32), T5_IMAGE_TOKEN, 364),
} as const;

export type PresetName = keyof typeof PRESET_JSON;

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

export const presets: Readonly<Record<PresetName, Blip2Config>> = deepFreeze(
  Object.fromEntries(
    Object.entries(PRESET_JSON).map(([name, json]) => [name, parseBlip2Config(json, `preset ${name}`)]),
  ) as Record<PresetName, Blip2Config>,
);

export const presetNames = Object.keys(PRESET_JSON) as PresetName[];

/** A preset by name; the `Salesforce/` prefix may be left out. */
export function getPreset(name: string): Blip2Config {
  const key = (name.includes('/') ? name : `Salesforce/${name}`) as PresetName;
  const preset = presets[key];
  if (!preset) {
    throw new ConfigError(
      'E_PRESET',
      'presets',
      `no preset ${JSON.stringify(name)} (known: ${presetNames.join(', ')})`,
    );
  }
  return preset;
}
