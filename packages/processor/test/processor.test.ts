import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { readSafetensorsFile } from '@blip2/safetensors/node';
import type { Tensor } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import {
  Blip2Processor,
  ImageProcessor,
  imageOptionsFromConfig,
  ProcessorError,
  Tokenizer,
} from '../src/index.js';
import { decodeImageBytes, loadBlip2Processor } from '../src/node.js';

const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

interface Reference {
  num_query_tokens: number;
  image_token_id: number;
  cases: { key: string; image: string; prompt: string; input_ids: number[] }[];
  generate: {
    name: string;
    new: number[][];
    text: string[];
    layout: string[];
    padding_side?: string;
    input_ids?: number[][];
    attention_mask?: number[][];
  }[];
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const rows = (t: Tensor<'int64'>) =>
  Array.from({ length: t.dims[0] }, (_, i) =>
    Array.from(t.data.subarray(i * t.dims[1], (i + 1) * t.dims[1]), Number),
  );

for (const [name, dir] of [
  ['opt', fixtures.tinyOpt],
  ['t5', fixtures.tinyT5],
] as const) {
  describe(`Blip2Processor on tiny-blip2-${name}`, async () => {
    const ref = readJson(join(dir, 'reference.json')) as Reference;
    const tensors = await readSafetensorsFile(join(dir, 'reference.safetensors'));
    const processor = await loadBlip2Processor(dir);

    it('reads the checkpoint settings', () => {
      expect(processor.numQueryTokens).toBe(ref.num_query_tokens);
      expect(processor.imageTokenId).toBe(ref.image_token_id);
      expect(processor.paddingSide).toBe(name === 'opt' ? 'left' : 'right');
      expect(processor.imageProcessor.options.size).toEqual({ height: 32, width: 32 });
    });

    it.each(ref.cases)('$key: input_ids and pixel_values', async (c) => {
      const out = await processor.process({ images: join(fixtures.images, c.image), text: c.prompt });
      expect(rows(out.inputIds as Tensor<'int64'>)).toEqual([c.input_ids]);
      expect(Array.from((out.attentionMask as { data: BigInt64Array }).data, Number)).toEqual(
        c.input_ids.map(() => 1),
      );
      const pv = tensors.get(`${c.key}/pixel_values`);
      expect(out.pixelValues?.dims).toEqual([1, ...(pv?.dims ?? [])]);
      expect(maxAbs(out.pixelValues?.data ?? [], pv?.data as Float32Array)).toBeLessThanOrEqual(1e-6);
    });

    const batches = ref.generate.filter((g) => g.name.startsWith('batch/'));
    it('has batch entries', () => expect(batches.length).toBeGreaterThan(0));
    it.each(batches)('$name: padded input_ids / attention_mask and pixel_values', async (g) => {
      // the reference batch: small_47x31.png and photo_100x80.jpg (found by matching
      // pil/32), with the prompts its ids decode to
      const prompts = (g.input_ids as number[][]).map((ids) => processor.decode(ids));
      const images = ['small_47x31.png', 'photo_100x80.jpg'].map((f) => join(fixtures.images, f));
      const out = await processor.process({ images, text: prompts });
      expect(rows(out.inputIds as Tensor<'int64'>)).toEqual(g.input_ids);
      expect(rows(out.attentionMask as Tensor<'int64'>)).toEqual(g.attention_mask);
      const pv = tensors.get('batch/pixel_values');
      expect(maxAbs(out.pixelValues?.data ?? [], pv?.data as Float32Array)).toBeLessThanOrEqual(1e-6);
    });

    it.each(batches)('$name: the other padding side, asked for, moves the pads to the other end', (g) => {
      const prompts = (g.input_ids as number[][]).map((ids) => processor.decode(ids));
      const other = processor.paddingSide === 'left' ? 'right' : 'left';
      const out = processor.encodeText(prompts, other);
      const n = processor.numQueryTokens;
      const moved = (row: number[], mask: number[]) => {
        const text = row.filter((_, i) => i >= n && mask[i] === 1);
        const pads = row.filter((_, i) => mask[i] === 0);
        return other === 'left'
          ? [...row.slice(0, n), ...pads, ...text]
          : [...row.slice(0, n), ...text, ...pads];
      };
      const ids = g.input_ids as number[][];
      const masks = g.attention_mask as number[][];
      expect(rows(out.inputIds)).toEqual(ids.map((r, i) => moved(r, masks[i]!)));
      expect(rows(out.attentionMask)).toEqual(masks.map((m) => moved(m, m)));
      expect(() => processor.encodeText(prompts, 'middle' as never)).toThrow(
        /paddingSide must be 'left' or 'right'/,
      );
    });

    it.each(batches)(
      '$name: maxTextTokens keeps the first N text ids of each prompt, image tokens apart',
      (g) => {
        const prompts = (g.input_ids as number[][]).map((ids) => processor.decode(ids));
        const n = processor.numQueryTokens;
        const texts = processor.tokenizer.encodeBatch(prompts).map((e) => e.ids);
        const keep = Math.max(1, Math.min(...texts.map((t) => t.length)) - 1);
        const out = processor.encodeText(prompts, 'right', keep);
        expect(out.inputIds.dims).toEqual([prompts.length, n + keep]);
        expect(rows(out.inputIds).map((r) => r.slice(n))).toEqual(texts.map((t) => t.slice(0, keep)));
        expect(rows(out.inputIds).map((r) => r.slice(0, n))).toEqual(
          rows(processor.encodeText(prompts, 'right').inputIds).map((r) => r.slice(0, n)),
        );
        // a limit above every prompt's length changes nothing
        const longest = Math.max(...texts.map((t) => t.length));
        expect(rows(processor.encodeText(prompts, 'left', longest).inputIds)).toEqual(
          rows(processor.encodeText(prompts, 'left').inputIds),
        );
        expect(() => processor.encodeText(prompts, 'left', 0)).toThrow(
          /maxTextTokens must be an integer >= 1 or null, got number 0/,
        );
      },
    );

    it('batchDecode gives the reference generate texts', () => {
      for (const g of ref.generate) {
        expect(processor.batchDecode(g.new)).toEqual(g.text);
      }
    });
  });
}

describe('configs and options', () => {
  it('reads the 4.x and 5.x layouts the same way', () => {
    const v4 = imageOptionsFromConfig(readJson(join(fixtures.tinyOpt, 'preprocessor_config.json')));
    const v5 = imageOptionsFromConfig(
      readJson(join(fixtures.tinyOpt, 'hf-processor', 'processor_config.json')),
    );
    expect(v5).toEqual(v4);
    expect(v4.size).toEqual({ height: 32, width: 32 });
    expect(
      imageOptionsFromConfig(readJson(join(fixtures.shapesOpt, 'preprocessor_config.json'))).size,
    ).toEqual({ height: 64, width: 64 });
  });
  it('honors doResize / doRescale / doNormalize', () => {
    const img = { width: 2, height: 1, data: new Uint8Array([0, 128, 255, 10, 20, 30]) };
    const raw = new ImageProcessor({ doResize: false, doRescale: false, doNormalize: false }).preprocess([
      img,
    ]);
    expect(raw.dims).toEqual([1, 3, 1, 2]);
    expect(Array.from(raw.data)).toEqual([0, 10, 128, 20, 255, 30]);
    const rescaled = new ImageProcessor({ doResize: false, doNormalize: false }).preprocess([img]);
    expect(rescaled.data[4]).toBeCloseTo(1, 7);
  });
  it('without an image token (pre-4.47 checkpoints) inserts none', () => {
    const tokenizer = Tokenizer.fromJSON(
      readJson(join(fixtures.tinyOpt, 'tokenizer.json')),
      readJson(join(fixtures.tinyOpt, 'tokenizer_config.json')),
    );
    const p = new Blip2Processor({
      imageProcessor: new ImageProcessor(),
      tokenizer,
      numQueryTokens: 5,
      imageTokenId: null,
      paddingSide: 'left',
    });
    const { inputIds } = p.encodeText(['a photo of']);
    expect(Array.from(inputIds.data, Number)).toEqual([2, 68, 789, 509]);
  });
});

describe('bad input gives typed errors', () => {
  it('an unreadable file', async () => {
    const p = await loadBlip2Processor(fixtures.tinyOpt);
    const err = await p.process({ images: '/nonexistent/cat.png' }).catch((e) => e);
    expect(err).toMatchObject({ code: 'E_IMAGE_FILE' });
    expect(err.message).toContain('/nonexistent/cat.png');
  });
  it('a truncated PNG and a truncated JPEG', async () => {
    for (const f of ['small_47x31.png', 'photo_100x80.jpg']) {
      const bytes = readFileSync(join(fixtures.images, f));
      const err = await decodeImageBytes(bytes.subarray(0, bytes.length >> 1), f).catch((e) => e);
      expect(err).toBeInstanceOf(ProcessorError);
      expect(err.code).toBe('E_IMAGE_DECODE');
      expect(err.message).toContain(f);
    }
  });
  it('an unsupported format and empty bytes', async () => {
    const svgish = new TextEncoder().encode('this is not an image at all');
    await expect(decodeImageBytes(svgish, 'notes.txt')).rejects.toMatchObject({
      code: 'E_IMAGE_FORMAT',
      message: expect.stringContaining('notes.txt'),
    });
    await expect(decodeImageBytes(new Uint8Array(0), 'empty.png')).rejects.toMatchObject({
      code: 'E_IMAGE_DECODE',
    });
  });
  it('a zero-size image', async () => {
    const p = await loadBlip2Processor(fixtures.tinyOpt);
    await expect(
      p.process({ images: { width: 0, height: 4, data: new Uint8Array(0) } }),
    ).rejects.toMatchObject({
      code: 'E_IMAGE_EMPTY',
      message: 'image 0: image is empty (0 x 4)',
    });
  });
  it('raw pixels of the wrong length, and a non-image value', async () => {
    const p = await loadBlip2Processor(fixtures.tinyOpt);
    await expect(
      p.process({ images: { width: 2, height: 2, data: new Uint8Array(5) } }),
    ).rejects.toMatchObject({ code: 'E_IMAGE_INPUT' });
    await expect(p.process({ images: 42 })).rejects.toMatchObject({
      code: 'E_IMAGE_INPUT',
      message: expect.stringContaining('number 42'),
    });
  });
  it('text of the wrong type', async () => {
    const p = await loadBlip2Processor(fixtures.tinyOpt);
    await expect(p.process({ text: 7 as unknown as string })).rejects.toMatchObject({ code: 'E_TEXT' });
    await expect(p.process({ text: ['ok', null as unknown as string] })).rejects.toMatchObject({
      code: 'E_TEXT',
      message: 'text[1] must be a string, got null',
    });
  });
  it('a bad config field', () => {
    // the fields are parsed by @blip2/configs, whose ConfigError names file and field
    expect(() => imageOptionsFromConfig({ size: { height: -1, width: 3 } })).toThrow(
      expect.objectContaining({
        code: 'E_CONFIG_FIELD',
        message: 'preprocessor_config.json: size.height must be an integer in [1, 4096], got -1',
      }),
    );
    expect(() => imageOptionsFromConfig({ image_mean: [1, 2] })).toThrow(
      /image_mean must hold 1 or 3 numbers, got 2/,
    );
    expect(() => imageOptionsFromConfig({ resample: 2 })).toThrow(
      expect.objectContaining({
        code: 'E_CONFIG',
        message: expect.stringMatching(/"resample" 2 is not supported/),
      }),
    );
  });
});
