/**
 * Fields a config derives from other fields, and what happens when config.json stores
 * them too. transformers' rule: a config class computes its derived values in
 * `__init__` (4.x) / `__post_init__` (5.x), then `PretrainedConfig` sets every
 * remaining stored field as an attribute, so a stored value wins over the derived one.
 * The exceptions are values a composite config assigns after that step (BLIP-2's
 * Q-Former width, `is_encoder_decoder`). docs/configs.md prints this table; the tests
 * hold one case per row.
 */

export type StoredFieldRule =
  /** the stored value replaces the derived one */
  | 'stored wins'
  /** the stored value is ignored; the derived one is used, as transformers does */
  | 'derived wins'
  /** a stored value must equal the derived one; a different one is refused (E_CONFIG_FIELD) */
  | 'must agree';

export interface DerivedField {
  /** where the field lives: 'text_config (t5)', 'text_config (opt)', 'blip-2' */
  readonly config: string;
  /** the JSON spelling of the field */
  readonly field: string;
  /** the value used when the file does not store the field */
  readonly derived: string;
  readonly rule: StoredFieldRule;
  /** why, in the reference's terms */
  readonly note: string;
}

export const DERIVED_FIELDS: readonly DerivedField[] = [
  {
    config: 'text_config (t5)',
    field: 'dense_act_fn',
    derived: "from feed_forward_proj: the part after 'gated-', except 'gated-gelu' -> 'gelu_new'",
    rule: 'stored wins',
    note: 'the published Flan-T5 BLIP-2 checkpoints store "gelu": exact (erf) GELU, as LAVIS runs them',
  },
  {
    config: 'text_config (t5)',
    field: 'is_gated_act',
    derived: "feed_forward_proj starts with 'gated-'",
    rule: 'stored wins',
    note: 'selects wi_0 * wi_1 over a single wi',
  },
  {
    config: 'text_config (t5)',
    field: 'num_decoder_layers',
    derived: 'num_layers',
    rule: 'stored wins',
    note: 'a named argument of T5Config',
  },
  {
    config: 'text_config (t5)',
    field: 'scale_decoder_outputs',
    derived: 'tie_word_embeddings (original T5 ties and rescales; T5 v1.1 / Flan-T5 do neither)',
    rule: 'stored wins',
    note: 'written by transformers 5',
  },
  {
    config: 'text_config (t5)',
    field: 'decoder_start_token_id',
    derived: 'bos_token_id, else pad_token_id',
    rule: 'stored wins',
    note: "generate falls back to bos_token_id (transformers raises when both are absent; T5's convention is the pad token)",
  },
  {
    config: 'text_config (opt)',
    field: 'word_embed_proj_dim',
    derived: 'hidden_size',
    rule: 'must agree',
    note: 'language_projection emits hidden_size features in place of word embeddings (OPT-350m-like models are refused)',
  },
  {
    config: 'text_config (opt)',
    field: 'eos_token_id',
    derived: '2 (OPTConfig default)',
    rule: 'stored wins',
    note: 'the Salesforce OPT checkpoints store 50118 ("\\n"), the token LAVIS stops on',
  },
  {
    config: 'blip-2',
    field: 'qformer_config.encoder_hidden_size',
    derived: 'vision_config.hidden_size',
    rule: 'derived wins',
    note: 'Blip2Config assigns it after building the Q-Former config',
  },
  {
    config: 'blip-2',
    field: 'use_decoder_only_language_model',
    derived: "the text_config family's kind is decoder-only (OPT)",
    rule: 'must agree',
    note: '4.x ignores a stored value, 5.x lets it win and builds the wrong language model',
  },
  {
    config: 'blip-2',
    field: 'is_encoder_decoder',
    derived: "the text_config family's kind is encoder-decoder (T5)",
    rule: 'derived wins',
    note: "Blip2Config passes the text config's value to PretrainedConfig",
  },
];
