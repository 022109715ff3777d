// Bad input, case by case: each is a typed error (class + stable `code`) whose
// message names the file, field or value at fault. Checkpoints are broken in a
// copy of the tiny fixture in a temp folder.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, type OPTConfig } from '@blip2/configs';
import { fixtures } from '@blip2/fixtures';
import { ProcessorError } from '@blip2/processor';
import { SafetensorsError, serializeSafetensors, type TensorBytes } from '@blip2/safetensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2Error, Blip2ForConditionalGeneration, GenerationError } from '../src/index.js';

const IMAGE = join(fixtures.images, 'small_47x31.png');

function copyOf(dir = fixtures.tinyOpt): string {
  const to = mkdtempSync(join(tmpdir(), 'blip2-broken-'));
  cpSync(dir, to, { recursive: true });
  return to;
}

/** Rewrites model.safetensors after `edit` changed its tensors (names, shapes, extra ones). */
function editWeights(dir: string, edit: (tensors: Record<string, TensorBytes>) => void): void {
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const data = bytes.subarray(8 + n);
  const tensors: Record<string, TensorBytes> = {};
  for (const [name, info] of Object.entries<{ dtype: string; shape: number[]; data_offsets: number[] }>(
    header,
  )) {
    if (name === '__metadata__') continue;
    tensors[name] = {
      dtype: info.dtype as TensorBytes['dtype'],
      shape: info.shape,
      data: data.subarray(info.data_offsets[0], info.data_offsets[1]),
    };
  }
  edit(tensors);
  writeFileSync(file, serializeSafetensors(tensors));
}

function editConfig(dir: string, edit: (config: Record<string, Record<string, unknown>>) => void): void {
  const file = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(file, 'utf8'));
  edit(config);
  writeFileSync(file, JSON.stringify(config));
}

const load = (dir: string, options = {}) =>
  Blip2ForConditionalGeneration.fromPretrained(dir, { onWarning: () => {}, ...options });

async function failure(p: Promise<unknown>): Promise<Error & { code: string }> {
  const result = await p.then(
    (v) => ({ ok: true as const, v }),
    (e) => ({ ok: false as const, e }),
  );
  if (result.ok) throw new Error('expected a rejection');
  return result.e;
}

describe('bad checkpoints', () => {
  it('a folder that does not exist', async () => {
    const e = await failure(load('/no/such/checkpoint'));
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_SOURCE');
    expect(e.message).toContain('/no/such/checkpoint');
  });

  it('a folder without config.json / tokenizer.json / preprocessor config', async () => {
    let dir = copyOf();
    rmSync(join(dir, 'config.json'));
    let e = await failure(load(dir));
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_MISSING_FILE');
    expect(e.message).toContain('config.json');

    dir = copyOf();
    rmSync(join(dir, 'tokenizer.json'));
    e = await failure(load(dir));
    expect(e).toMatchObject({ code: 'E_MISSING_FILE' });
    expect(e.message).toContain(join(dir, 'tokenizer.json'));

    dir = copyOf();
    rmSync(join(dir, 'preprocessor_config.json'));
    e = await failure(load(dir));
    expect(e).toMatchObject({ code: 'E_MISSING_FILE' });
    expect(e.message).toMatch(/preprocessor_config\.json/);
  });

  it('a folder without model.safetensors', async () => {
    const dir = copyOf();
    rmSync(join(dir, 'model.safetensors'));
    const e = await failure(load(dir));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.code).toBe('E_NOT_FOUND');
    expect(e.message).toContain(join(dir, 'model.safetensors'));
  });

  it("model_type that is not 'blip-2' lists what is supported", async () => {
    let dir = copyOf();
    editConfig(dir, (c) => {
      (c as Record<string, unknown>).model_type = 'blip';
    });
    let e = await failure(load(dir));
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_MODEL_TYPE');
    expect(e.message).toContain(join(dir, 'config.json'));
    expect(e.message).toContain('"blip"');
    expect(e.message).toMatch(/'blip-2'.*opt, t5/);

    dir = copyOf();
    editConfig(dir, (c) => {
      c.text_config.model_type = 'llama';
    });
    e = await failure(load(dir));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.code).toBe('E_MODEL_TYPE');
    expect(e.message).toContain('text_config.model_type "llama"');
    expect(e.message).toContain("'opt', 't5'");
  });

  it('a config field with a wrong value names the field', async () => {
    const dir = copyOf();
    editConfig(dir, (c) => {
      c.vision_config.num_attention_heads = 5;
    });
    const e = await failure(load(dir));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toContain('vision_config.num_attention_heads');
  });

  it('a missing weight (renamed in the header) names the weight and the checkpoint', async () => {
    const name = 'language_model.model.decoder.layers.1.fc1.weight';
    for (const renamed of [
      name,
      'qformer.layernorm.weight',
      'vision_model.encoder.layers.1.mlp.fc1.weight',
    ]) {
      const dir = copyOf();
      editWeights(dir, (t) => {
        t[`${renamed}_renamed`] = t[renamed];
        delete t[renamed];
      });
      const e = await failure(load(dir));
      expect(e).toBeInstanceOf(Blip2Error);
      expect(e.code).toBe('E_MISSING_WEIGHT');
      expect(e.message).toContain(`'${renamed}'`);
      expect(e.message).toContain(dir);
    }
    const t5 = copyOf(fixtures.tinyT5);
    const t5Weight = 'language_model.encoder.block.1.layer.1.DenseReluDense.wo.weight';
    editWeights(t5, (t) => {
      delete t[t5Weight];
    });
    const e = await failure(load(t5));
    expect(e).toMatchObject({ code: 'E_MISSING_WEIGHT' });
    expect(e.message).toContain(t5Weight);
  });

  it('a weight of the wrong shape names the shapes', async () => {
    const dir = copyOf();
    const name = 'language_model.model.decoder.layers.1.fc1.weight';
    editWeights(dir, (t) => {
      const w = t[name];
      t[name] = { ...w, shape: [w.shape[1], w.shape[0]] };
    });
    let e = await failure(load(dir));
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_WEIGHT_SHAPE');
    expect(e.message).toContain(name);
    expect(e.message).toContain('[24,37]');

    const vision = copyOf();
    editWeights(vision, (t) => {
      t['vision_model.post_layernorm.weight'] = { ...t['vision_model.post_layernorm.weight'], shape: [4, 8] };
    });
    e = await failure(load(vision));
    expect(e).toMatchObject({ code: 'E_WEIGHT_SHAPE' });
    expect(e.message).toContain('vision_model.post_layernorm.weight');
  });

  it('weights the model does not use are a warning that lists them, not an error', async () => {
    const dir = copyOf();
    editWeights(dir, (t) => {
      t['qformer.cls.predictions.bias'] = t['vision_model.post_layernorm.bias'];
      t['text_decoder.extra.weight'] = t['vision_model.post_layernorm.weight'];
    });
    const warnings: string[] = [];
    const model = await load(dir, { onWarning: (m: string) => warnings.push(m) });
    try {
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('2 weight(s)');
      expect(warnings[0]).toContain('qformer.cls.predictions.bias');
      expect(warnings[0]).toContain('text_decoder.extra.weight');
      expect(await model.caption(IMAGE, { maxNewTokens: 3 })).toBeTypeOf('string');
    } finally {
      await model.dispose();
    }
    // the intact checkpoint uses every weight it has: no warning at all
    const clean: string[] = [];
    const intact = await load(fixtures.tinyOpt, { onWarning: (m: string) => clean.push(m) });
    await intact.dispose();
    expect(clean).toEqual([]);
  });

  it('a corrupted safetensors header', async () => {
    let dir = copyOf();
    const file = join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    bytes[12] = 0x01; // a control character inside the header's first key
    writeFileSync(file, bytes);
    let e = await failure(load(dir));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.code).toBe('E_HEADER_JSON');
    expect(e.message).toContain(file);

    dir = copyOf();
    writeFileSync(
      join(dir, 'model.safetensors'),
      readFileSync(join(fixtures.tinyOpt, 'model.safetensors')).subarray(0, 1000),
    );
    e = await failure(load(dir));
    expect(e).toMatchObject({ code: 'E_HEADER_LENGTH' });
    expect(e.message).toContain('1000 bytes');
  });

  it('a weight dtype outside the supported ones, and the dtype option', async () => {
    const dir = copyOf();
    const file = join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    // same byte length: 32 x F32 = 16 x F64
    header['vision_model.post_layernorm.weight'].dtype = 'F64';
    header['vision_model.post_layernorm.weight'].shape = [16];
    const json = Buffer.from(JSON.stringify(header).padEnd(n, ' '));
    expect(json.length).toBe(n);
    writeFileSync(file, Buffer.concat([bytes.subarray(0, 8), json, bytes.subarray(8 + n)]));
    let e = await failure(load(dir));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.code).toBe('E_DTYPE');
    expect(e.message).toContain('"F64"');
    expect(e.message).toContain('vision_model.post_layernorm.weight');

    e = await failure(load(fixtures.tinyOpt, { dtype: 'float16' }));
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_DTYPE');
    expect(e.message).toContain("'float16'");
  });
});

describe('bad inputs to a loaded model', () => {
  let model: Blip2ForConditionalGeneration;
  let tmp: string;
  beforeAll(async () => {
    model = await load(fixtures.tinyOpt);
    tmp = mkdtempSync(join(tmpdir(), 'blip2-inputs-'));
  });
  afterAll(() => model?.dispose());

  it('an image that cannot be read or decoded', async () => {
    let e = await failure(model.caption(join(tmp, 'missing.png')));
    expect(e).toBeInstanceOf(ProcessorError);
    expect(e.code).toBe('E_IMAGE_FILE');
    expect(e.message).toContain(join(tmp, 'missing.png'));

    writeFileSync(join(tmp, 'text.png'), 'this is not an image');
    e = await failure(model.caption(join(tmp, 'text.png')));
    expect(e).toBeInstanceOf(ProcessorError);
    expect(e.code).toBe('E_IMAGE_FORMAT');
    expect(e.message).toContain(join(tmp, 'text.png'));

    writeFileSync(
      join(tmp, 'cut.jpg'),
      readFileSync(join(fixtures.images, 'coco_500x375.jpg')).subarray(0, 300),
    );
    e = await failure(model.caption(join(tmp, 'cut.jpg')));
    expect(e).toBeInstanceOf(ProcessorError);
    expect(e.code).toBe('E_IMAGE_DECODE');
    expect(e.message).toContain('cut.jpg');

    e = await failure(model.caption(42 as never));
    expect(e).toMatchObject({ code: 'E_IMAGE_INPUT' });
    expect(e.message).toContain('42');
  });

  it('a prompt longer than the position table', async () => {
    const max = (model.config.textConfig as OPTConfig).maxPositionEmbeddings;
    expect(max).toBe(128);
    const e = await failure(model.ask(IMAGE, 'word '.repeat(200)));
    expect(e).toBeInstanceOf(GenerationError);
    expect(e.code).toBe('E_PROMPT_TOO_LONG');
    expect(e.message).toContain(String(max));
    // one that fits is fine
    expect(await model.ask(IMAGE, 'word '.repeat(10), { maxNewTokens: 2 })).toBeTypeOf('string');
  });

  it('invalid generation options name the option and the value', async () => {
    const cases: [object, string, string][] = [
      [{ numBeams: 0 }, 'E_NUM_BEAMS', 'numBeams'],
      [{ numBeams: 2.5 }, 'E_NUM_BEAMS', '2.5'],
      [{ maxNewTokens: -1 }, 'E_MAX_NEW_TOKENS', 'maxNewTokens'],
      [{ topP: 2 }, 'E_TOP_P', 'topP'],
      [{ doSample: true, temperature: 0 }, 'E_TEMPERATURE', 'temperature'],
      [{ numBeams: 2, numReturnSequences: 3 }, 'E_NUM_RETURN_SEQUENCES', 'numReturnSequences'],
      [{ eosTokenId: 5000 }, 'E_TOKEN_ID', '5000'],
      [{ repetitionPenalty: -1 }, 'E_OPTION', 'repetitionPenalty'],
    ];
    for (const [options, code, named] of cases) {
      const e = await failure(model.caption(IMAGE, options));
      expect(e, JSON.stringify(options)).toBeInstanceOf(GenerationError);
      expect(e.code, JSON.stringify(options)).toBe(code);
      expect(e.message, JSON.stringify(options)).toContain(named);
    }
  });

  it('mismatched batches and tensors of the wrong shape', async () => {
    let e = await failure(model.ask([IMAGE, IMAGE], ['one question']));
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toContain('2 images but 1 questions');

    const { float32 } = await import('@blip2/tensor');
    e = await failure(model.getImageFeatures(float32([1, 3, 16, 16])));
    expect(e).toMatchObject({ code: 'E_INPUT' });
    expect(e.message).toContain('[1, 3, 16, 16]');

    e = await failure(model.ask(IMAGE, 42 as never));
    expect(e).toMatchObject({ code: 'E_INPUT' });
  });
});
