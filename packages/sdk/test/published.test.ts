// `blip2 inspect` on every published checkpoint's config files (tooling/fixtures/published,
// reconstructed from transformers' conversion script) beside a model.safetensors whose header
// holds the real tensor names and shapes (manifests.json; the 364 px captioners with a
// 677-row position table) and whose data is a sparse hole: graphs are built from the header,
// nothing runs, nothing is downloaded.
import { cp, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBlip2Config } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import { processorSettingsFromConfigs } from '@blip2/processor';
import { encodeHeader } from '@blip2/safetensors';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectModel } from '../src/cli/inspect.js';
import { Blip2ForConditionalGeneration } from '../src/index.js'; // also registers the Node platform

const manifests = JSON.parse(await readFile(fixtures.manifests, 'utf8')) as Record<
  string,
  { weights: Record<string, number[]> }
>;
const temps: string[] = [];
afterAll(() => Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))));

/** The variant's config files and a header-only (sparse) model.safetensors in its real shapes. */
async function checkpoint(
  variant: string,
  manifest: string,
  imageSize: number,
  tableSize = imageSize,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'blip2-published-'));
  temps.push(dir);
  await cp(join(fixtures.published, variant), dir, { recursive: true });
  const patches = (tableSize / 14) ** 2;
  const entries = Object.entries(manifests[manifest].weights).map(([name, shape]) => ({
    name,
    dtype: 'F16' as const,
    shape: name === 'vision_model.embeddings.position_embedding' ? [1, patches + 1, shape[2]] : shape,
  }));
  const { head, dataBytes } = encodeHeader(entries);
  const file = await open(join(dir, 'model.safetensors'), 'w');
  await file.write(head);
  await file.truncate(head.length + dataBytes);
  await file.close();
  return dir;
}

const OPT_USES = {
  activation: {
    value: 'relu',
    source: expect.stringMatching(/config\.json text_config\.activation_function$/),
  },
  eosTokenId: { value: 50118 },
  bosTokenId: { value: 2 },
  padTokenId: { value: 1 },
};
const T5_USES = {
  activation: {
    value: 'gelu (gated)',
    source: expect.stringMatching(/config\.json text_config\.dense_act_fn$/),
  },
  eosTokenId: { value: 1 },
  bosTokenId: { value: 1 },
  padTokenId: { value: 0 },
  decoderStartTokenId: {
    value: 0,
    source: expect.stringMatching(/config\.json text_config\.decoder_start_token_id$/),
  },
};

const VARIANTS: [variant: string, manifest: string, imageSize: number][] = [
  ['blip2-opt-2.7b', 'blip2-opt-2.7b', 224],
  ['blip2-opt-6.7b', 'blip2-opt-6.7b', 224],
  ['blip2-opt-2.7b-coco', 'blip2-opt-2.7b', 364],
  ['blip2-opt-6.7b-coco', 'blip2-opt-6.7b', 364],
  ['blip2-flan-t5-xl', 'blip2-flan-t5-xl', 224],
  ['blip2-flan-t5-xl-coco', 'blip2-flan-t5-xl', 364],
  ['blip2-flan-t5-xxl', 'blip2-flan-t5-xxl', 224],
  ['legacy/blip2-opt-2.7b', 'blip2-opt-2.7b', 224],
  ['legacy/blip2-flan-t5-xl', 'blip2-flan-t5-xl', 224],
];

describe('blip2 inspect on the published checkpoints (real shapes, no weights)', () => {
  for (const [variant, manifest, imageSize] of VARIANTS) {
    it(`${variant}: builds every graph; activation, stop tokens and ${imageSize} px, each with its source`, async () => {
      const report = await inspectModel(await checkpoint(variant, manifest, imageSize));
      expect(report.missing).toEqual([]);
      expect(report.config.vision).toMatchObject({ imageSize });
      const t5 = variant.includes('t5');
      expect(report.languageModel).toBe(t5 ? 't5' : 'opt');
      expect(report.uses).toMatchObject(t5 ? T5_USES : OPT_USES);
      expect(report.uses.imageSize).toEqual({
        value: [imageSize, imageSize],
        source: expect.stringMatching(/preprocessor_config\.json size$/),
      });
      // generation_config.json; the legacy ones (4.27's from_model_config) hold no token ids,
      // which then come from the text config, as 4.x's language model generated with them
      const legacy = variant.startsWith('legacy/');
      expect(report.uses.eosTokenId.source).toBe(
        legacy
          ? 'config.json text_config.eos_token_id (generation_config.json is _from_model_config without it)'
          : 'generation_config.json',
      );
      expect(report.config.imageTokenIndex).toBe(legacy ? null : t5 ? 32100 : 50265);
      // the processor: 32 <image> tokens, or (legacy) none, the queries prefixing the text
      const files = (name: string) =>
        readFile(join(fixtures.published, variant, name), 'utf8').then(JSON.parse);
      expect(
        processorSettingsFromConfigs(
          parseBlip2Config(await files('config.json')),
          await files('preprocessor_config.json'),
        ),
      ).toEqual({
        numQueryTokens: 32,
        imageTokenId: legacy ? null : t5 ? 32100 : 50265,
        paddingSide: t5 ? 'right' : 'left',
      });
    });
  }

  it('a 364 px config over a 224 px position table names the weight', async () => {
    const report = await inspectModel(await checkpoint('blip2-opt-2.7b-coco', 'blip2-opt-2.7b', 364, 224));
    expect(report.missing).toEqual([
      {
        part: 'vision_model',
        problem: expect.stringContaining(
          "position_embedding' has shape [1,257,1408], needs [1,>=677,1408] for image_size 364",
        ),
      },
    ]);
  });

  for (const variant of ['blip2-itm-vit-g', 'blip2-itm-vit-g-coco']) {
    it(`${variant}: refused, naming the architecture`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'blip2-published-'));
      temps.push(dir);
      await cp(join(fixtures.published, variant), dir, { recursive: true });
      await expect(inspectModel(dir)).rejects.toMatchObject({
        code: 'E_ARCHITECTURE',
        message: expect.stringContaining('architectures names "Blip2ForImageTextRetrieval"'),
      });
    });
  }
});

describe('a checkpoint folder without generation_config.json', () => {
  /** tiny-blip2-opt without generation_config.json, its text config's eos_token_id set to `eos` */
  async function withoutGenerationConfig(eos?: number, generationConfig?: object): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'blip2-no-genconfig-'));
    temps.push(dir);
    await cp(fixtures.tinyOpt, dir, { recursive: true });
    await rm(join(dir, 'generation_config.json'));
    if (generationConfig)
      await writeFile(join(dir, 'generation_config.json'), JSON.stringify(generationConfig));
    if (eos !== undefined) {
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
      config.text_config.eos_token_id = eos;
      await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    }
    return dir;
  }

  it('stops where the text config says, as from_model_config derives it', async () => {
    const image = join(fixtures.images, 'coco_500x375.jpg');
    const run = async (dir: string) => {
      const model = await Blip2ForConditionalGeneration.fromPretrained(dir);
      try {
        const { pixelValues } = await model.processor.process({ images: [image] });
        return (await model.generate({ pixelValues: pixelValues as never }, { maxNewTokens: 12 }))
          .sequences[0];
      } finally {
        await model.dispose();
      }
    };
    const reference = await run(fixtures.tinyOpt);
    // the fixture's generation_config.json is what from_model_config wrote: same tokens without it
    expect(await run(await withoutGenerationConfig())).toEqual(reference);
    // a stored text_config.eos_token_id (as Salesforce's 50118) ends generation on that token
    const stop = reference[3];
    const stopped = await run(await withoutGenerationConfig(stop));
    expect(stopped).toEqual(reference.slice(0, reference.indexOf(stop) + 1));
    expect(stopped.length).toBeLessThan(reference.length);
    const report = await inspectModel(await withoutGenerationConfig(stop));
    expect(report.uses.eosTokenId).toEqual({ value: stop, source: 'config.json text_config.eos_token_id' });
    // a file 4.27 wrote (from the model config, no token ids) lets the text config decide too
    const legacy = { _from_model_config: true, transformers_version: '4.27.0.dev0' };
    expect(await run(await withoutGenerationConfig(stop, legacy))).toEqual(stopped);
    // a file of its own is used as it is: no eos_token_id there, none used
    const own = await run(await withoutGenerationConfig(stop, { max_new_tokens: 12 }));
    expect(own.length).toBe(12);
  });
});
