/**
 * Figures across the dtypes of one `blip2 bench` command: each quantized dtype's speed-up
 * over fp32, and each decode step against the fastest read of weights this command
 * measured (the memory-bound limit of the step's own bytes, issue 14). They need every
 * run, so they come after the last.
 */
import type { BenchRun, Figure, ReadRate } from './run.js';

/** The targets the issues set on these figures, by dtype. */
const STEP_AT_BANDWIDTH_TARGET: Readonly<Record<string, number>> = {
  fp32: 1.15, // issue 15: a float32 step within 1.15x of the read-bandwidth limit
  q4: 1.5, // issue 14: a q4 step within 1.5x of the memory-bound limit of its own bytes
};
const SPEEDUP_TARGET: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  q4: { step: 4 }, // issue 14: q4 decode at least 4x fp32
  q8: { image1: 2 }, // issue 14: q8 image side at least 2x fp32
};

export interface CrossFigures {
  readonly figures: Figure[];
  /** the fastest rate at which the command read weights, and what read them */
  readonly fastestRead: ReadRate;
}

export function crossFigures(runs: readonly { dtype: string; run: BenchRun }[]): CrossFigures {
  const fastestRead = runs
    .flatMap(({ run }) => run.readRates)
    .reduce<ReadRate>((a, r) => (r.rate > a.rate ? r : a), { rate: 0, from: 'none', kind: 'reduceSum' });
  const figures: Figure[] = [];
  const bytesOf = (run: BenchRun, position: number) => run.stepBytes + run.cacheBytesPerPosition * position;
  const positionOf = (key: string) => Number(/^step(\d+)$/.exec(key)?.[1] ?? Number.NaN);

  // each step against the fastest read: its bytes can come no faster
  for (const { dtype, run } of runs) {
    for (const f of run.figures) {
      const position = positionOf(f.key);
      if (Number.isNaN(position) || fastestRead.rate === 0) continue;
      const bytes = bytesOf(run, position);
      const limit = (bytes / fastestRead.rate) * 1000;
      const target = STEP_AT_BANDWIDTH_TARGET[dtype];
      figures.push({
        key: `${f.key}AtBandwidth`,
        name: `${f.name}, against the read bandwidth`,
        dtype,
        value: f.value,
        unit: 'ms',
        limit,
        ratio: f.value / limit,
        limitFrom: `${(bytes / 1e9).toFixed(3)} GB (weights + cache) at ${(fastestRead.rate / 1e9).toFixed(1)} GB/s, the fastest read of this command (${fastestRead.from})`,
        ...(target === undefined ? {} : { target }),
        load: f.load,
      });
    }
    // the step's products alone, as fast as they ran in this dtype's run: a floor under its
    // steps set against the same limit, so a ratio above the target that the products
    // already reach is the kernels' rate, not what the step adds around them
    const products = run.readRates
      .filter((r) => r.kind === 'stepProducts')
      .reduce((a, r) => Math.max(a, r.rate), 0);
    if (products > 0 && fastestRead.rate > 0) {
      const value = (run.stepBytes / products) * 1000;
      const limit = (run.stepBytes / fastestRead.rate) * 1000;
      figures.push({
        key: 'stepProductsAtBandwidth',
        name: "one row through the step's matrices alone, against the read bandwidth",
        dtype,
        value,
        unit: 'ms',
        limit,
        ratio: value / limit,
        limitFrom: `${(run.stepBytes / 1e9).toFixed(3)} GB of weights at ${(fastestRead.rate / 1e9).toFixed(1)} GB/s, the fastest read of this command (${fastestRead.from}); value: the fastest of this dtype's step-products readings`,
        load: run.figures.at(-1)?.load ?? 0,
      });
    }
  }

  // each dtype's speed-up over fp32, figure by figure
  const base = runs.find((r) => r.dtype === 'fp32');
  for (const { dtype, run } of base ? runs : []) {
    if (!base || dtype === 'fp32') continue;
    for (const f of run.figures) {
      const b = base.run.figures.find((x) => x.key === f.key);
      const kind = /^step\d+$/.test(f.key) ? 'step' : f.key;
      if (!b || !['image1', 'image8', 'prefill', 'step', 'beam', 'answer', 'caption'].includes(kind))
        continue;
      const position = positionOf(f.key);
      // a step is memory-bound: the speed-up its bytes allow; the others: the one their limits allow
      const limit =
        kind === 'step' ? bytesOf(base.run, position) / bytesOf(run, position) : b.limit / f.limit;
      const value = b.value / f.value;
      const target = SPEEDUP_TARGET[dtype]?.[kind];
      figures.push({
        key: `${f.key}Speedup`,
        name: `${f.name}: speed-up over fp32`,
        dtype,
        value,
        unit: 'x',
        limit,
        ratio: value / limit,
        limitFrom:
          kind === 'step'
            ? "fp32's bytes (weights + cache) over this dtype's: the speed-up a memory-bound step can have"
            : "fp32's limit over this dtype's: the speed-up onnxruntime's own products allow",
        ...(target === undefined ? {} : { target, targetAtLeast: true as const }),
        load: f.load,
      });
    }
  }
  return { figures, fastestRead };
}
