// A corpus of broken config files: every bad value a hostile or careless file can hold
// (wrong types, negative, zero, huge, 1e999 (JSON's way to spell Infinity), missing,
// extra nesting), each refused where it is parsed by a ConfigError whose message names
// the file, the field and the allowed range; never a raw TypeError or RangeError.
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_LIMITS,
  ConfigError,
  parseBlip2Config,
  parseImageProcessorConfig,
  parseJsonObject,
} from '../src/index.js';
import { readJson } from './helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: the corpus edits arbitrary paths of parsed JSON
type Json = Record<string, any>;
const opt = (): Json => structuredClone(readJson(join(fixtures.tinyOpt, 'config.json')));
const t5 = (): Json => structuredClone(readJson(join(fixtures.tinyT5, 'config.json')));
const pre = (): Json => structuredClone(readJson(join(fixtures.tinyOpt, 'preprocessor_config.json')));

/** JSON text with `1e999` where the marker stands: JSON.parse reads it as Infinity. */
const INF = '__INF__';
function withInfinity(j: Json): Json {
  return parseJsonObject(JSON.stringify(j).replaceAll(`"${INF}"`, '1e999'), 'config.json');
}

interface Case {
  readonly name: string;
  readonly base: () => Json;
  readonly edit: (j: Json) => void;
  readonly code: 'E_CONFIG_FIELD' | 'E_CONFIG_TYPE';
  readonly field: string;
  /** the part of the message that states the allowed range or type */
  readonly says: string;
}

const big = 2 ** 40;
const CONFIG_CASES: Case[] = [
  // wrong types
  {
    name: 'a string width',
    base: opt,
    edit: (j) => {
      j.vision_config.hidden_size = '32';
    },
    code: 'E_CONFIG_TYPE',
    field: 'vision_config.hidden_size',
    says: 'expected an integer, got "32"',
  },
  {
    name: 'a fractional layer count',
    base: opt,
    edit: (j) => {
      j.qformer_config.num_hidden_layers = 2.5;
    },
    code: 'E_CONFIG_TYPE',
    field: 'qformer_config.num_hidden_layers',
    says: 'expected an integer, got 2.5',
  },
  {
    name: 'a list as a width',
    base: t5,
    edit: (j) => {
      j.text_config.d_model = [24];
    },
    code: 'E_CONFIG_TYPE',
    field: 'text_config.d_model',
    says: 'expected an integer, got [24]',
  },
  {
    name: 'a boolean as a string',
    base: opt,
    edit: (j) => {
      j.vision_config.qkv_bias = 'true';
    },
    code: 'E_CONFIG_TYPE',
    field: 'vision_config.qkv_bias',
    says: 'expected true or false',
  },
  {
    name: 'a number as the activation',
    base: opt,
    edit: (j) => {
      j.text_config.activation_function = 1;
    },
    code: 'E_CONFIG_TYPE',
    field: 'text_config.activation_function',
    says: 'expected a string, got 1',
  },
  {
    name: 'a string epsilon',
    base: t5,
    edit: (j) => {
      j.text_config.layer_norm_epsilon = '1e-6';
    },
    code: 'E_CONFIG_TYPE',
    field: 'text_config.layer_norm_epsilon',
    says: 'expected a number',
  },
  // extra nesting / missing structure
  {
    name: 'vision_config as a list',
    base: opt,
    edit: (j) => {
      j.vision_config = [j.vision_config];
    },
    code: 'E_CONFIG_TYPE',
    field: 'vision_config',
    says: 'expected a JSON object',
  },
  {
    name: 'text_config as a string',
    base: opt,
    edit: (j) => {
      j.text_config = 'opt';
    },
    code: 'E_CONFIG_TYPE',
    field: 'text_config',
    says: 'expected a JSON object, got "opt"',
  },
  {
    name: 'a width nested in an object',
    base: opt,
    edit: (j) => {
      j.text_config.hidden_size = { value: 24 };
    },
    code: 'E_CONFIG_TYPE',
    field: 'text_config.hidden_size',
    says: 'expected an integer',
  },
  {
    name: 'architectures as a string',
    base: opt,
    edit: (j) => {
      j.architectures = 'Blip2ForConditionalGeneration';
    },
    code: 'E_CONFIG_TYPE',
    field: 'architectures',
    says: 'a list of class names',
  },
  // zero and negative
  {
    name: 'zero heads',
    base: opt,
    edit: (j) => {
      j.vision_config.num_attention_heads = 0;
    },
    code: 'E_CONFIG_FIELD',
    field: 'vision_config.num_attention_heads',
    says: `must be an integer in [1, ${CONFIG_LIMITS.heads}], got 0`,
  },
  {
    name: 'a negative vocabulary',
    base: opt,
    edit: (j) => {
      j.text_config.vocab_size = -947;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.vocab_size',
    says: `must be an integer in [1, ${CONFIG_LIMITS.vocab}], got -947`,
  },
  {
    name: 'zero query tokens',
    base: opt,
    edit: (j) => {
      j.num_query_tokens = 0;
    },
    code: 'E_CONFIG_FIELD',
    field: 'num_query_tokens',
    says: `must be an integer in [1, ${CONFIG_LIMITS.queryTokens}], got 0`,
  },
  {
    name: 'a zero epsilon',
    base: opt,
    edit: (j) => {
      j.vision_config.layer_norm_eps = 0;
    },
    code: 'E_CONFIG_FIELD',
    field: 'vision_config.layer_norm_eps',
    says: 'must be > 0, got 0',
  },
  {
    name: 'a negative dropout',
    base: t5,
    edit: (j) => {
      j.text_config.dropout_rate = -0.1;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.dropout_rate',
    says: 'must be in [0, 1], got -0.1',
  },
  {
    name: 'a negative pad id',
    base: opt,
    edit: (j) => {
      j.text_config.pad_token_id = -1;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.pad_token_id',
    says: 'must be in [0, 946]',
  },
  {
    name: 'zero decoder layers',
    base: t5,
    edit: (j) => {
      j.text_config.num_decoder_layers = 0;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.num_decoder_layers',
    says: `must be an integer in [1, ${CONFIG_LIMITS.layers}], got 0`,
  },
  {
    name: 'a zero cross-attention frequency',
    base: opt,
    edit: (j) => {
      j.qformer_config.cross_attention_frequency = 0;
    },
    code: 'E_CONFIG_FIELD',
    field: 'qformer_config.cross_attention_frequency',
    says: 'must be an integer in [1, 1024], got 0',
  },
  // huge
  {
    name: 'a huge width',
    base: opt,
    edit: (j) => {
      j.text_config.hidden_size = big;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.hidden_size',
    says: `must be within ±${CONFIG_LIMITS.int} (int32), got ${big}`,
  },
  {
    name: 'a width above any model',
    base: opt,
    edit: (j) => {
      j.vision_config.intermediate_size = 1_000_000;
    },
    code: 'E_CONFIG_FIELD',
    field: 'vision_config.intermediate_size',
    says: `must be an integer in [1, ${CONFIG_LIMITS.width}], got 1000000`,
  },
  {
    name: 'a million layers',
    base: t5,
    edit: (j) => {
      j.text_config.num_layers = 1_000_000;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.num_layers',
    says: 'must be an integer in [1, 1024], got 1000000',
  },
  {
    name: 'a huge vocabulary',
    base: t5,
    edit: (j) => {
      j.text_config.vocab_size = 2 ** 30;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.vocab_size',
    says: `must be an integer in [1, ${2 ** 24}]`,
  },
  {
    name: 'a huge image',
    base: opt,
    edit: (j) => {
      j.vision_config.image_size = 100_000;
    },
    code: 'E_CONFIG_FIELD',
    field: 'vision_config.image_size',
    says: 'must be an integer in [1, 4096], got 100000',
  },
  {
    name: 'a huge position table',
    base: opt,
    edit: (j) => {
      j.text_config.max_position_embeddings = 2 ** 30;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.max_position_embeddings',
    says: `must be an integer in [1, ${2 ** 20}]`,
  },
  {
    name: 'a million queries',
    base: opt,
    edit: (j) => {
      j.num_query_tokens = 1_000_000;
    },
    code: 'E_CONFIG_FIELD',
    field: 'num_query_tokens',
    says: 'must be an integer in [1, 4096]',
  },
  // 1e999 (Infinity)
  {
    name: '1e999 as a width',
    base: opt,
    edit: (j) => {
      j.qformer_config.hidden_size = INF;
    },
    code: 'E_CONFIG_TYPE',
    field: 'qformer_config.hidden_size',
    says: 'expected an integer, got Infinity',
  },
  {
    name: '1e999 as an epsilon',
    base: opt,
    edit: (j) => {
      j.vision_config.layer_norm_eps = INF;
    },
    code: 'E_CONFIG_TYPE',
    field: 'vision_config.layer_norm_eps',
    says: 'expected a number, got Infinity',
  },
  {
    name: '1e999 as a token id',
    base: t5,
    edit: (j) => {
      j.text_config.eos_token_id = INF;
    },
    code: 'E_CONFIG_TYPE',
    field: 'text_config.eos_token_id',
    says: 'expected an integer, got Infinity',
  },
  // special token ids outside the vocabulary
  {
    name: 'an OPT eos past the vocabulary',
    base: opt,
    edit: (j) => {
      j.text_config.eos_token_id = 947;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.eos_token_id',
    says: '(947) is not a token id of text_config.vocab_size (947): must be in [0, 946]',
  },
  {
    name: 'an OPT bos past the vocabulary',
    base: opt,
    edit: (j) => {
      j.text_config.bos_token_id = 50_000;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.bos_token_id',
    says: 'must be in [0, 946]',
  },
  {
    name: 'a T5 pad past the vocabulary',
    base: t5,
    edit: (j) => {
      j.text_config.pad_token_id = 344;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.pad_token_id',
    says: 'is not a token id of text_config.vocab_size (344)',
  },
  {
    name: 'a T5 decoder start past the vocabulary',
    base: t5,
    edit: (j) => {
      j.text_config.decoder_start_token_id = 1000;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.decoder_start_token_id',
    says: 'must be in [0, 343]',
  },
  {
    name: 'a T5 bos past the vocabulary',
    base: t5,
    edit: (j) => {
      j.text_config.bos_token_id = 344;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.bos_token_id',
    says: 'must be in [0, 343]',
  },
  {
    name: 'a Q-Former pad past its vocabulary',
    base: opt,
    edit: (j) => {
      j.qformer_config.pad_token_id = 30522;
    },
    code: 'E_CONFIG_FIELD',
    field: 'qformer_config.pad_token_id',
    says: 'is not a token id of qformer_config.vocab_size (30522)',
  },
  // shapes that do not fit together
  {
    name: 'a patch that does not divide the image',
    base: opt,
    edit: (j) => {
      j.vision_config.patch_size = 5;
    },
    code: 'E_CONFIG_FIELD',
    field: 'vision_config.patch_size',
    says: '(5) does not divide image_size (32)',
  },
  {
    name: 'heads that do not divide the Q-Former width',
    base: opt,
    edit: (j) => {
      j.qformer_config.num_attention_heads = 3;
    },
    code: 'E_CONFIG_FIELD',
    field: 'qformer_config.num_attention_heads',
    says: '(3) does not divide hidden_size (32)',
  },
  {
    name: 'heads that do not divide the OPT width',
    base: opt,
    edit: (j) => {
      j.text_config.num_attention_heads = 7;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.num_attention_heads',
    says: '(7) does not divide hidden_size (24)',
  },
  {
    name: 'too few T5 buckets',
    base: t5,
    edit: (j) => {
      j.text_config.relative_attention_num_buckets = 2;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.relative_attention_num_buckets',
    says: 'must be at least 4, got 2',
  },
  {
    name: 'a T5 max distance inside the exact buckets',
    base: t5,
    edit: (j) => {
      j.text_config.relative_attention_max_distance = 4;
    },
    code: 'E_CONFIG_FIELD',
    field: 'text_config.relative_attention_max_distance',
    says: '(4) must exceed relative_attention_num_buckets // 2 (4)',
  },
];

const PREPROCESSOR_CASES: Case[] = [
  {
    name: 'a huge resize target',
    base: pre,
    edit: (j) => {
      j.size = { height: 1_000_000, width: 32 };
    },
    code: 'E_CONFIG_FIELD',
    field: 'size.height',
    says: 'must be an integer in [1, 4096], got 1000000',
  },
  {
    name: 'a huge square size',
    base: pre,
    edit: (j) => {
      j.size = 50_000;
    },
    code: 'E_CONFIG_FIELD',
    field: 'size',
    says: 'must be an integer in [1, 4096], got 50000',
  },
  {
    name: 'a zero width',
    base: pre,
    edit: (j) => {
      j.size = { height: 32, width: 0 };
    },
    code: 'E_CONFIG_FIELD',
    field: 'size.width',
    says: 'must be an integer in [1, 4096], got 0',
  },
  {
    name: 'a size without width',
    base: pre,
    edit: (j) => {
      j.size = { height: 32 };
    },
    code: 'E_CONFIG_FIELD',
    field: 'size',
    says: 'must have "height" and "width"',
  },
  {
    name: 'a size as a string',
    base: pre,
    edit: (j) => {
      j.size = '32x32';
    },
    code: 'E_CONFIG_TYPE',
    field: 'size',
    says: 'expected an integer or {"height", "width"}',
  },
  {
    name: 'a mean of two numbers',
    base: pre,
    edit: (j) => {
      j.image_mean = [0.5, 0.5];
    },
    code: 'E_CONFIG_FIELD',
    field: 'image_mean',
    says: 'must hold 1 or 3 numbers, got 2',
  },
  {
    name: 'a zero std',
    base: pre,
    edit: (j) => {
      j.image_std = [0.2, 0, 0.2];
    },
    code: 'E_CONFIG_FIELD',
    field: 'image_std',
    says: 'must be > 0',
  },
  {
    name: '1e999 in the mean',
    base: pre,
    edit: (j) => {
      j.image_mean = [0.5, INF, 0.5];
    },
    code: 'E_CONFIG_TYPE',
    field: 'image_mean',
    says: 'expected a list of numbers',
  },
  {
    name: 'a negative rescale factor',
    base: pre,
    edit: (j) => {
      j.rescale_factor = -1;
    },
    code: 'E_CONFIG_FIELD',
    field: 'rescale_factor',
    says: 'must be > 0, got -1',
  },
  {
    name: 'a resample filter PIL has not',
    base: pre,
    edit: (j) => {
      j.resample = 9;
    },
    code: 'E_CONFIG_FIELD',
    field: 'resample',
    says: '(9) is not a PIL filter (0..5)',
  },
  {
    name: 'nested image_processor as a list',
    base: pre,
    edit: (j) => {
      j.image_processor = [1];
    },
    code: 'E_CONFIG_TYPE',
    field: 'image_processor',
    says: 'expected a JSON object',
  },
  {
    name: 'a huge num_query_tokens (processor_config)',
    base: pre,
    edit: (j) => {
      j.num_query_tokens = 1e9;
    },
    code: 'E_CONFIG_FIELD',
    field: 'num_query_tokens',
    says: 'must be an integer in [1, 4096]',
  },
];

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    // a TypeError or RangeError here is the defect this corpus exists to catch
    expect(e, String(e)).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('accepted a broken file');
}

describe('broken config.json files: each refused naming file, field and range', () => {
  it('the unbroken fixtures parse (the corpus starts from valid files)', () => {
    expect(parseBlip2Config(opt()).textConfig.modelType).toBe('opt');
    expect(parseBlip2Config(t5()).textConfig.modelType).toBe('t5');
    expect(parseImageProcessorConfig(pre()).size).toEqual({ height: 32, width: 32 });
  });
  for (const c of CONFIG_CASES) {
    it(c.name, () => {
      const j = c.base();
      c.edit(j);
      const e = refusal(() => parseBlip2Config(withInfinity(j), '/models/broken/config.json'));
      expect(e.code).toBe(c.code);
      expect(e.file).toBe('/models/broken/config.json');
      expect(e.field).toBe(c.field);
      expect(e.message).toContain(`/models/broken/config.json: ${c.field}`);
      expect(e.message).toContain(c.says);
    });
  }
});

describe('broken preprocessor_config.json files', () => {
  for (const c of PREPROCESSOR_CASES) {
    it(c.name, () => {
      const j = c.base();
      c.edit(j);
      const e = refusal(() => parseImageProcessorConfig(withInfinity(j), 'preprocessor_config.json'));
      expect(e.code).toBe(c.code);
      expect(e.field).toBe(c.field);
      expect(e.message).toContain(`preprocessor_config.json: ${c.field}`);
      expect(e.message).toContain(c.says);
    });
  }
});

describe('files that are not a config at all', () => {
  for (const [name, text] of [
    ['empty', ''],
    ['a JSON array', '[]'],
    ['a number', '1e999'],
    ['truncated', '{"model_type": "blip-2", "vision_config": {'],
    ['a UTF-8 BOM then JSON', '\uFEFF{}'],
  ] as const) {
    it(name, () => {
      const e = refusal(() => parseJsonObject(text, 'config.json'));
      expect(e.code).toBe('E_CONFIG_JSON');
      expect(e.message.startsWith('config.json: ')).toBe(true);
    });
  }
  it('model_type missing', () => {
    const j = opt();
    delete j.model_type;
    expect(refusal(() => parseBlip2Config(j)).message).toBe(
      `config.json: model_type undefined is not supported (expected 'blip-2')`,
    );
  });
});
