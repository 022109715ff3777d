/**
 * Weight formats end to end: every fixture model replayed per dtype against the
 * transformers reference (max |logit diff|, generation records that keep every token),
 * `blip2 export` folders loading from a folder, a URL and the hub layout, and the typed
 * refusals (unknown dtype, a dtype the backend cannot run, a corrupted packed tensor,
 * an export without its metadata, an out folder that is not empty or is the source).
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { fixtures } from '@blip2/fixtures';
import { openWeightsFromDir, writeSafetensorsFile } from '@blip2/safetensors/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import {
  Blip2Error,
  Blip2ForConditionalGeneration,
  exportModel,
  type ParityReport,
  runParity,
} from '../src/index.js';
import { serveModel, type TestServer } from './http-server.js';
import { ids, loadReference, maxDiff, type Reference } from './models-reference.js';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));
const cacheDir = tmp('blip2-dtypes-cache-');

/**
 * Measured on this machine (onnxruntime-node 1.30, CPU), docs/benchmarks.md: the largest
 * |logit - reference| each dtype may show and the generation records (of 17) that must
 * keep every token. fp32 is the parity tolerance; the others allow ~1.5x the measurement.
 */
const EXPECTED = {
  'tiny-blip2-opt': {
    fp32: { logits: 1e-4, kept: 17 },
    fp16: { logits: 3e-3, kept: 17 },
    q8: { logits: 6e-2, kept: 15 },
    q4: { logits: 0.35, kept: 10 },
    q4f16: { logits: 0.35, kept: 9 },
  },
  'tiny-blip2-t5': {
    fp32: { logits: 1e-4, kept: 17 },
    fp16: { logits: 4e-2, kept: 17 },
    q8: { logits: 1.6, kept: 14 },
    q4: { logits: 10, kept: 2 },
    q4f16: { logits: 10, kept: 2 },
  },
} as const;

const logitDiff = (r: ParityReport) =>
  Math.max(...r.tensors.filter((t) => t.name === 'logits').map((t) => t.maxAbsDiff));

describe.each([
  ['tiny-blip2-opt', fixtures.tinyOpt],
  ['tiny-blip2-t5', fixtures.tinyT5],
] as const)('%s per dtype against the reference', (name, dir) => {
  let fp32Logits = 0;
  it.each(['fp32', 'fp16', 'q8', 'q4', 'q4f16'] as const)('%s', async (dtype) => {
    const report = await runParity(dir, { dtype, cacheDir, onWarning: () => {} } as never);
    const diff = logitDiff(report);
    const kept = report.generate.filter((g) => g.match).length;
    console.log(
      `${name} ${dtype}: max |logit diff| ${diff.toExponential(2)}, ${kept}/${report.generate.length} generations keep every token`,
    );
    expect(report.generate).toHaveLength(17);
    expect(diff).toBeLessThanOrEqual(EXPECTED[name][dtype].logits);
    expect(kept).toBeGreaterThanOrEqual(EXPECTED[name][dtype].kept);
    if (dtype === 'fp32') fp32Logits = diff;
    // the dtype really changed the weights: its logits moved beyond float32's summation noise
    else expect(diff).toBeGreaterThan(10 * fp32Logits);
  });
});

describe('blip2 export', () => {
  let ref: Reference;
  let out: string;
  let server: TestServer;
  beforeAll(async () => {
    ref = await loadReference(fixtures.tinyOpt);
    out = join(tmp('blip2-export-'), 'tiny-q4');
    const r = await exportModel(fixtures.tinyOpt, out, { dtype: { language_model: 'q4', vision: 'q8' } });
    expect(r.files).toEqual(
      expect.arrayContaining([
        'config.json',
        'tokenizer.json',
        'preprocessor_config.json',
        'model.safetensors',
        'quantization.json',
      ]),
    );
    server = await serveModel(out);
  });
  afterAll(async () => {
    await server?.close();
    await ref.close();
  });

  /** greedy tokens of case0, which a q4 language model and a q8 vision model still keep */
  async function greedy(model: Blip2ForConditionalGeneration): Promise<number[][]> {
    const c = ref.cases[0];
    const outIds = await model.generate(
      { pixelValues: await ref.tensor('case0/pixel_values'), inputIds: ids([c.input_ids]) },
      { maxNewTokens: 12, doSample: false },
    );
    return outIds.sequences;
  }

  it('writes what was packed how, and loads from a folder, a URL and the hub layout with the same tokens as quantizing at load', async () => {
    const manifest = JSON.parse(readFileSync(join(out, 'quantization.json'), 'utf8'));
    expect(manifest.dtype).toEqual({ vision: 'q8', qformer: 'fp32', language_model: 'q4' });
    const packed = Object.entries(manifest.weights) as [string, { format: string }][];
    expect(packed.some(([n, e]) => n.startsWith('language_model.') && e.format === 'q4')).toBe(true);
    expect(packed.some(([n, e]) => n.startsWith('vision_model.') && e.format === 'q8')).toBe(true);
    expect(packed.some(([n]) => n.startsWith('qformer.'))).toBe(false);
    // OPT's tied embedding is gathered as well as multiplied: it stays float
    expect(manifest.weights['language_model.model.decoder.embed_tokens.weight']).toBeUndefined();

    const atLoad = await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, {
      dtype: { language_model: 'q4', vision: 'q8' },
      cacheDir,
      onWarning: () => {},
    });
    const expected = await greedy(atLoad);
    await atLoad.dispose();
    for (const source of [out, `${server.url}/plain/`, 'org/tiny']) {
      const model = await Blip2ForConditionalGeneration.fromPretrained(source, {
        cacheDir: tmp('blip2-export-src-'),
        endpoint: server.url,
        onWarning: () => {},
      });
      try {
        expect(await greedy(model)).toEqual(expected);
      } finally {
        await model.dispose();
      }
    }
  });

  it('refuses a non-empty out folder, the source folder, an export as source, and another dtype for an export', async () => {
    const code = async (p: Promise<unknown>) => {
      const e = await p.then(
        () => undefined,
        (x) => x,
      );
      expect(e).toBeInstanceOf(Blip2Error);
      return e as Blip2Error;
    };
    let e = await code(exportModel(fixtures.tinyOpt, out, { dtype: 'q4' }));
    expect(e.message).toMatch(/is not empty/);
    const copy = tmp('blip2-export-self-');
    cpSync(fixtures.tinyOpt, copy, { recursive: true });
    e = await code(exportModel(copy, join(copy, 'sub'), { dtype: 'q4' }));
    expect(e.message).toMatch(/inside it/);
    e = await code(exportModel(out, join(tmp('blip2-export-again-'), 'x'), { dtype: 'q4' }));
    expect(e.message).toMatch(/already an export/);
    e = await code(Blip2ForConditionalGeneration.fromPretrained(out, { dtype: 'fp16' }));
    expect(e.code).toBe('E_DTYPE');
    expect(e.message).toContain('language_model=q4');
    expect(e.message).toContain('language_model=fp16');
  });

  it('an export without quantization.json, and one with a corrupted scale tensor, are E_PACKED_WEIGHT naming the file or tensor', async () => {
    const noMeta = tmp('blip2-export-nometa-');
    cpSync(out, noMeta, { recursive: true });
    rmSync(join(noMeta, 'quantization.json'));
    let e = (await Blip2ForConditionalGeneration.fromPretrained(noMeta).catch((x) => x)) as Blip2Error;
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_PACKED_WEIGHT');
    expect(e.message).toContain('quantization.json');

    // a header whose scale tensor is laid out as one row: same bytes, wrong shape
    const bad = tmp('blip2-export-corrupt-');
    cpSync(out, bad, { recursive: true });
    const file = join(bad, 'model.safetensors');
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    const scale = Object.keys(header).find((k) => k.endsWith('fc1.weight.q4_scales')) as string;
    header[scale].shape = [1, header[scale].shape[0] * header[scale].shape[1]];
    writeFileSync(
      file,
      Buffer.concat([
        bytes.subarray(0, 8),
        Buffer.from(JSON.stringify(header).padEnd(n, ' ')),
        bytes.subarray(8 + n),
      ]),
    );
    e = (await Blip2ForConditionalGeneration.fromPretrained(bad).catch((x) => x)) as Blip2Error;
    expect(e).toBeInstanceOf(Blip2Error);
    expect(e.code).toBe('E_PACKED_WEIGHT');
    expect(e.message).toContain(scale);
    expect(e.message).toContain(bad);
  });

  it('an unknown dtype, and a dtype whose op the backend says it lacks, are E_DTYPE naming both', async () => {
    let e = (await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, {
      dtype: 'int3' as never,
    }).catch((x) => x)) as Blip2Error;
    expect(e.code).toBe('E_DTYPE');
    expect(e.message).toContain("'int3'");
    expect(e.message).toContain('fp32, fp16, q8, q4, q4f16');
    e = (await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, {
      dtype: { text: 'q4' } as never,
    }).catch((x) => x)) as Blip2Error;
    expect(e.message).toContain("module 'text'");
    const node = await createNodeBackend();
    const limited = Object.assign(Object.create(node), {
      capabilities: { ...node.capabilities, MatMulNBits: false },
    });
    e = (await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, {
      dtype: 'q4',
      backend: limited,
    }).catch((x) => x)) as Blip2Error;
    expect(e.code).toBe('E_DTYPE');
    expect(e.message).toContain("'q4'");
    expect(e.message).toContain('MatMulNBits');
    expect(e.message).toContain(node.name);
  });

  it('q4 blocks: 128 at load where the backend runs them fastest, 32 in exports unless asked; a backend that cannot multiply 128 refuses such a folder', async () => {
    const blocks = (dir: string) => {
      const m = JSON.parse(readFileSync(join(dir, 'quantization.json'), 'utf8'));
      return new Set(
        Object.values(m.weights as Record<string, { block_size?: number }>).map((e) => e.block_size),
      );
    };
    const node = await createNodeBackend();
    const only32 = Object.assign(Object.create(node), {
      name: 'node:cpu-32',
      capabilities: { ...node.capabilities, q4BlockSizes: [32] },
    });
    // the shapes model's widths are 96 (blocks of 32) and 128 / 256 (blocks of 128 where preferred)
    const e128 = join(tmp('blip2-q4-block-'), 'b128');
    const e32 = join(tmp('blip2-q4-block-'), 'b32');
    await exportModel(fixtures.shapesOpt, e128, { dtype: 'q4', q4Block: 128 });
    await exportModel(fixtures.shapesOpt, e32, { dtype: 'q4' });
    expect(blocks(e128)).toEqual(new Set([32, 128]));
    expect(blocks(e32)).toEqual(new Set([32]));
    const e = (await Blip2ForConditionalGeneration.fromPretrained(e128, { backend: only32 }).catch(
      (x) => x,
    )) as Blip2Error;
    expect(e.code).toBe('E_DTYPE');
    expect(e.message).toMatch(
      /q4 weight '.+' is packed in blocks of 128; backend 'node:cpu-32' multiplies blocks of 32/,
    );
    expect(e.message).toContain('--q4-block 32');
    await (await Blip2ForConditionalGeneration.fromPretrained(e32, { backend: only32 })).dispose();
    // quantized at load: each backend's own first block (the cache keeps one folder per packing)
    const cache = tmp('blip2-q4-block-cache-');
    const folders = () => (existsSync(join(cache, 'quantized')) ? readdirSync(join(cache, 'quantized')) : []);
    for (const [backend, expected] of [
      [node, [32, 128]],
      [only32, [32]],
    ] as const) {
      const before = folders();
      const m = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesOpt, {
        dtype: 'q4',
        backend,
        cacheDir: cache,
      });
      await m.dispose();
      const added = folders().filter((d) => !before.includes(d));
      expect(added).toHaveLength(1);
      expect(blocks(join(cache, 'quantized', added[0]))).toEqual(new Set(expected));
    }
    await expect(
      exportModel(fixtures.shapesOpt, join(tmp('x-'), 'y'), { dtype: 'q4', q4Block: 64 as never }),
    ).rejects.toMatchObject({
      code: 'E_OPTION',
    });
  });

  it("q8 where the backend lacks DynamicQuantizeMatMul: DequantizeLinear + MatMul (PACKED_OPS), within the export's bound of the reference", async () => {
    const node = await createNodeBackend();
    const lacking = Object.assign(Object.create(node), {
      capabilities: { ...node.capabilities, DynamicQuantizeMatMul: false },
    });
    const model = await Blip2ForConditionalGeneration.fromPretrained(out, { backend: lacking });
    try {
      // the q8 vision model's graph holds the other form, and none of the contrib op
      const vision = Buffer.from(model.graphs.get('vision')?.bytes ?? []);
      expect(vision.includes('DequantizeLinear')).toBe(true);
      expect(vision.includes('DynamicQuantizeMatMul')).toBe(false);
      const c = ref.cases[0];
      const { logits } = await model.forward({
        pixelValues: await ref.tensor('case0/pixel_values'),
        inputIds: ids([c.input_ids]),
      });
      const diff = maxDiff(logits, await ref.tensor('case0/logits'));
      // the export's language model is q4: its bound is the looser one
      expect(diff).toBeLessThanOrEqual(EXPECTED['tiny-blip2-opt'].q4.logits);
      expect(diff).toBeGreaterThan(1e-4);
    } finally {
      await model.dispose();
    }
  });

  it('the CLI: export, then caption the export; a bad --dtype is a usage error', async () => {
    const lines: string[] = [];
    const io = {
      stdout: { write: (s: string) => lines.push(s) },
      stderr: { write: (s: string) => lines.push(s) },
    } as never;
    const dir = join(tmp('blip2-export-cli-'), 'q4');
    expect(
      await main(['export', '--model', fixtures.tinyOpt, '--out', dir, '--dtype', 'q4', '--json'], io),
    ).toBe(0);
    const result = JSON.parse(lines.join('').trim());
    expect(result.bytes).toBeLessThan(result.sourceBytes);
    expect(readdirSync(dir)).toContain('quantization.json');
    expect(await main(['export', '--model', fixtures.tinyOpt, '--out', dir, '--dtype', 'q5'], io)).toBe(2);
    expect(lines.join('')).toContain("'q5' is not a dtype");
  });
});

describe('the default dtype of a half-precision checkpoint', () => {
  it('is q8 on the CPU when no dtype is asked (docs/backends.md), as asked otherwise; a float32 checkpoint stays fp32', async () => {
    // the tiny OPT fixture stored in float16, as the published half checkpoints store every weight
    const dir = tmp('blip2-half-');
    cpSync(fixtures.tinyOpt, dir, { recursive: true });
    const source = await openWeightsFromDir(fixtures.tinyOpt);
    const floats = new Map<string, Float32Array>();
    for (const name of source.tensors.keys()) floats.set(name, await source.readFloat32(name));
    const shapes = [...source.tensors].map(([name, info]) => [name, info.shape] as const);
    await source.close();
    await writeSafetensorsFile(
      join(dir, 'model.safetensors'),
      shapes.map(([name, shape]) => ({
        name,
        dtype: 'F16' as const,
        shape,
        fill: (values: Float32Array, start: number) =>
          values.set(floats.get(name)?.subarray(start, start + values.length) ?? []),
      })),
    );
    const warnings: string[] = [];
    const load = (source: string, dtype?: 'fp32') =>
      Blip2ForConditionalGeneration.fromPretrained(source, {
        cacheDir,
        onWarning: (m) => warnings.push(m),
        ...(dtype ? { dtype } : {}),
      });
    try {
      const half = await load(dir);
      expect(half.dtypes).toEqual({ vision: 'q8', qformer: 'q8', language_model: 'q8' });
      // said once, with the way back
      expect(warnings.filter((w) => w.includes('half-precision'))).toEqual([
        expect.stringContaining(
          "loading them as q8, quantized once into the cache (dtype: 'fp32' keeps them exact)",
        ),
      ]);
      // the sessions map the q8 copy quantized into the cache
      expect(half.weightFiles[0].uri).toContain(join(cacheDir, 'quantized'));
      await half.dispose();
      const asked = await load(dir, 'fp32');
      expect(asked.dtypes).toEqual({ vision: 'fp32', qformer: 'fp32', language_model: 'fp32' });
      await asked.dispose();
      // the choice is the backend's declared capability, not its name: one without fast int8
      // products (a GPU provider) keeps the half checkpoint's float path
      const cpu = createNodeBackend({});
      const noInt8 = await Blip2ForConditionalGeneration.fromPretrained(dir, {
        cacheDir,
        onWarning: () => {},
        backend: {
          name: cpu.name,
          capabilities: { ...cpu.capabilities, fastInt8Linears: false },
          load: (graph, options) => cpu.load(graph, options),
        },
      });
      expect(noInt8.dtypes).toEqual({ vision: 'fp32', qformer: 'fp32', language_model: 'fp32' });
      await noInt8.dispose();
      const float = await load(fixtures.tinyOpt);
      expect(float.dtypes).toEqual({ vision: 'fp32', qformer: 'fp32', language_model: 'fp32' });
      await float.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
