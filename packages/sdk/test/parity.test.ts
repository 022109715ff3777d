import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { afterAll, describe, expect, it } from 'vitest';
import { type ParityReport, runParity } from '../src/index.js';

function summary(r: ParityReport): string {
  const worst = [...r.tensors].sort((a, b) => b.maxAbsDiff - a.maxAbsDiff)[0];
  return `${r.kind} ${r.backend}: ${r.tensors.length} tensors (max |diff| ${r.maxAbsDiff.toExponential(2)}${worst ? ` at ${worst.case}/${worst.name}` : ''}), ${r.generate.length} generate, ${r.exact.length} exact, ${r.seconds.toFixed(1)} s`;
}

function expectAllPass(r: ParityReport) {
  console.log(summary(r));
  expect(r.tensors.filter((t) => !t.ok)).toEqual([]);
  expect(r.generate.filter((g) => !g.ok)).toEqual([]);
  expect(r.exact.filter((e) => !e.match)).toEqual([]);
  expect(r.ok).toBe(true);
}

const MODEL_TENSORS = [
  'processor_pixel_values',
  'vision_last_hidden_state',
  'vision_pooler_output',
  'qformer_last_hidden_state',
  'language_projection',
  'logits',
];

describe.each([
  ['tiny-blip2-opt', 'node', fixtures.tinyOpt],
  ['tiny-blip2-t5', 'node', fixtures.tinyT5],
  ['tiny-blip2-opt', 'web', fixtures.tinyOpt],
  ['tiny-blip2-t5', 'web', fixtures.tinyT5],
] as const)('%s on backend %s', (model, backend, dir) => {
  it('reproduces every tensor, input_ids and generate record', async () => {
    const r = await runParity(dir, { backend });
    expectAllPass(r);
    expect(r.backend).toBe(backend === 'node' ? 'node:cpu' : 'web:wasm');
    const t5 = model.endsWith('t5');
    const names = t5 ? [...MODEL_TENSORS, 't5_encoder_last_hidden_state'] : MODEL_TENSORS;
    for (const c of ['case0', 'case1', 'case2'])
      expect(
        r.tensors
          .filter((t) => t.case === c)
          .map((t) => t.name)
          .sort(),
      ).toEqual([...names].sort());
    expect(r.exact.map((e) => e.name)).toEqual(['input_ids', 'input_ids', 'input_ids']);
    // 5 kinds of decoding x 3 cases, and the two padded-batch records
    expect(r.generate.map((g) => g.name).filter((n) => n.startsWith('case'))).toHaveLength(15);
    expect(
      r.generate
        .map((g) => g.name)
        .filter((n) => n.startsWith('batch/'))
        .sort(),
    ).toEqual(['batch/beam3', 'batch/greedy_min']);
    expect(r.generate.filter((g) => g.scoreDiff !== undefined).length).toBeGreaterThanOrEqual(6);
  });
});

describe.each([
  ['opt', fixtures.tokenizersOpt],
  ['t5', fixtures.tokenizersT5],
])('tokenizer fixture %s', (_name, dir) => {
  it('reproduces all 31 cases (ids, tokens, offsets, decodes) and the pair', async () => {
    const r = await runParity(dir);
    expectAllPass(r);
    expect(r.kind).toBe('tokenizer');
    expect(r.exact).toHaveLength(31 * 6 + 1);
  });
});

describe('images fixture', () => {
  it('decodes all seven images as PIL and preprocesses them at 32, 64 and 224 within 1e-6', async () => {
    const r = await runParity(fixtures.images);
    expectAllPass(r);
    expect(r.kind).toBe('images');
    expect(r.tensors).toHaveLength(7 * 4);
    expect(r.tensors.filter((t) => t.name === 'decoded_rgb').every((t) => t.maxAbsDiff === 0)).toBe(true);
  });
});

describe('parity fails when the reference is wrong', () => {
  const temps: string[] = [];
  afterAll(async () => {
    await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
  });

  async function copyFixture(dir: string): Promise<string> {
    const tmp = await mkdtemp(join(tmpdir(), 'blip2-parity-'));
    temps.push(tmp);
    await cp(dir, join(tmp, 'model'), { recursive: true });
    await cp(fixtures.images, join(tmp, 'images'), { recursive: true });
    return join(tmp, 'model');
  }

  it('reports a reference tensor perturbed by 1e-3', async () => {
    const dir = await copyFixture(fixtures.tinyOpt);
    await perturb(join(dir, 'reference.safetensors'), 'case1/qformer_last_hidden_state', 7, 1e-3);
    const r = await runParity(dir);
    expect(r.ok).toBe(false);
    const bad = r.tensors.filter((t) => !t.ok);
    expect(bad.map((t) => `${t.case}/${t.name}`)).toEqual(['case1/qformer_last_hidden_state']);
    expect(bad[0].maxAbsDiff).toBeGreaterThan(9e-4);
    expect(bad[0].maxAbsDiff).toBeLessThan(1.1e-3);
    expect(r.generate.every((g) => g.ok)).toBe(true);
  });

  it('reports a generate record whose tokens are wrong', async () => {
    const dir = await copyFixture(fixtures.tinyT5);
    const path = join(dir, 'reference.json');
    const json = JSON.parse(await readFile(path, 'utf8'));
    json.generate[3].new[0][2] += 1;
    await writeFile(path, JSON.stringify(json));
    const r = await runParity(dir);
    expect(r.ok).toBe(false);
    expect(r.generate.filter((g) => !g.match).map((g) => g.name)).toEqual([json.generate[3].name]);
  });

  it('names a folder that is no fixture', async () => {
    await expect(runParity(fixtures.shapesOpt)).rejects.toMatchObject({
      code: 'E_MISSING_FILE',
      message: expect.stringContaining(`${fixtures.shapesOpt} is not a fixture folder`),
    });
  });
});

/** Adds `delta` to element `index` of float32 tensor `name` in a safetensors file, in place. */
async function perturb(path: string, name: string, index: number, delta: number) {
  const buf = await readFile(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const at = 8 + n + header[name].data_offsets[0] + 4 * index;
  buf.writeFloatLE(buf.readFloatLE(at) + delta, at);
  await writeFile(path, buf);
}
