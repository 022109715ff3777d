// Makes a fresh clone runnable with nothing but Node 20 and npm: fetches the pinned
// pnpm through npx when it is not on PATH, installs the workspace (frozen lockfile)
// when node_modules is missing or older than the lockfile, and builds what a task needs.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PNPM = '12.4.2';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function pnpmCommand() {
  const r = spawnSync('pnpm', ['--version'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim() === PNPM) return ['pnpm', []];
  return ['npx', ['--yes', `pnpm@${PNPM}`]];
}

/** Runs pnpm with `args` in the repository root; exits the process on failure. */
export function pnpm(args, opts) {
  const [cmd, pre] = pnpmCommand();
  const status = run(cmd, [...pre, ...args], opts);
  if (status !== 0) process.exit(status);
}

export function ensureInstalled() {
  const marker = join(root, 'node_modules', '.modules.yaml');
  const lock = join(root, 'pnpm-lock.yaml');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  console.error('blip2-ts: installing dependencies (pnpm install --frozen-lockfile)...');
  pnpm(['install', '--frozen-lockfile']);
}

/** Browser tests drive Debian's Chromium; install it when we can (root on Debian), else say how. */
export function ensureChromium() {
  if (existsSync('/usr/bin/chromium')) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    console.error('blip2-ts: installing Debian chromium for the browser tests...');
    run('apt-get', ['update', '-qq']);
    if (
      run('apt-get', ['install', '-y', '-qq', 'chromium'], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      }) === 0
    )
      return;
  }
  console.error(
    'blip2-ts: /usr/bin/chromium is missing; the browser tests need it (Debian/Ubuntu: `sudo apt-get install chromium`).',
  );
}
