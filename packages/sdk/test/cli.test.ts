/**
 * The `blip2` command as users run it: the CLI is bundled from src/cli.ts (as tsup's
 * config does for dist/cli.js) into a private folder inside the package, so node
 * resolves its @blip2/* imports as an installed package would, then every command
 * runs as a child process.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtures } from '@blip2/fixtures';
import { serializeSafetensors, type TensorBytes } from '@blip2/safetensors';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { build } from 'tsup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2ForConditionalGeneration } from '../src/index.js';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const image = join(fixtures.shapesVal, 'images', 'COCO_val2014_000000000001.jpg');
const temps: string[] = [];
let cli: string;

beforeAll(async () => {
  const cache = join(pkg, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  const outDir = await mkdtemp(join(cache, 'blip2-cli-test-'));
  temps.push(outDir);
  await build({
    config: false,
    entry: { cli: join(pkg, 'src', 'cli.ts') },
    format: ['esm'],
    target: 'es2022',
    outDir,
    banner: { js: '#!/usr/bin/env node' },
    silent: true,
  });
  cli = join(outDir, 'cli.js');
});

afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function blip2(...args: string[]): Promise<Run> {
  return blip2In(pkg, ...args);
}

function blip2In(cwd: string, ...args: string[]): Promise<Run> {
  return run(cwd, undefined, args);
}

function blip2WithInput(input: string, ...args: string[]): Promise<Run> {
  return run(pkg, input, args);
}

function run(cwd: string, input: string | undefined, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd });
    child.stdin.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'blip2-cli-'));
  temps.push(dir);
  return dir;
}

describe('blip2 caption / ask --json', () => {
  it('caption prints the text, tokens and timings the SDK API gives', async () => {
    const r = await blip2('caption', '--model', fixtures.shapesOpt, '--image', image, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    const model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesOpt);
    try {
      expect(out.text).toBe(await model.caption(image));
      const { pixelValues } = await model.processor.process({ images: [image] });
      expect(out.tokens).toEqual((await model.generate({ pixelValues: pixelValues as never })).sequences[0]);
    } finally {
      await model.dispose();
    }
    for (const k of ['load', 'preprocess', 'generate', 'total']) expect(out.timings[k]).toBeGreaterThan(0);
  });

  it.each([
    ['shapes-blip2-opt', fixtures.shapesOpt],
    ['shapes-blip2-t5', fixtures.shapesT5],
  ])('ask on %s answers as model.ask, with the default and with overridden decoding', async (_n, dir) => {
    const question = 'What color is the circle?';
    const r = await blip2('ask', '--model', dir, '--image', image, '--question', question, '--json');
    expect(r.code).toBe(0);
    const greedy = await blip2(
      ...['ask', '--model', dir, '--image', image, '--question', question, '--json'],
      ...['--num-beams', '1', '--max-new-tokens', '2', '--repetition-penalty', '1.5'],
    );
    expect(greedy.code).toBe(0);
    const model = await Blip2ForConditionalGeneration.fromPretrained(dir);
    try {
      const answer = await model.ask(image, question);
      expect(answer.length).toBeGreaterThan(0);
      expect(JSON.parse(r.stdout).text).toBe(answer);
      expect(JSON.parse(greedy.stdout).text).toBe(
        await model.ask(image, question, { numBeams: 1, maxNewTokens: 2, repetitionPenalty: 1.5 }),
      );
    } finally {
      await model.dispose();
    }
    console.log(
      `${_n}: '${question}' -> ${JSON.parse(r.stdout).text} (${JSON.stringify(JSON.parse(r.stdout).timings)})`,
    );
  });

  it("a VQA-only model's caption comes with a note; an empty one prints no blank line", async () => {
    const seven = join(fixtures.shapesVal, 'images', 'COCO_val2014_000000000007.jpg');
    const r = await blip2('caption', '--model', fixtures.shapesOpt, '--image', seven);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('is a VQA-only model: its captions are meaningless');
    expect(r.stderr).toContain('the model generated no text (token ids [2]: only special tokens)');
    const json = JSON.parse(
      (await blip2('caption', '--model', fixtures.shapesOpt, '--image', seven, '--json')).stdout,
    );
    expect(json.text).toBe('');
    expect(json.warnings).toHaveLength(2);
    const captioner = await blip2('caption', '--model', fixtures.shapesCaptioner, '--image', seven);
    expect(captioner.stderr).toBe('');
    expect(captioner.stdout).toBe('a red circle, a green triangle and a blue square\n');
  });

  it('several images and questions: one line per pair, each as the SDK answers it alone', async () => {
    const second = join(fixtures.shapesVal, 'images', 'COCO_val2014_000000000002.jpg');
    const questions = ['What color is the circle?', 'How many shapes are there?'];
    const r = await blip2(
      ...['ask', '--model', fixtures.shapesOpt, '--image', image, '--image', second],
      ...questions.flatMap((q) => ['--question', q]),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const c = await blip2('caption', '--model', fixtures.shapesOpt, '--max-new-tokens', '3', image, second);
    expect(c.code).toBe(0);
    const model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesOpt);
    try {
      const expected: string[] = [];
      for (const img of [image, second])
        for (const q of questions) expected.push(`${img}\t${q}\t${await model.ask(img, q)}`);
      expect(r.stdout).toBe(`${expected.join('\n')}\n`);
      const captions: string[] = await model.caption([image, second], { maxNewTokens: 3 });
      expect(c.stdout).toBe(`${image}\t${captions[0]}\n${second}\t${captions[1]}\n`);
    } finally {
      await model.dispose();
    }
  });

  it('sampling flags: the same seed gives the text model.caption samples with those options', async () => {
    const flags = ['--do-sample', '--seed', '7', '--top-k', '20', '--top-p', '0.9', '--temperature', '1.3'];
    const a = await blip2('caption', '--model', fixtures.shapesT5, '--image', image, '--json', ...flags);
    expect(a.code).toBe(0);
    const b = await blip2('caption', '--model', fixtures.shapesT5, '--image', image, '--json', ...flags);
    expect(JSON.parse(b.stdout).tokens).toEqual(JSON.parse(a.stdout).tokens);
    const model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.shapesT5);
    try {
      const options = { doSample: true, seed: 7, topK: 20, topP: 0.9, temperature: 1.3 };
      expect(JSON.parse(a.stdout).text).toBe(await model.caption(image, options));
      // and sampling changes something: another seed, other tokens
      const texts = new Set<string>();
      for (const seed of [1, 2, 3, 4]) texts.add(await model.caption(image, { ...options, seed }));
      expect(texts.size).toBeGreaterThan(1);
    } finally {
      await model.dispose();
    }
  });

  it('prints the plain answer without --json, and runs on the web backend', async () => {
    const r = await blip2(
      ...['ask', '--model', fixtures.shapesT5, '--image', image],
      ...['--question', 'Is there a blue triangle?', '--backend', 'web'],
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('yes\n');
  });
});

describe('blip2 parity', () => {
  it.each([
    ['tiny-blip2-opt', fixtures.tinyOpt],
    ['tiny-blip2-t5', fixtures.tinyT5],
    ['tokenizers/opt', fixtures.tokenizersOpt],
    ['tokenizers/t5', fixtures.tokenizersT5],
    ['images', fixtures.images],
  ])('%s passes: exit 0, report ok', async (_n, dir) => {
    const r = await blip2('parity', dir, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(report.tensors.every((t: { maxAbsDiff: number }) => t.maxAbsDiff <= 1e-4)).toBe(true);
    expect(report.generate.every((g: { match: boolean }) => g.match)).toBe(true);
  });

  it('prints a table of tensors and generations and PASS', async () => {
    const r = await blip2('parity', fixtures.tinyOpt, '--backend', 'web');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('backend web:wasm');
    expect(r.stdout).toMatch(/ok {3}case0\/logits +max\|diff\| +\d\.\d\de-\d+/);
    expect(r.stdout).toContain('generate case2/beam5_lavis');
    expect(r.stdout).toMatch(/^PASS: 18 tensors, 17 generations, 3 exact values/m);
  });

  it('exits 1 on a copy whose reference tensor was perturbed by 1e-3, naming it', async () => {
    const tmp = await tempDir();
    await cp(fixtures.tinyT5, join(tmp, 'tiny-blip2-t5'), { recursive: true });
    await cp(fixtures.images, join(tmp, 'images'), { recursive: true });
    const path = join(tmp, 'tiny-blip2-t5', 'reference.safetensors');
    const buf = await readFile(path);
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    const offset = 8 + n + header['case2/t5_encoder_last_hidden_state'].data_offsets[0] + 4 * 10;
    buf.writeFloatLE(buf.readFloatLE(offset) + 1e-3, offset);
    await writeFile(path, buf);

    const r = await blip2('parity', join(tmp, 'tiny-blip2-t5'), '--json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(false);
    const bad = report.tensors.filter((t: { ok: boolean }) => !t.ok);
    expect(bad.map((t: { case: string; name: string }) => `${t.case}/${t.name}`)).toEqual([
      'case2/t5_encoder_last_hidden_state',
    ]);
    expect(report.maxAbsDiff).toBeGreaterThan(9e-4);
    const text = await blip2('parity', join(tmp, 'tiny-blip2-t5'));
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/FAIL case2\/t5_encoder_last_hidden_state/);
    expect(text.stdout).toMatch(/^FAIL: /m);
  });

  it('exits 1 with a typed message for a folder that is no fixture', async () => {
    const r = await blip2('parity', fixtures.shapesOpt);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `blip2: ${fixtures.shapesOpt} is not a fixture folder: it has neither reference.json + reference.safetensors (model), cases.json + tokenizer.json (tokenizer) nor pixel_values.safetensors (images)\n`,
    );
  });
});

describe('errors and usage', () => {
  it('a missing model folder: `blip2: <message>`, no stack, exit 1; --verbose adds the stack', async () => {
    const missing = join(await tempDir(), 'no-such-model');
    const r = await blip2('caption', '--model', missing, '--image', image);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith('blip2: ')).toBe(true);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const v = await blip2('caption', '--model', missing, '--image', image, '--verbose');
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/\n\s+at /);
    expect(v.stderr).toContain('[E_SOURCE]');
  });

  it('--question-file and --prompt-file (or - for standard input) give what --question and --prompt give', async () => {
    const dir = await tempDir();
    const questions = join(dir, 'questions.txt');
    await writeFile(questions, 'What color is the circle?\r\n\nHow many shapes are there?\n');
    const fromFlags = await blip2(
      ...['ask', '--model', fixtures.shapesOpt, '--image', image],
      ...['--question', 'What color is the circle?', '--question', 'How many shapes are there?'],
    );
    expect(fromFlags.code).toBe(0);
    const fromFile = await blip2(
      'ask',
      '--model',
      fixtures.shapesOpt,
      '--image',
      image,
      '--question-file',
      questions,
    );
    expect(fromFile.stderr).toBe('');
    expect(fromFile.stdout).toBe(fromFlags.stdout);

    const prompt = join(dir, 'prompt.txt');
    await writeFile(prompt, 'a red\n');
    const caption = [
      'caption',
      '--model',
      fixtures.shapesCaptioner,
      '--image',
      image,
      '--max-new-tokens',
      '4',
    ];
    const fromPrompt = await blip2(...caption, '--prompt', 'a red');
    expect(fromPrompt.code).toBe(0);
    expect((await blip2(...caption, '--prompt-file', prompt)).stdout).toBe(fromPrompt.stdout);
    const fromStdin = await blip2WithInput('a red\n', ...caption, '--prompt-file', '-');
    expect(fromStdin.stderr).toBe('');
    expect(fromStdin.stdout).toBe(fromPrompt.stdout);

    const missing = await blip2(...caption, '--prompt-file', join(dir, 'nope.txt'));
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')[0]).toMatch(/--prompt-file .*nope\.txt: no such file/);
    const folder = await blip2(...caption, '--prompt-file', dir);
    expect(folder.code).toBe(2);
    expect(folder.stderr.split('\n')[0]).toMatch(/not a regular file/);
  });

  it('a 40 KB command line (onnxruntime-node 1.30 crashes from ~30 KB of argv) runs, in a re-executed child', async () => {
    const question = 'what is it? '.repeat(3500);
    const r = await blip2('ask', '--model', fixtures.shapesOpt, '--image', image, '--question', question);
    // no segfault (exit 139 with no message): the child loaded the model and refused the prompt by name
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^blip2: .*(prompt|question).*(long|positions)/i);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a missing image names the file', async () => {
    const r = await blip2('ask', '--model', fixtures.shapesOpt, '--image', 'nope.png', '--question', 'why?');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^blip2: .*nope\.png/);
  });

  it.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [[], /^usage: blip2 <command>/],
    [
      ['caption', '--model', 'm', '--image', 'i', '--beams', '3'],
      /unknown option '--beams' \(did you mean '--num-beams'\?\)/,
    ],
    [['captoin', '--model', 'm'], /unknown command 'captoin' \(did you mean 'caption'\?\)/],
    [['ask', '--model', 'm', '--image', 'i', '--questoin', 'q'], /did you mean '--question'\?/],
    // the model 'm' does not exist: exit 2 (not 1) shows the values are checked before loading
    [
      ['caption', '--model', 'm', '--image', 'i', '--num-beams', '0'],
      /--num-beams must be an integer >= 1, got 0/,
    ],
    [
      ['caption', '--model', 'm', '--image', 'i', '--max-new-tokens', '-3'],
      /--max-new-tokens must be an integer >= 0, got -3/,
    ],
    [['caption', '--model', 'm', '--image', 'i', '--top-p', '1.5'], /--top-p must be in \(0, 1\], got 1\.5/],
    [
      ['caption', '--model', 'm', '--image', 'i', '--do-sample', '--temperature', '0'],
      /--temperature must be > 0 when sampling, got 0/,
    ],
    [['caption', '--model', 'm', '--image', 'i', '--seed', '1.5'], /--seed must be an integer, got '1\.5'/],
    [['caption', '--model', 'm', '--image', 'i', '--prompt'], /--prompt needs a value/],
    [['caption', '--model', 'm', '--prompt', '--image', 'i'], /--prompt needs a value/],
    [['caption', '--model', 'm', '--image', 'i', '--json=yes'], /--json takes no value/],
    [['caption', '--model', 'm'], /--image is required/],
    [
      ['caption', '--model', 'm', '--image', 'i', '--device', 'gpu'],
      /--device for --backend node is one of cpu, cuda, tensorrt, dml, coreml, webgpu, got 'gpu'/,
    ],
    [['caption', '--model', 'm', '--image', 'i', '--backend', 'wbe'], /did you mean 'web'\?/],
    [['ask', '--model', 'm', '--image', 'i'], /--question is required/],
    [
      ['caption', '--model', 'm', '--image', 'i', '--num-beams', 'five'],
      /--num-beams must be an integer, got 'five'/,
    ],
    [
      ['caption', '--model', 'm', '--image', 'i', '--backend', 'gpu'],
      /--backend must be 'node' or 'web', got 'gpu'/,
    ],
    [['parity'], /give the fixture folder/],
  ])('usage error %j: exit 2 with the usage', async (args, message) => {
    const r = await blip2(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('usage: blip2');
  });

  it('usage errors are in our wording, never node:util parseArgs wording', async () => {
    const r = await blip2('caption', '--model', 'm', '--image', 'i', '--max-new-tokens', '-3');
    expect(r.stderr).not.toMatch(/ambiguous|ERR_PARSE_ARGS|To specify an option argument/);
    expect(r.stderr.split('\n')[0]).toBe('blip2 caption: --max-new-tokens must be an integer >= 0, got -3');
  });

  it('--help prints the usage on stdout', async () => {
    const r = await blip2('ask', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: blip2 ask --model M --image I --question Q/);
  });
});

describe('blip2 inspect', () => {
  it('summarizes the shapes checkpoint: config, 1.08M parameters, files, nothing missing or unused', async () => {
    const r = await blip2('inspect', '--model', fixtures.shapesOpt, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    const weights = await openWeightsFromDir(fixtures.shapesOpt);
    const count = [...weights.tensors.values()].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    await weights.close();
    expect(report.parameters).toBe(count);
    expect((report.parameters / 1e6).toFixed(2)).toBe('1.08'); // the fixture README's figure
    expect(report.dtypes).toEqual({ F32: count });
    expect(report.languageModel).toBe('opt');
    expect(report.config.numQueryTokens).toBe(8);
    expect(report.config.vision.imageSize).toBe(64);
    expect(report.files).toEqual([{ name: 'model.safetensors', bytes: expect.any(Number) }]);
    expect(report.missing).toEqual([]);
    expect(report.unexpected).toEqual([]);
    expect(report.uses).toEqual({
      activation: { value: 'relu', source: 'config.json text_config.activation_function' },
      eosTokenId: { value: 2, source: 'generation_config.json' },
      bosTokenId: { value: 2, source: 'generation_config.json' },
      padTokenId: { value: 1, source: 'generation_config.json' },
      imageSize: { value: [64, 64], source: 'preprocessor_config.json size' },
    });
    // the text names a folder inside the working directory relatively: no machine paths in pasted output
    const root = join(pkg, '..', '..');
    const here = await blip2In(root, 'inspect', '--model', fixtures.shapesT5);
    expect(here.stdout.split('\n')[0]).toBe(
      'tooling/fixtures/data/shapes-vqa/shapes-blip2-t5: BLIP-2 with T5',
    );
    const text = await blip2('inspect', '--model', fixtures.shapesT5);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      'uses\n  activation           gelu_new (gated)  (config.json text_config.dense_act_fn)\n',
    );
    expect(text.stdout).toContain(
      '  decoderStartTokenId  0  (config.json text_config.decoder_start_token_id)\n',
    );
    expect(text.stdout).toContain('BLIP-2 with T5');
    expect(text.stdout).toMatch(/parameters +1,3\d\d,\d\d\d/);
  });

  /** a copy of tiny-blip2-opt whose model.safetensors has `drop` removed and `extra` added */
  async function alteredCheckpoint(drop: string[], extra: string[]): Promise<string> {
    const dir = join(await tempDir(), 'model');
    await cp(fixtures.tinyOpt, dir, { recursive: true });
    const weights = await openWeightsFromDir(fixtures.tinyOpt);
    const tensors: Record<string, TensorBytes> = {};
    for (const [name, info] of weights.tensors) {
      if (drop.includes(name)) continue;
      const t = await weights.read(name);
      const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
      tensors[name] = { dtype: info.dtype, shape: info.shape, data };
    }
    await weights.close();
    for (const name of extra) tensors[name] = { dtype: 'F32', shape: [2], data: new Uint8Array(8) };
    await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
    return dir;
  }

  it('lists a weight no graph uses', async () => {
    const dir = await alteredCheckpoint([], ['qformer.text_only.weight']);
    const r = await blip2('inspect', '--model', dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/unexpected weights \(1, unused by the model\)\n {2}qformer\.text_only\.weight/);
  });

  it('names the part that misses a weight, and exits 1', async () => {
    const dir = await alteredCheckpoint(['language_projection.bias'], []);
    const r = await blip2('inspect', '--model', dir, '--json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.missing).toEqual([
      { part: 'qformer', problem: expect.stringContaining("no weight 'language_projection.bias'") },
    ]);
  });
});

describe('blip2 doctor', () => {
  it('reports Node, onnxruntime-node and -web, and the CPU and wasm providers as available', async () => {
    const r = await blip2('doctor');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Node.js ${process.version}`);
    expect(r.stdout).toMatch(/onnxruntime-node \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/onnxruntime-web \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/yes cpu/);
    expect(r.stdout).toMatch(/yes wasm/);
    expect(r.stdout).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12');
    const json = JSON.parse((await blip2('doctor', '--json')).stdout);
    expect(json.node.providers.find((p: { name: string }) => p.name === 'cpu').available).toBe(true);
    expect(json.web.providers.find((p: { name: string }) => p.name === 'wasm').available).toBe(true);
  });
});

describe('blip2 --device webgpu on onnxruntime-node', () => {
  it("fails as doctor said it would: our message at once, never Dawn's raw one", async () => {
    const report = JSON.parse((await blip2('doctor', '--json')).stdout);
    const webgpu = report.node.providers.find((p: { name: string }) => p.name === 'webgpu');
    const r = await blip2(
      'caption',
      '--model',
      fixtures.shapesCaptioner,
      '--image',
      image,
      '--device',
      'webgpu',
    );
    if (webgpu.available) {
      expect(r.code).toBe(0);
      return;
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`blip2: device 'webgpu' is unavailable: ${webgpu.problem}\n`);
    expect(r.stderr).not.toMatch(/webgpu_context\.cc|Couldn't load Vulkan/);
  });
});

describe('blip2 demo', () => {
  it('the captioner captions validation images 3 and 4 as their true captions and answers their questions', async () => {
    const r = await blip2('demo', '--json');
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout) as {
      model: string;
      vqaOnly: boolean;
      exactCaptions: { exact: number; total: number };
      images: {
        image: string;
        caption: string;
        trueCaption: string;
        questions: { question: string; answer: string; references?: string[] }[];
      }[];
    };
    expect(m.model).toBe(fixtures.shapesCaptioner);
    expect(m.vqaOnly).toBe(false);
    expect(m.images.map((i) => [i.caption, i.trueCaption])).toEqual([
      ['a yellow triangle', 'a yellow triangle'],
      ['a red triangle', 'a red triangle'],
    ]);
    // the greedy captions of captioner_reference.json that equal val/captions.json
    const reference = JSON.parse(
      await readFile(join(fixtures.shapesCaptioner, 'captioner_reference.json'), 'utf8'),
    ) as { captions_greedy: { image_id: number; caption: string }[] };
    const truth = new Map(
      (
        JSON.parse(await readFile(join(fixtures.shapesVal, 'captions.json'), 'utf8')) as {
          image_id: number;
          caption: string;
        }[]
      ).map((c) => [c.image_id, c.caption]),
    );
    const exact = reference.captions_greedy.filter((c) => truth.get(c.image_id) === c.caption).length;
    expect(m.exactCaptions).toEqual({ exact, total: 100 });
    const questions = m.images.flatMap((i) => i.questions);
    expect(questions.map((q) => q.answer)).toEqual(['yellow', '1', 'no', 'triangle']);
    for (const q of questions) expect(q.references).toHaveLength(10);

    const text = await blip2('demo');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('shapes-blip2-opt-captioner on node:cpu');
    expect(text.stdout).toContain('caption: a yellow triangle  (true: a yellow triangle)');
    expect(text.stdout).toContain(
      'Q: What color is the triangle?  A: yellow  (reference: yellow x10; 10/10 agree)',
    );
    expect(text.stdout).toContain(`captions exactly right on the 100 val images (greedy): ${exact}/100`);
  });

  it('a VQA-only model says its captions are meaningless and answers as transformers did', async () => {
    const r = await blip2('demo', '--model', fixtures.shapesT5, '--json');
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout) as {
      vqaOnly: boolean;
      images: { questions: { answer: string; transformers?: string }[] }[];
    };
    expect(m.vqaOnly).toBe(true);
    for (const q of m.images.flatMap((i) => i.questions)) expect(q.answer).toBe(q.transformers);
    const text = await blip2('demo', '--model', fixtures.shapesT5);
    expect(text.stdout).toContain('shapes-blip2-t5 on node:cpu (loaded in');
    expect(text.stdout).toContain('a VQA-only model: its captions are meaningless');
  });
});
