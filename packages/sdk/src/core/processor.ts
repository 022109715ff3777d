/**
 * `Blip2Processor.fromPretrained`: the processor of a checkpoint on its own (the
 * tokenizer and image preprocessing, no graphs), from the same sources as the models.
 * The SDK's class is @blip2/processor's with that loader added, so a model's
 * `processor` and one loaded alone are the same kind of object.
 */

import { type Blip2Config, parseBlip2Config } from '@blip2/configs';
import {
  Blip2Processor as BaseBlip2Processor,
  type ImageDecoder,
  ImageProcessor,
  processorSettingsFromConfigs,
  Tokenizer,
} from '@blip2/processor';
import { SdkError } from '../errors.js';
import { moduleFor } from './families.js';
import { checkSourceOptions, SOURCE_OPTION_NAMES } from './option-names.js';
import { type ModelFiles, platform, type SourceOptions } from './platform.js';

export class Blip2Processor extends BaseBlip2Processor {
  /** A folder, an http(s) URL or a hub id, as `Blip2ForConditionalGeneration.fromPretrained` takes. */
  static async fromPretrained(source: string, options: SourceOptions = {}): Promise<Blip2Processor> {
    checkSourceOptions(options, SOURCE_OPTION_NAMES, 'Blip2Processor.fromPretrained options');
    const p = platform();
    const files = await p.openSource(source, options);
    const file = `${files.location}/config.json`;
    const config = parseBlip2Config(await files.readJson('config.json'), file);
    return loadProcessor(files, config, moduleFor(config.textConfig.modelType)?.paddingSide, p.decodeImage);
  }
}

/**
 * tokenizer.json (+ tokenizer_config.json) and the 5.x processor_config.json or the 4.x
 * preprocessor_config.json, with the parsed model config and the language-model module's
 * padding side (undefined: that of the family registered for the config's model_type).
 */
export async function loadProcessor(
  files: ModelFiles,
  config: Blip2Config,
  paddingSide: 'left' | 'right' | undefined,
  decodeImage: ImageDecoder,
): Promise<Blip2Processor> {
  const tokenizerJson = await files.readJson('tokenizer.json');
  const tokenizerConfig = await files.readJson('tokenizer_config.json', true);
  const pre =
    (await files.readJson('processor_config.json', true)) ??
    (await files.readJson('preprocessor_config.json', true));
  if (pre === undefined) {
    throw new SdkError(
      'E_MISSING_FILE',
      `${files.location}: neither processor_config.json nor preprocessor_config.json exists`,
    );
  }
  const settings = processorSettingsFromConfigs(config, pre, paddingSide);
  return new Blip2Processor({
    imageProcessor: ImageProcessor.fromPreprocessorConfig(pre),
    tokenizer: Tokenizer.fromJSON(tokenizerJson, tokenizerConfig),
    ...settings,
    decodeImage,
  });
}
