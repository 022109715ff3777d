/** `blip2 parity <fixture-dir>`: runParity, printed as a table (or JSON); exit 0 exactly when all is within tolerance. */
import { runParity } from '../parity/index.js';
import type { ParityReport } from '../parity/report.js';
import { UsageError } from './errors.js';
import { displayPath, type Io } from './io.js';
import { BACKEND, backendChoice, COMMON, parse } from './options.js';
import { progressBar } from './progress.js';

export const PARITY_USAGE = `usage: blip2 parity <fixture-dir> [--backend node|web] [--device D] [--dtype D] [--images DIR] [--json]
  Replays every case of a reference fixture folder (computed with Hugging Face transformers):
  a model folder (reference.json + reference.safetensors), a tokenizer folder (cases.json)
  or an images folder (pixel_values.safetensors). Prints each tensor's max |diff| and each
  generation's match; exits 0 exactly when everything is within the fixture tolerances.
  --images DIR            where a model folder's case images are (default: ../images)
  --dtype D               replay on quantized weights (fp16|q8|q4|q4f16, or per module):
                          the differences then measure the dtype's accuracy
  --json                  print {"ok", "maxAbsDiff", "tensors", "generate", "exact", ...}`;

export async function parity(args: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...COMMON, ...BACKEND, images: { type: 'string' } },
    PARITY_USAGE,
    1,
  );
  if (values.help) {
    io.stdout.write(`${PARITY_USAGE}\n`);
    return 0;
  }
  const dir = positionals[0];
  if (!dir) throw new UsageError('give the fixture folder to replay', PARITY_USAGE);
  const bar = progressBar(io.stderr);
  let report: ParityReport;
  try {
    report = await runParity(dir, {
      ...backendChoice(values, PARITY_USAGE),
      ...(typeof values.images === 'string' ? { imagesDir: values.images } : {}),
      onProgress: bar.onProgress,
      onWarning: () => {},
    });
  } finally {
    bar.done();
  }
  io.stdout.write(values.json ? `${JSON.stringify(report, jsonNumbers)}\n` : formatReport(report));
  return report.ok ? 0 : 1;
}

/** JSON has no Infinity: a shape mismatch or NaN is written as the string "Infinity". */
function jsonNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

const mark = (ok: boolean) => (ok ? 'ok  ' : 'FAIL');

export function formatReport(r: ParityReport): string {
  const lines = [`${r.kind} fixture ${displayPath(r.dir)} (backend ${r.backend})`];
  for (const t of r.tensors) {
    lines.push(
      `  ${mark(t.ok)} ${`${t.case}/${t.name}`.padEnd(44)} max|diff| ${t.maxAbsDiff.toExponential(2).padStart(9)}  tol ${t.tolerance.toExponential(0)}${t.problem ? `  ${t.problem}` : ''}`,
    );
  }
  for (const g of r.generate) {
    const score = g.scoreDiff === undefined ? '' : `  scores |diff| ${g.scoreDiff.toExponential(2)}`;
    lines.push(
      `  ${mark(g.ok)} generate ${g.name.padEnd(35)} ${g.match ? 'tokens match' : 'tokens DIFFER'}${score}`,
    );
    if (!g.match)
      lines.push(`       expected ${JSON.stringify(g.expected)}`, `       got      ${JSON.stringify(g.got)}`);
  }
  const failed = r.exact.filter((e) => !e.match);
  if (r.exact.length)
    lines.push(
      `  ${mark(!failed.length)} exact values (ids, tokens, offsets, strings): ${r.exact.length - failed.length}/${r.exact.length} equal`,
    );
  for (const e of failed) {
    lines.push(
      `       ${e.case}/${e.name}: expected ${JSON.stringify(e.expected)}, got ${JSON.stringify(e.got)}`,
    );
  }
  for (const w of r.warnings) lines.push(`  note: ${w}`);
  const counts = `${r.tensors.length} tensors, ${r.generate.length} generations, ${r.exact.length} exact values`;
  lines.push(
    `${r.ok ? 'PASS' : 'FAIL'}: ${counts}; max |diff| ${r.maxAbsDiff.toExponential(2)}; ${r.seconds.toFixed(1)} s`,
  );
  return `${lines.join('\n')}\n`;
}
