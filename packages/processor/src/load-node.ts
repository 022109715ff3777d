import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBlip2Config } from '@blip2/configs';
import { readJsonFile as readJson } from '@blip2/configs/node';
import {
  Blip2Processor,
  type Blip2ProcessorOptions,
  processorSettingsFromConfigs,
} from './blip2-processor.js';
import { decodeImageBrowser } from './decode-browser.js';
import { decodeImageBytes, decodeImageFile } from './decode-node.js';
import { ProcessorError } from './errors.js';
import type { RgbImage } from './image.js';
import { ImageProcessor } from './image-processor.js';
import { Tokenizer } from './tokenizer/tokenizer.js';

/**
 * Parsed JSON of `path`; `optional` returns undefined when the file does not exist. Read by
 * @blip2/configs' one JSON reader (which refuses FIFOs, devices and folders rather than
 * block on them), with this package's typed errors.
 */
export async function readJsonFile(
  path: string,
  optional = false,
  code: 'E_TOKENIZER_FILE' | 'E_CONFIG' = 'E_CONFIG',
): Promise<unknown> {
  return readJson(path, {
    optional,
    fail: (fault, file, reason, cause) =>
      new ProcessorError(
        fault === 'invalid' && code === 'E_TOKENIZER_FILE' ? 'E_TOKENIZER_JSON' : code,
        `${file}: ${reason}`,
        { cause },
      ),
  });
}

/** `tokenizer.json` (+ `tokenizer_config.json` when present) from a checkpoint folder. */
export async function loadTokenizer(folder: string): Promise<Tokenizer> {
  const json = await readJsonFile(join(folder, 'tokenizer.json'), false, 'E_TOKENIZER_FILE');
  const config = await readJsonFile(join(folder, 'tokenizer_config.json'), true, 'E_TOKENIZER_FILE');
  return Tokenizer.fromJSON(json, config);
}

/** Node image decoding: paths, file: URLs, encoded bytes and Blobs through sharp, the rest as in browsers. */
export async function decodeImageNode(input: unknown, what: string): Promise<RgbImage> {
  if (typeof input === 'string') return decodeImageFile(input);
  if (input instanceof URL) {
    if (input.protocol !== 'file:') {
      throw new ProcessorError(
        'E_IMAGE_INPUT',
        `${what}: ${input.href} is not a file: URL; in Node, fetch it and pass the bytes`,
      );
    }
    return decodeImageFile(fileURLToPath(input));
  }
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    return decodeImageBytes(new Uint8Array(await input.arrayBuffer()), what);
  }
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) {
    return decodeImageBytes(input instanceof Uint8Array ? input : new Uint8Array(input), what);
  }
  return decodeImageBrowser(input, what);
}

/**
 * A Blip2Processor for a checkpoint folder: tokenizer.json (+ tokenizer_config.json),
 * preprocessor_config.json (4.x) or processor_config.json (5.x), and config.json (parsed
 * by @blip2/configs) for `image_token_index` and the language model's padding side.
 */
export async function loadBlip2Processor(
  folder: string,
  overrides: Partial<Blip2ProcessorOptions> = {},
): Promise<Blip2Processor> {
  const tokenizer = overrides.tokenizer ?? (await loadTokenizer(folder));
  const preprocessor =
    (await readJsonFile(join(folder, 'processor_config.json'), true)) ??
    (await readJsonFile(join(folder, 'preprocessor_config.json'), true));
  if (preprocessor === undefined) {
    throw new ProcessorError(
      'E_CONFIG',
      `${folder}: neither processor_config.json nor preprocessor_config.json exists`,
    );
  }
  const configPath = join(folder, 'config.json');
  const modelJson = await readJsonFile(configPath, true);
  const modelConfig = modelJson === undefined ? undefined : parseBlip2Config(modelJson, configPath);
  const settings = processorSettingsFromConfigs(modelConfig, preprocessor, overrides.paddingSide);
  return new Blip2Processor({
    imageProcessor: overrides.imageProcessor ?? ImageProcessor.fromPreprocessorConfig(preprocessor),
    tokenizer,
    numQueryTokens: overrides.numQueryTokens ?? settings.numQueryTokens,
    imageTokenId: overrides.imageTokenId !== undefined ? overrides.imageTokenId : settings.imageTokenId,
    paddingSide: overrides.paddingSide ?? settings.paddingSide,
    decodeImage: overrides.decodeImage ?? decodeImageNode,
  });
}
