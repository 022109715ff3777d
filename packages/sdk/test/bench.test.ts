/**
 * `blip2 bench` in its small mode (the tiny OPT fixture): the report's shape, not the
 * speed. Every figure must carry a value, the limit measured in the same run and
 * their ratio; real-size runs are benches (docs/benchmarks.md), never tests.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { graphCosts, prefillWork } from '../src/bench/costs.js';
import { type BenchReport, formatReport } from '../src/cli/bench.js';
import { main } from '../src/cli/main.js';
import { Blip2ForConditionalGeneration } from '../src/index.js'; // registers the Node platform, as src/cli.ts does
import { capture } from './cli-io.js';

const KEYS = [
  'creation',
  'memoryCreation',
  'disk',
  'stepBytes',
  'image1',
  'image8',
  'prefill',
  'step20',
  'step100',
  'positionRatio',
  'beam',
  'beamRatio',
  'answer',
  'caption',
  'memoryEnd',
  // after the last dtype's run: each step against the fastest read of weights the command measured
  'step20AtBandwidth',
  'step100AtBandwidth',
  'stepProductsAtBandwidth',
];

describe('what the bench counts in the graphs it ran', () => {
  it('a prefill multiplies every matrix at every position, the LM head at the last, plus attention', async () => {
    const model = await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt, {
      onWarning: () => {},
    });
    try {
      const P = 15; // 5 query tokens + 10 text tokens
      const prefill = model.graphs.get('lm.prefill');
      const step = model.graphs.get('lm.stepAppend');
      if (!prefill || !step) throw new Error('tiny-blip2-opt has no prefill or stepAppend graph');
      // keys and values of 2 layers of 4 heads x 6, float32, per position
      const cache = graphCosts(step).cacheBytesPerPosition;
      expect(cache).toBe(2 * 2 * 4 * 6 * 4);
      const work = prefillWork([prefill], cache, P, 947);
      const layerMacs = 4 * 24 * 24 + 2 * 24 * 37;
      const attention = 2 * 2 * 2 * P * P * 24; // 2 layers x (scores + values) x 2 flop x P^2 x 24
      expect(work.headRows).toBe(1);
      expect(work.products).toBe(13);
      expect(work.main).toMatchObject({ k: 24, n: 37 });
      expect(work.flop).toBe(2 * P * 2 * layerMacs + 2 * 947 * 24 + attention);
    } finally {
      await model.dispose();
    }
  });
});

describe('blip2 bench --small', () => {
  it('prints every figure with its value, limit and ratio as JSON, progress on stderr', async () => {
    const c = capture();
    const code = await main(['bench', '--small', '--json', '--peer', 'none', '--repeats', '1'], c.io);
    expect(code, c.err()).toBe(0);
    const report = JSON.parse(c.out()) as BenchReport;
    expect(Object.keys(report)).toEqual(['machine', 'figures']);
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(Array.isArray(report.machine.cpuFlags)).toBe(true);
    expect(report.machine.readBandwidthGBs).toBeGreaterThan(0);
    expect(report.machine.stepProductsMs).toBeGreaterThan(0);
    // the decode limit: one row through each matrix a step multiplies (2 layers x 6, and the LM head)
    expect(report.figures.find((f) => f.key === 'step20')?.limitFrom).toMatch(
      /^one row through the step's 13 matrices/,
    );
    // the beam step's limit: the same products at 5 rows, with a 5-row step's kernels
    expect(report.figures.find((f) => f.key === 'beam')?.limitFrom).toMatch(
      /^5 rows through the step's 13 matrices with its kernels for 5 rows: \d+ ms/,
    );
    expect(report.machine.onnxruntime).toMatch(/^\d+\.\d+/);
    expect(report.figures.map((f) => f.key)).toEqual(KEYS);
    for (const f of report.figures) {
      expect(f.dtype).toBe('fp32');
      expect(typeof f.name).toBe('string');
      expect(['ms', 'MB', 'x']).toContain(f.unit);
      for (const x of [f.value, f.limit, f.ratio]) expect(Number.isFinite(x), `${f.name}: ${x}`).toBe(true);
      // memory added at creation is a difference: the collector may free more than the sessions add
      if (f.key !== 'memoryCreation') expect(Math.min(f.value, f.limit, f.ratio), f.name).toBeGreaterThan(0);
      expect(f.ratio).toBeCloseTo(f.value / f.limit, 10);
      expect(f.limitFrom.length).toBeGreaterThan(0);
      expect(f.load).toBeGreaterThanOrEqual(0);
    }
    // what a step reads, counted by hand from tiny-blip2-opt's config (hidden 24, ffn 37, 2 layers,
    // vocabulary 947, tied embeddings): per layer q/k/v/out 4 x (24 x 24 + 24), fc1 37 x 24 + 37,
    // fc2 24 x 37 + 24, two layer norms 2 x 48; the final layer norm 48; the LM head (the tied
    // table, whole) 947 x 24; one row of the token table and one of the position table, 24 each
    const layer = 4 * (24 * 24 + 24) + (37 * 24 + 37) + (24 * 37 + 24) + 2 * 48;
    const floats = 2 * layer + 48 + 947 * 24 + 24;
    const stepBytes = report.figures.find((f) => f.key === 'stepBytes');
    expect(stepBytes?.value).toBeCloseTo((4 * floats) / 1e6, 12);
    expect(stepBytes?.ratio).toBeCloseTo(1, 12); // float32 already
    // a float32 checkpoint on disk is its own float32 size, plus its header
    const disk = report.figures.find((f) => f.key === 'disk');
    expect(disk?.ratio).toBeGreaterThanOrEqual(1);
    expect(disk?.ratio).toBeLessThan(1.1);
    // the answer generates at least one token (LAVIS: 1 to 10)
    expect(report.figures.find((f) => f.key === 'answer')?.name).toMatch(
      /\(5 beams, ([1-9]|10) new tokens\)/,
    );
    expect(c.err()).toMatch(/^bench: /m);
  });

  it('measures only the --figures asked, one run per dtype, a quantized dtype from its cached copy', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'blip2-bench-cache-'));
    try {
      const c = capture();
      const args = ['bench', '--small', '--json', '--peer', 'none', '--repeats', '1', '--figures', 'steps'];
      const code = await main([...args, '--dtype', 'fp32,q8,q4', '--cache-dir', cache], c.io);
      expect(code, c.err()).toBe(0);
      const report = JSON.parse(c.out()) as BenchReport;
      const always = ['creation', 'memoryCreation', 'disk', 'stepBytes'];
      const steps = [...always, 'step20', 'step100', 'positionRatio', 'memoryEnd'];
      expect(report.figures.map((f) => `${f.dtype}:${f.key}`)).toEqual([
        ...steps.map((k) => `fp32:${k}`),
        ...steps.map((k) => `q8:${k}`),
        // q4's 2-D block scales belong to their packed weight in the decode limit's products
        ...steps.map((k) => `q4:${k}`),
        // then, across the runs: each step against the fastest read, each dtype's speed-ups over fp32
        ...['fp32', 'q8', 'q4'].flatMap((d) => [
          `${d}:step20AtBandwidth`,
          `${d}:step100AtBandwidth`,
          `${d}:stepProductsAtBandwidth`,
        ]),
        ...['q8', 'q4'].flatMap((d) => [`${d}:step20Speedup`, `${d}:step100Speedup`]),
      ]);
      // a speed-up is fp32's time over the dtype's; its limit, fp32's bytes over the dtype's
      const figure = (d: string, key: string) => report.figures.find((f) => f.dtype === d && f.key === key);
      const speedup = figure('q4', 'step20Speedup');
      expect(speedup?.value).toBeCloseTo(
        (figure('fp32', 'step20')?.value ?? 0) / (figure('q4', 'step20')?.value ?? 1),
        10,
      );
      expect(speedup).toMatchObject({ unit: 'x', target: 4, targetAtLeast: true });
      const cacheAt20 = 20 * 2 * 2 * 4 * 6 * 4;
      expect(speedup?.limit).toBeCloseTo(
        ((figure('fp32', 'stepBytes')?.value ?? 0) * 1e6 + cacheAt20) /
          ((figure('q4', 'stepBytes')?.value ?? 0) * 1e6 + cacheAt20),
        6,
      );
      // the memory-bound limit of q4's own bytes: weights + cache at the fastest read measured
      const atBandwidth = figure('q4', 'step20AtBandwidth');
      expect(atBandwidth?.target).toBe(1.5);
      expect(atBandwidth?.limit).toBeCloseTo(
        (((figure('q4', 'stepBytes')?.value ?? 0) * 1e6 + cacheAt20) /
          (report.machine.fastestReadGBs * 1e9)) *
          1000,
        6,
      );
      // the products alone against the same limit: never faster than the fastest read
      const productsAlone = figure('q4', 'stepProductsAtBandwidth');
      expect(productsAlone?.limit).toBeCloseTo(
        (((figure('q4', 'stepBytes')?.value ?? 0) * 1e6) / (report.machine.fastestReadGBs * 1e9)) * 1000,
        6,
      );
      expect(productsAlone?.ratio).toBeGreaterThanOrEqual(1 - 1e-9);
      // the fastest products reading: each step's limit is one reading plus the cache at its rate
      for (const key of ['step20', 'step100'])
        expect(productsAlone?.value).toBeLessThanOrEqual(figure('q4', key)?.limit ?? 0);
      const disk = (d: string) => report.figures.find((f) => f.dtype === d && f.key === 'disk');
      // q8's linear weights are one byte each (the tiny model's float tables keep a large share)
      expect(disk('q8')?.value).toBeLessThan(0.7 * (disk('fp32')?.value ?? 0));
      expect(disk('q8')?.limitFrom).toContain(cache);
      // the q8 step's limit multiplies its packed weights (DynamicQuantizeMatMul), found through quantization.json
      const step = (d: string) => report.figures.find((f) => f.dtype === d && f.key === 'step20');
      expect(step('q8')?.limitFrom).toMatch(/^one row through the step's 13 matrices/);
      expect(readdirSync(join(cache, 'quantized')).length).toBe(2);
      // q8 reads its 12 layer matrices as int8 plus a float32 scale per output channel; the tied
      // table stays float32 (a Gather reads it), and so the head that shares it
      const bytes = (d: string) => report.figures.find((f) => f.dtype === d && f.key === 'stepBytes');
      const matrices = 2 * (4 * 24 * 24 + 2 * 37 * 24);
      const scales = 2 * (4 * 24 + 37 + 24);
      expect(((bytes('fp32')?.value ?? 0) - (bytes('q8')?.value ?? 0)) * 1e6).toBeCloseTo(
        4 * matrices - (matrices + 4 * scales),
        6,
      );
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('prints a peer figure stopped at its budget as a lower bound, and our speed-up as one', () => {
    const figure = {
      key: 'image1',
      name: 'image side per image, batch 1',
      dtype: 'q8',
      value: 2000,
      unit: 'ms',
      limit: 1000,
      ratio: 2,
      limitFrom: 'a product rate',
      load: 1,
      peer: { float32: 15000, bfloat16: 60000 },
      peerLowerBound: { bfloat16: true as const },
    };
    const machine = {
      cpu: 'cpu',
      cpuFlags: ['avx2'],
      cores: 2,
      memoryGB: 24,
      node: 'v20',
      onnxruntime: '1.30.0',
      device: 'node:cpu',
      loadAverageStart: 1,
      readBandwidthGBs: 15,
      stepProductsMs: 400,
      stepProductsGBs: 26,
      sessionFloorMs: 1,
      fastestReadGBs: 26,
      fastestReadFrom: 'fp32: one row through the step',
      peer: { torch: '1.13', threads: 2 },
    };
    const row = formatReport({ machine, figures: [figure] })
      .split('\n')
      .find((l) => l.startsWith('| image side'));
    expect(row).toContain('| 15000 ms (7.50x) | >= 60000 ms (>= 30.00x) |');
  });

  it('never writes random weights into a folder that holds something else', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blip2-bench-test-'));
    try {
      writeFileSync(join(dir, 'config.json'), '{}');
      const c = capture();
      expect(await main(['bench', '--weights-dir', dir, '--peer', 'none'], c.io)).toBe(1);
      expect(c.err()).toMatch(/is not empty and holds no bench-checkpoint\.json/);
      expect(readdirSync(dir)).toEqual(['config.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad options with the usage text', async () => {
    for (const args of [
      ['--positions', '20,x'],
      ['--stored', 'F8'],
      ['--variant', 'blip2-opt-99b', '--peer', 'none'],
      ['--small', '--figures', 'steps,speed'],
      ['--small', '--dtype', 'fp32,q3'],
      ['--small', '--peer-budget', '0'],
      ['--small', '--peer-budget', 'soon'],
    ]) {
      const c = capture();
      expect(await main(['bench', ...args], c.io)).toBe(2);
      expect(c.err()).toMatch(/usage: blip2 bench/);
    }
  });
});
