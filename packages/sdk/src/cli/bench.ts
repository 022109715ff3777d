/**
 * `blip2 bench`: every speed and memory figure of one BLIP-2 layout, each printed
 * beside the machine's limit for it and (when python3 has torch) PyTorch's time for
 * the same shapes, all measured in the same run. The weights are random, in the real
 * shapes of the fixtures' manifests.json, written once to a folder and reused.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { NodeDevice } from '@blip2/backend-node';
import { type Manifest, type StoredDType, writeRandomCheckpoint } from '../bench/checkpoint.js';
import { crossFigures } from '../bench/cross.js';
import { findTorch, type PeerResult, runPeer } from '../bench/peer.js';
import {
  type BenchRun,
  FIGURE_GROUPS,
  type Figure,
  type FigureGroup,
  type Machine,
  runBench,
} from '../bench/run.js';
import { parseDTypeFlag } from '../core/dtype.js';
import { UsageError } from './errors.js';
import type { Io } from './io.js';
import { COMMON, type OptionTable, optionLines, optionsOf, parse } from './options.js';
import { findInCheckout } from './shipped.js';

/** Seconds one PyTorch repetition may take before its figure is reported as a lower bound. */
const PEER_BUDGET_SECONDS = 60;

/** Every option of `blip2 bench`, once: the parser's spec and the usage text both come from here. */
const BENCH_OPTIONS = {
  variant: { type: 'string', arg: 'V', help: 'layout from manifests.json (default blip2-opt-2.7b)' },
  small: { type: 'boolean', help: 'the tiny OPT fixture instead (seconds; checks the bench, not speed)' },
  model: {
    type: 'string',
    arg: 'DIR',
    help: 'an existing checkpoint folder instead (e.g. a blip2 export); nothing is written',
  },
  dtype: {
    type: 'string',
    arg: 'D[,D...]',
    multiple: true,
    help: 'dtypes to measure, one run each, in this order (default fp32), then their speed-ups over fp32; repeat the option for per-module dtypes (--dtype vision=q8,qformer=q8,language_model=q4)',
  },
  figures: {
    type: 'string',
    arg: 'F[,F...]',
    help: `only these of ${FIGURE_GROUPS.join(',')} (creation, memory, size on disk and bytes per step are always measured)`,
  },
  'cache-dir': {
    type: 'string',
    arg: 'DIR',
    help: "where a plain checkpoint is quantized for a dtype other than fp32, once (default: the SDK's cache)",
  },
  device: { type: 'string', arg: 'D', help: 'cpu (default) | cuda | ... (onnxruntime-node providers)' },
  'weights-dir': {
    type: 'string',
    arg: 'DIR',
    help: 'where the random checkpoint lives (written when absent, kept)',
  },
  keep: { type: 'boolean', help: 'keep the temporary folder of a run without --weights-dir' },
  stored: { type: 'string', arg: 'F32|F16', help: 'the stored dtype of the random weights (default F32)' },
  repeats: { type: 'string', arg: 'N', help: 'timed runs per figure after a warm-up (default 2)' },
  positions: { type: 'string', arg: 'P,P', help: 'decode positions (default 20,200)' },
  batches: {
    type: 'string',
    arg: 'B,B',
    help: 'images per image-side batch (default 1,8; the end-to-end limits need 1)',
  },
  peer: {
    type: 'string',
    arg: 'none|D[,D]',
    help: 'PyTorch dtypes (default float32,bfloat16 when torch imports)',
  },
  'peer-all': { type: 'boolean', help: 'also PyTorch float32 at image batch 8 (minutes)' },
  'peer-figures': {
    type: 'string',
    arg: 'F[,F...]',
    help: 'the figures PyTorch measures (default: those of --figures)',
  },
  'peer-budget': {
    type: 'string',
    arg: 'SECONDS',
    help: `the most one PyTorch repetition may take (default ${PEER_BUDGET_SECONDS}): a figure past it is stopped and reported as a lower bound (">= X ms", and our speed-up as ">= N x")`,
  },
  python: {
    type: 'string',
    arg: 'P',
    help: 'the python with torch (default: python3, then /usr/bin/python3)',
  },
  manifests: { type: 'string', arg: 'FILE', help: "manifests.json (default: the checkout's fixtures)" },
  image: { type: 'string', arg: 'I', help: 'image of the end-to-end figures (default: a fixture image)' },
  json: {
    type: 'boolean',
    help: 'print {"machine", "figures": [{key, name, dtype, value, unit, limit, ratio, peer?, peerLowerBound?}]}',
  },
} as const satisfies OptionTable;

export const BENCH_USAGE = `usage: blip2 bench [options]
  Real-size figures of a BLIP-2 layout over random weights: session creation and
  memory, bytes a decode step reads, image side per image, prefill, decode steps, beam
  steps, an answer and a caption end to end, each beside its limit measured in the same
  run (onnxruntime's time for one row through every matrix a decode step multiplies,
  the read bandwidth, its rate for one product of a figure's shape) and PyTorch's time
  for the same shapes when python3 can import torch. Progress on stderr.
${optionLines(BENCH_OPTIONS)}`;

const OPTIONS = { ...COMMON, ...optionsOf(BENCH_OPTIONS) };

const FIXTURES = join('tooling', 'fixtures', 'data');
const IN_CHECKOUT = 'run the bench from a blip2-ts checkout, or give --manifests and --image';

export interface BenchReport {
  readonly machine: Machine & {
    /** the fastest rate at which the command read weights (the decode steps' memory-bound limit), and what read them */
    readonly fastestReadGBs: number;
    readonly fastestReadFrom: string;
    readonly peer?: { torch: string; threads: number };
  };
  readonly figures: Figure[];
}

function positiveInts(raw: string, name: string): number[] {
  const xs = raw.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x < 1))
    throw new UsageError(
      `--${name} must be positive integers separated by commas, got '${raw}'`,
      BENCH_USAGE,
    );
  return xs;
}

export async function bench(args: readonly string[], io: Io): Promise<number> {
  const { values } = parse(args, OPTIONS, BENCH_USAGE);
  if (values.help) {
    io.stdout.write(`${BENCH_USAGE}\n`);
    return 0;
  }
  // seconds since the start on every line: where a long run spends its minutes
  const start = performance.now();
  const log = (m: string) =>
    io.stderr.write(`bench: [${((performance.now() - start) / 1000).toFixed(0)} s] ${m}\n`);
  const small = values.small === true;
  const variant = (values.variant as string | undefined) ?? 'blip2-opt-2.7b';
  const dtypes = ((values.dtype as string[] | undefined) ?? ['fp32']).flatMap((d) =>
    // one module=dtype list is one run; a plain list is one run per dtype
    d.includes('=') ? [d] : d.split(',').map((s) => s.trim()),
  );
  for (const d of dtypes) {
    try {
      parseDTypeFlag(d);
    } catch (e) {
      throw new UsageError((e as Error).message, BENCH_USAGE);
    }
  }
  const groups = (flag: string) => {
    const raw = values[flag] as string | undefined;
    return raw
      ? new Set(
          raw.split(',').map((f) => {
            const group = f.trim();
            if (!(FIGURE_GROUPS as readonly string[]).includes(group))
              throw new UsageError(
                `--${flag}: '${group}' is not one of ${FIGURE_GROUPS.join(', ')}`,
                BENCH_USAGE,
              );
            return group as FigureGroup;
          }),
        )
      : undefined;
  };
  const figureGroups = groups('figures');
  const peerGroups = groups('peer-figures');
  const device = ((values.device as string | undefined) ?? 'cpu') as NodeDevice;
  const stored = ((values.stored as string | undefined) ?? 'F32') as StoredDType;
  if (stored !== 'F32' && stored !== 'F16')
    throw new UsageError(`--stored must be F32 or F16, got '${stored}'`, BENCH_USAGE);
  const repeats = positiveInts((values.repeats as string | undefined) ?? '2', 'repeats')[0];
  const positions = positiveInts(
    (values.positions as string | undefined) ?? (small ? '20,100' : '20,200'),
    'positions',
  );
  const batches = positiveInts((values.batches as string | undefined) ?? '1,8', 'batches');
  const peerBudget = Number((values['peer-budget'] as string | undefined) ?? PEER_BUDGET_SECONDS);
  if (!(peerBudget > 0) || !Number.isFinite(peerBudget))
    throw new UsageError(
      `--peer-budget must be a positive number of seconds, got '${values['peer-budget']}'`,
      BENCH_USAGE,
    );
  const fixtures = (): string => findInCheckout(FIXTURES, 'manifests.json', IN_CHECKOUT);
  const image = resolve(
    (values.image as string | undefined) ?? join(fixtures(), 'images', 'coco_500x375.jpg'),
  );

  // ---- the model folder -------------------------------------------------------------
  let dir: string;
  let temporary = false;
  if (small) dir = join(fixtures(), 'tiny-blip2-opt');
  else if (values.model) dir = resolve(values.model as string);
  else {
    const manifestsPath = (values.manifests as string | undefined) ?? join(fixtures(), 'manifests.json');
    const manifests = JSON.parse(readFileSync(manifestsPath, 'utf8')) as Record<string, Manifest>;
    const manifest = manifests[variant];
    if (!manifest) {
      throw new UsageError(
        `--variant '${variant}' is not in ${manifestsPath} (${Object.keys(manifests).join(', ')})`,
        BENCH_USAGE,
      );
    }
    const given = values['weights-dir'] as string | undefined;
    temporary = given === undefined && values.keep !== true;
    dir = given ? resolve(given) : mkdtempSync(join(tmpdir(), 'blip2-bench-'));
    // the manifests are the published checkpoints' (OPT or T5), and the fixtures ship one
    // tokenizer per published family: the folder name is the family's model_type
    const family = (manifest.config.text_config as { model_type: string }).model_type === 't5' ? 't5' : 'opt';
    const folder = await writeRandomCheckpoint(
      dir,
      variant,
      manifest,
      stored,
      join(fixtures(), 'tokenizers', family),
      log,
    );
    log(
      folder.written
        ? `wrote ${(folder.bytes / 1e9).toFixed(2)} GB of random ${variant} weights to ${dir} in ${folder.seconds.toFixed(0)} s`
        : `reusing the random ${variant} weights in ${dir}`,
    );
  }

  try {
    const figures: Figure[] = [];
    const runs: { dtype: string; run: BenchRun }[] = [];
    let machine: Machine | undefined;
    let workload: BenchRun['workload'] | undefined;
    for (const dtype of dtypes) {
      log(`measuring ${small ? 'tiny-blip2-opt' : values.model ? dir : variant}, ${dtype}`);
      const run = await runBench({
        dir,
        dtype,
        ...(figureGroups ? { figures: figureGroups } : {}),
        ...(values['cache-dir'] ? { cacheDir: resolve(values['cache-dir'] as string) } : {}),
        device,
        repeats,
        positions,
        beams: 5,
        batches,
        captionTokens: 30,
        image,
        log,
      });
      figures.push(...run.figures);
      runs.push({ dtype, run });
      machine ??= run.machine;
      workload ??= run.workload;
    }
    if (!machine || !workload) throw new UsageError('--dtype names no dtype', BENCH_USAGE);
    const cross = crossFigures(runs);
    figures.push(...cross.figures);

    // ---- the PyTorch column -------------------------------------------------------------
    let peer: PeerResult | undefined;
    const peerDtypes = (values.peer as string | undefined) ?? 'float32,bfloat16';
    const pythons = values.python ? [values.python as string] : ['python3', '/usr/bin/python3'];
    const torch = peerDtypes === 'none' ? undefined : findTorch(pythons);
    if (peerDtypes !== 'none' && !torch)
      log(`${pythons.join(' and ')} cannot import torch: no PyTorch column`);
    if (torch) {
      log(`PyTorch ${torch.version} (${torch.python}): ${peerDtypes}`);
      // the column is optional: a failing peer costs the column, not the figures measured so far
      peer = await runPeer(
        dir,
        {
          ...workload,
          ...(peerGroups ? { figures: [...peerGroups] } : {}),
          peerFloat32Batches: values['peer-all'] === true,
          peerBudgetMs: peerBudget * 1000,
        },
        peerDtypes.split(','),
        log,
        torch.python,
      ).catch((e: Error) => {
        log(`no PyTorch column: ${e.message}`);
        return undefined;
      });
      for (let i = 0; peer && i < figures.length; i++) {
        const f = figures[i];
        const columns = Object.fromEntries(
          Object.entries(peer.figures)
            .map(([d, byKey]) => [d, byKey[f.key]] as const)
            .filter(([, v]) => v !== undefined),
        );
        const bounds = Object.keys(columns).filter((d) => peer?.lowerBounds[d]?.includes(f.key));
        if (Object.keys(columns).length)
          figures[i] = {
            ...f,
            peer: columns,
            ...(bounds.length
              ? { peerLowerBound: Object.fromEntries(bounds.map((d) => [d, true as const])) }
              : {}),
          };
      }
    }
    const report: BenchReport = {
      machine: {
        ...machine,
        fastestReadGBs: cross.fastestRead.rate / 1e9,
        fastestReadFrom: cross.fastestRead.from,
        ...(peer ? { peer: { torch: peer.torch, threads: peer.threads } } : {}),
      },
      figures,
    };
    if (values.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else io.stdout.write(`${formatReport(report)}\n`);
    return 0;
  } finally {
    if (temporary) rmSync(dir, { recursive: true, force: true });
  }
}

function number(x: number, unit: string): string {
  if (unit === 'x') return `${x.toFixed(2)}x`;
  return x >= 100 ? x.toFixed(0) : x.toFixed(x >= 10 ? 1 : 2);
}

/** The table: each figure, its limit and the ratio, the issue's target, and PyTorch's figures with our speed-up over them. */
export function formatReport(report: BenchReport): string {
  const m = report.machine;
  const peerDtypes = [...new Set(report.figures.flatMap((f) => Object.keys(f.peer ?? {})))];
  const head = [
    'figure',
    'dtype',
    'value',
    'limit',
    'ratio',
    'target',
    'load',
    ...peerDtypes.map((d) => `PyTorch ${d} (speed-up)`),
  ];
  const rows = report.figures.map((f) => [
    f.name,
    f.dtype,
    `${number(f.value, f.unit)}${f.unit === 'x' ? '' : ` ${f.unit}`}`,
    `${number(f.limit, f.unit)}${f.unit === 'x' ? '' : ` ${f.unit}`}`,
    `${f.ratio.toFixed(2)}x`,
    f.target === undefined ? '' : `${f.targetAtLeast ? '>=' : '<='} ${f.target.toFixed(2)}x`,
    f.load.toFixed(1),
    ...peerDtypes.map((d) => {
      const p = f.peer?.[d];
      if (p === undefined) return '';
      // a peer stopped at its budget took at least that long: we are at least that much faster
      const atLeast = f.peerLowerBound?.[d] ? '>= ' : '';
      return f.unit === 'x'
        ? `${atLeast}${number(p, 'x')}`
        : `${atLeast}${number(p, f.unit)} ${f.unit} (${atLeast}${(p / f.value).toFixed(2)}x)`;
    }),
  ]);
  const lines = [
    `machine: ${m.cores} x ${m.cpu}, ${m.memoryGB} GB, Node ${m.node}, onnxruntime ${m.onnxruntime}, ${m.device}; ` +
      `load average ${m.loadAverageStart.toFixed(1)} at start`,
    `limits measured in this run: read bandwidth of the mapped weights ${m.readBandwidthGBs.toFixed(1)} GB/s (ReduceSum), ` +
      `one row through a step's matrices ${m.stepProductsMs.toFixed(1)} ms (${m.stepProductsGBs.toFixed(1)} GB/s), ` +
      `one-node session ${m.sessionFloorMs.toFixed(1)} ms; fastest read ${m.fastestReadGBs.toFixed(1)} GB/s (${m.fastestReadFrom})${m.peer ? `; PyTorch ${m.peer.torch}, ${m.peer.threads} threads` : ''}`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
  return lines.join('\n');
}
