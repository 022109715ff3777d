/**
 * The real executable in a child process: killed with SIGKILL half way, or interrupted with
 * SIGINT, then resumed, it must write the same results file as an uninterrupted run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'tsup';
import { beforeAll, describe, expect, it } from 'vitest';
import { readProgress } from '../src/progress-log.js';
import { progressPathFor } from '../src/run.js';
import { shapes, tempDir } from './helpers.js';

const hook = join(import.meta.dirname, 'fixtures', 'test-answerer.mjs');
let cli = '';

beforeAll(async () => {
  // inside the package, so the executable finds its dependencies as an installed one does
  const cache = join(import.meta.dirname, '..', 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const outDir = mkdtempSync(join(cache, 'vqa-eval-cli-'));
  await build({
    entry: { cli: join(import.meta.dirname, '..', 'src', 'cli.ts') },
    outDir,
    format: ['esm'],
    dts: false,
    silent: true,
    config: false,
    // bundled into a temp folder with no node_modules: the static workspace imports go in
    noExternal: [/^@blip2\/sdk\/(files|argv)$/, '@blip2/generation'],
  });
  cli = join(outDir, 'cli.js');
  return () => rmSync(outDir, { recursive: true, force: true });
});

function start(
  out: string,
  extra: string[] = [],
  delayMs = 0,
  env: Record<string, string> = {},
): ChildProcess {
  const args = [
    cli,
    'run',
    '--model',
    'fake',
    '--questions',
    shapes.questions,
    '--annotations',
    shapes.annotations,
  ];
  args.push(
    '--images',
    shapes.images,
    '--answerer-module',
    hook,
    '--batch-size',
    '10',
    '--out',
    out,
    ...extra,
  );
  return spawn(process.execPath, args, {
    env: { ...withoutJobVariables(process.env), VQA_TEST_DELAY_MS: String(delayMs), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The test's own process may run inside a job engine: its shard variables must not leak in. */
function withoutJobVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(([k]) => k !== 'JOB_COMPLETION_INDEX' && !k.startsWith('SLURM_ARRAY_')),
  );
}

function finished(
  child: ChildProcess,
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
}

async function whenAnswered(out: string, atLeast: number): Promise<void> {
  for (;;) {
    if (existsSync(progressPathFor(out)) && readProgress(progressPathFor(out)).results.length >= atLeast)
      return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('vqa-eval executable', () => {
  it('a 40 KB prompt (onnxruntime-node 1.30 segfaults from ~30 KB of argv) runs in a re-executed child with a short command line; --prompt-file reads it from a file', async () => {
    const dir = tempDir();
    const prompt = `Question: {} ${'and what else? '.repeat(2800)}Short answer:`;
    expect(Buffer.byteLength(prompt)).toBeGreaterThan(40_000);
    const record = join(dir, 'seen.json');
    const inline = await finished(
      start(join(dir, 'inline.json'), ['--prompt', prompt, '--limit', '3'], 0, { VQA_TEST_RECORD: record }),
    );
    expect(inline.stderr).not.toMatch(/\n\s+at /);
    expect(inline.code).toBe(0);
    const seen = JSON.parse(readFileSync(record, 'utf8'));
    expect(seen.argvBytes).toBeLessThan(8 * 1024);
    expect(seen.prompt.length).toBeGreaterThan(40_000);

    const file = join(dir, 'prompt.txt');
    writeFileSync(file, `${prompt}\n`);
    const fromFile = await finished(start(join(dir, 'file.json'), ['--prompt-file', file, '--limit', '3']));
    expect(fromFile.code).toBe(0);
    const answers = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
    expect(answers(join(dir, 'file.json'))).toEqual(answers(join(dir, 'inline.json')));

    for (const [bad, says] of [
      [join(dir, 'nope.txt'), /--prompt-file .*nope\.txt: no such file/],
      [dir, /--prompt-file .*: not a regular file/],
    ] as const) {
      const r = await finished(start(join(dir, 'bad.json'), ['--prompt-file', bad]));
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(says);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const both = await finished(start(join(dir, 'both.json'), ['--prompt', 'Q {}', '--prompt-file', file]));
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give --prompt or --prompt-file, not both/);
  });

  it('killed with SIGKILL half way and resumed, gives the uninterrupted results file', async () => {
    const dir = tempDir();
    const full = join(dir, 'full.json');
    expect((await finished(start(full))).code).toBe(0);

    const out = join(dir, 'killed.json');
    const child = start(out, [], 40);
    const done = finished(child);
    await whenAnswered(out, 100);
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    expect(existsSync(out)).toBe(false);
    const saved = readProgress(progressPathFor(out)).results.length;
    expect(saved).toBeGreaterThanOrEqual(100);
    expect(saved).toBeLessThan(200);

    const resumed = await finished(start(out, ['--resume']));
    expect(resumed.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(full, 'utf8'));
  });

  it('Ctrl-C stops after the batch in flight, says how to resume, and loses nothing', async () => {
    const dir = tempDir();
    const out = join(dir, 'int.json');
    const child = start(out, [], 40);
    const done = finished(child);
    await whenAnswered(out, 50);
    child.kill('SIGINT');
    const result = await done;
    expect(result.code).toBe(130);
    expect(result.stderr).toMatch(/E_ABORTED: interrupted after \d+ of 200 questions.*--resume to continue/);
    const saved = readProgress(progressPathFor(out)).results.length;
    expect(result.stderr).toContain(`interrupted after ${saved} of 200`);
    expect((await finished(start(out, ['--resume']))).code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toHaveLength(200);
  });

  it('a second run on a live --out, with or without --resume, is refused at once naming the first', async () => {
    const dir = tempDir();
    const full = join(dir, 'full.json');
    expect((await finished(start(full))).code).toBe(0);
    const out = join(dir, 'shared.json');
    const first = start(out, [], 150);
    const firstDone = finished(first);
    await whenAnswered(out, 20);
    for (const extra of [[], ['--resume']]) {
      const t0 = performance.now();
      const second = await finished(start(out, extra));
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(
        new RegExp(`E_OUT_LOCKED: --out .*shared\\.json is in use by a live run: pid ${first.pid} on host `),
      );
      expect(performance.now() - t0).toBeLessThan(5000);
    }
    // the first run lost nothing: its results are an uninterrupted run's
    expect((await firstDone).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(full, 'utf8'));
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it("--shard auto: 3 processes of an Indexed Job or a Slurm array merge into one run's file, byte for byte", async () => {
    const dir = tempDir();
    const full = join(dir, 'full.json');
    expect((await finished(start(full))).code).toBe(0);
    const engines: Record<string, (k: number) => Record<string, string>> = {
      // Kubernetes sets JOB_COMPLETION_INDEX (0-based); the manifest passes spec.completions
      k8s: (k) => ({ JOB_COMPLETION_INDEX: String(k), JOB_COMPLETIONS: '3' }),
      // sbatch --array=1-3
      slurm: (k) => ({
        SLURM_ARRAY_TASK_ID: String(k + 1),
        SLURM_ARRAY_TASK_COUNT: '3',
        SLURM_ARRAY_TASK_MIN: '1',
        SLURM_ARRAY_TASK_MAX: '3',
      }),
    };
    for (const [engine, envOf] of Object.entries(engines)) {
      const parts = [0, 1, 2].map((k) => join(dir, `${engine}-${k}.json`));
      const runs = await Promise.all(
        parts.map((p, k) => finished(start(p, ['--shard', 'auto'], 0, envOf(k)))),
      );
      expect(
        runs.map((r) => r.code),
        runs.map((r) => r.stderr).join('\n'),
      ).toEqual([0, 0, 0]);
      // 20 batches of 10 in three contiguous runs of whole batches: 6, 7 and 7 batches
      expect(parts.map((p) => JSON.parse(readFileSync(p, 'utf8')).length)).toEqual([60, 70, 70]);
      const merged = join(dir, `${engine}-merged.json`);
      const merge = spawn(
        process.execPath,
        [cli, 'merge', '--questions', shapes.questions, '--out', merged, ...parts],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      expect((await finished(merge)).code).toBe(0);
      expect(readFileSync(merged, 'utf8')).toBe(readFileSync(full, 'utf8'));
    }
  });
});
