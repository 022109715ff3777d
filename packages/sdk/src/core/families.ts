/**
 * The language models BLIP-2 is published with, registered as @blip2/generation
 * language-model modules: each family's package owns its module (config, graphs,
 * adapter, VQA presets, inspect summary); the SDK only registers them. A module
 * passed in (`{ languageModel }`) or registered by another package replaces or adds one.
 */
import {
  type LanguageModelModule,
  languageModelModule,
  registeredLanguageModels,
  registerLanguageModel,
} from '@blip2/generation';
import { t5Module } from '@blip2/llm-flan-t5';
import { optModule } from '@blip2/llm-opt';
import { SdkError } from '../errors.js';

registerLanguageModel(optModule);
registerLanguageModel(t5Module);

export type { LanguageModelModule };
export { optModule, t5Module };

/** The modules the SDK registers, by `text_config.model_type` (others: `languageModelModule(type)`). */
export const LANGUAGE_MODELS: Readonly<Record<string, LanguageModelModule>> = {
  opt: optModule,
  t5: t5Module,
};

/** The module `text_config.model_type` selects (registered by the SDK or by another package). */
export function moduleFor(modelType: string): LanguageModelModule | undefined {
  return languageModelModule(modelType);
}

/**
 * `moduleFor`, or a typed error naming `file` (the config.json) and the registered types:
 * a `model_type` @blip2/configs reads (`registerTextConfig`) need not have a module.
 */
export function requireModule(modelType: string, file: string): LanguageModelModule {
  const module = languageModelModule(modelType);
  if (module) return module;
  throw new SdkError(
    'E_MODEL_TYPE',
    `${file}: no language-model module is registered for text_config.model_type '${modelType}' (registered: ${registeredLanguageModels().join(', ')})`,
  );
}
