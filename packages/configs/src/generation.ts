/**
 * What transformers generates with when a checkpoint has no generation_config.json:
 * `GenerationConfig.from_model_config(config)`. It takes the generation fields of the
 * top-level config (a BLIP-2 config.json stores none of them as a rule), then fills
 * the ones still unset from the decoder's text config, `text_config`, as that config
 * class materialises it (class defaults included: an OPT text config that stores no
 * `eos_token_id` means 2). The Salesforce OPT checkpoints store
 * `text_config.eos_token_id` 50118 ("\n"), so that is where their answers stop.
 */
import type { Blip2Config } from './blip2.js';
import { Fields } from './fields.js';
import { textConfigFamily } from './text-config.js';

/** The token fields `from_model_config` reads for BLIP-2, in generation_config.json's spelling. */
export const GENERATION_TOKEN_FIELDS = [
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'decoder_start_token_id',
] as const;
export type GenerationTokenField = (typeof GENERATION_TOKEN_FIELDS)[number];

export interface ModelGenerationDefaults {
  /** a generation_config.json object (@blip2/generation's `generationOptionsFromConfig` reads it) */
  readonly json: Partial<Record<GenerationTokenField, number | number[]>>;
  /** where each value came from: `config.json text_config.eos_token_id`, `OPTConfig default`, ... */
  readonly sources: Partial<Record<GenerationTokenField, string>>;
}

/** The text config's value of a token field once its class has applied its defaults. */
function materialised(config: Blip2Config, name: GenerationTokenField): number | undefined {
  const t = config.textConfig;
  if (name === 'bos_token_id') return t.bosTokenId;
  if (name === 'eos_token_id') return t.eosTokenId;
  if (name === 'pad_token_id') return t.padTokenId;
  // a start token is the encoder-decoder generate's business, not a config class default
  // (neither OPTConfig nor T5Config has one): only a stored one counts
  return undefined;
}

/**
 * `GenerationConfig.from_model_config` for a parsed BLIP-2 config and the JSON it came
 * from (`file` names it in the sources and in errors).
 */
export function generationDefaultsFromModelConfig(
  json: unknown,
  config: Blip2Config,
  file = 'config.json',
): ModelGenerationDefaults {
  const top = Fields.of(json, file);
  const text = top.sub('text_config');
  const out: Partial<Record<GenerationTokenField, number | number[]>> = {};
  const sources: Partial<Record<GenerationTokenField, string>> = {};
  const className =
    textConfigFamily(config.textConfig.modelType)?.configClass ?? `${config.textConfig.modelType} config`;
  for (const name of GENERATION_TOKEN_FIELDS) {
    let value: number | number[] | undefined;
    if (top.has(name)) {
      value = top.indexOrList(name);
      sources[name] = `${file} ${name}`;
    } else if (text.has(name)) {
      value = text.indexOrList(name);
      sources[name] = `${file} text_config.${name}`;
    } else {
      value = materialised(config, name);
      if (value !== undefined) sources[name] = `${className} default`;
    }
    if (value !== undefined) out[name] = value;
  }
  return { json: out, sources };
}
