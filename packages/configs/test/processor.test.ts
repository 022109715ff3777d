import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures, thrown as thrownBy } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { ConfigError, OPENAI_CLIP_MEAN, parseImageProcessorConfig } from '../src/index.js';
import { loadBlip2Config, loadImageProcessorConfig } from '../src/node.js';
import { readJson } from './helpers.js';

const thrown = (fn: () => unknown) => thrownBy(fn, ConfigError);

describe('image processor configs, both layouts', () => {
  for (const dir of [fixtures.tinyOpt, fixtures.tinyT5]) {
    it(`${dir.split('/').pop()}: preprocessor_config.json (4.x) and processor_config.json (5.x) agree`, () => {
      const flat = parseImageProcessorConfig(readJson(join(dir, 'preprocessor_config.json')));
      const nested = parseImageProcessorConfig(
        readJson(join(dir, 'hf-processor', 'processor_config.json')),
        'processor_config.json',
      );
      expect(flat.layout).toBe('preprocessor_config');
      expect(nested.layout).toBe('processor_config');
      expect({ ...nested, layout: 'x' }).toEqual({ ...flat, layout: 'x' });
      expect(flat).toMatchObject({
        size: { height: 32, width: 32 },
        resample: 3,
        rescaleFactor: 1 / 255,
        imageMean: [...OPENAI_CLIP_MEAN],
        imageStd: [0.26862954, 0.26130258, 0.27577711],
        doConvertRgb: true,
        numQueryTokens: 5,
        processorClass: 'Blip2Processor',
        imageProcessorType: 'BlipImageProcessor',
      });
    });
  }

  it('shapes checkpoints: 64 px, 8 query tokens', () => {
    for (const dir of [fixtures.shapesOpt, fixtures.shapesT5]) {
      const c = parseImageProcessorConfig(readJson(join(dir, 'preprocessor_config.json')));
      expect(c.size).toEqual({ height: 64, width: 64 });
      expect(c.numQueryTokens).toBe(8);
    }
  });

  it("BlipImageProcessor's defaults, and an integer size meaning a square", () => {
    const c = parseImageProcessorConfig({});
    expect(c).toMatchObject({
      size: { height: 384, width: 384 },
      resample: 3,
      doResize: true,
      doNormalize: true,
    });
    expect(c.numQueryTokens).toBeUndefined();
    expect(parseImageProcessorConfig({ size: 224 }).size).toEqual({ height: 224, width: 224 });
  });

  it('rejects what cannot be applied, naming the field', () => {
    let e = thrown(() => parseImageProcessorConfig({ resample: 7 }));
    expect(e.message).toBe('preprocessor_config.json: resample (7) is not a PIL filter (0..5)');
    e = thrown(() =>
      parseImageProcessorConfig({ image_processor: { image_mean: [0.5, 0.5] } }, 'processor_config.json'),
    );
    expect(e.message).toBe(
      'processor_config.json: image_processor.image_mean must hold 1 or 3 numbers, got 2',
    );
    e = thrown(() => parseImageProcessorConfig({ image_std: [0.2, 0, 0.2] }));
    expect(e.code).toBe('E_CONFIG_FIELD');
    e = thrown(() => parseImageProcessorConfig({ size: { shortest_edge: 224 } }));
    expect(e.field).toBe('size');
    e = thrown(() => parseImageProcessorConfig({ image_processor: 'BlipImageProcessor' }));
    expect(e.code).toBe('E_CONFIG_TYPE');
  });
});

describe('node loaders', () => {
  it('load a checkpoint folder', async () => {
    const c = await loadBlip2Config(fixtures.tinyT5);
    expect(c.textConfig.modelType).toBe('t5');
    expect((await loadImageProcessorConfig(fixtures.tinyT5)).layout).toBe('preprocessor_config');
    expect((await loadImageProcessorConfig(join(fixtures.tinyT5, 'hf-processor'))).layout).toBe(
      'processor_config',
    );
  });

  it('name the path of a missing or broken file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blip2-configs-'));
    await expect(loadBlip2Config(dir)).rejects.toMatchObject({
      code: 'E_CONFIG_FILE',
      message: `${join(dir, 'config.json')}: not found (looked for config.json in ${dir})`,
    });
    await expect(loadImageProcessorConfig(dir)).rejects.toMatchObject({ code: 'E_CONFIG_FILE' });
    await writeFile(join(dir, 'config.json'), '{"model_type": "blip-2",');
    await expect(loadBlip2Config(dir)).rejects.toMatchObject({ code: 'E_CONFIG_JSON' });
    await writeFile(join(dir, 'config.json'), '[1, 2]');
    await expect(loadBlip2Config(dir)).rejects.toThrow(
      `${join(dir, 'config.json')}: expected a JSON object, got [1,2]`,
    );
  });
});
