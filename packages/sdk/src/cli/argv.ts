/**
 * A long command line crashes onnxruntime-node 1.30: its environment initialisation walks the
 * process's native argv recursively and overflows the stack (exit 139, no message) from about
 * 30 KB of arguments. The CLI entry therefore never creates a session in a process started with a
 * long command line: it writes the arguments to a private temporary file and runs itself again
 * with a short one, passing the file in $BLIP2_ARGV_FILE; the child reads and deletes it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ARGV_FILE_ENV = 'BLIP2_ARGV_FILE';

/** The largest prompt or question file read: far past any model's positions, far short of memory trouble. */
export const MAX_TEXT_FILE_BYTES = 16 * 1024 * 1024;

/**
 * The text of a `--prompt-file` / `--question-file` argument ('-': standard input), so long
 * text never has to go on the command line; or the problem in words, for the command to
 * report as its usage error: a missing file, a folder or FIFO (not a regular file), too large.
 */
export function readTextArgument(path: string, flag: string): { text: string } | { problem: string } {
  let text: string;
  try {
    if (path !== '-') {
      const stat = statSync(path);
      if (!stat.isFile()) return { problem: `--${flag} ${path}: not a regular file` };
      if (stat.size > MAX_TEXT_FILE_BYTES)
        return {
          problem: `--${flag} ${path}: ${stat.size} bytes, more than the ${MAX_TEXT_FILE_BYTES} read`,
        };
    }
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      problem: `--${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)}`,
    };
  }
  if (text.length > MAX_TEXT_FILE_BYTES)
    return { problem: `--${flag} ${path}: more than the ${MAX_TEXT_FILE_BYTES} bytes read` };
  return { text };
}

/** Well under the ~30 KB where the crash starts. */
export const MAX_INLINE_ARGV_BYTES = 8 * 1024;

/**
 * The arguments to run with, or undefined when this process handed them to a child (then the
 * child's exit becomes this process's).
 */
export function argvOrReexec(
  argv: readonly string[] = process.argv.slice(2),
  /** the command's name, in the one message this prints */
  command = 'blip2',
): string[] | undefined {
  const file = process.env[ARGV_FILE_ENV];
  if (file) {
    delete process.env[ARGV_FILE_ENV];
    try {
      const args = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (!Array.isArray(args) || !args.every((a) => typeof a === 'string'))
        throw new Error('not a list of strings');
      return args;
    } finally {
      rmSync(join(file, '..'), { recursive: true, force: true });
    }
  }
  const bytes = argv.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
  if (bytes <= MAX_INLINE_ARGV_BYTES || !process.argv[1]) return [...argv];
  const dir = mkdtempSync(join(tmpdir(), 'blip2-argv-'));
  const path = join(dir, 'argv.json');
  writeFileSync(path, JSON.stringify(argv), { mode: 0o600 });
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]], {
    stdio: 'inherit',
    env: { ...process.env, [ARGV_FILE_ENV]: path },
  });
  // a terminal's Ctrl-C reaches both processes; a signal sent to this one alone is passed on
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  child.on('exit', (code, signal) => {
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
  child.on('error', (e) => {
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(
      `${command}: cannot run ${process.execPath} again for a long command line: ${e.message}\n`,
    );
    process.exit(1);
  });
  return undefined;
}
