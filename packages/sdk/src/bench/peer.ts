/**
 * The PyTorch column: ../../scripts/bench-peer.py run with the system's python3 on
 * the same folder and shapes, when `import torch` works (never required).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SdkError } from '../errors.js';
import type { Workload } from './run.js';

export interface PeerResult {
  readonly torch: string;
  readonly threads: number;
  /** per dtype ('float32', 'bfloat16'): ms (or 'x' for ratios) by figure key */
  readonly figures: Record<string, Record<string, number>>;
  /** per dtype: the keys whose repetition ran past the budget and was stopped (their figure is a lower bound) */
  readonly lowerBounds: Record<string, readonly string[]>;
}

/** The script beside the package (from src/bench/ in the repository or dist/ when installed). */
function script(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const found = [
    join(here, '..', '..', 'scripts', 'bench-peer.py'),
    join(here, '..', 'scripts', 'bench-peer.py'),
  ].find(existsSync);
  if (!found) throw new SdkError('E_BENCH', `bench-peer.py is not beside ${here}`);
  return found;
}

/**
 * The first of `pythons` that imports torch, with torch's version (a pyenv `python3`
 * may shadow the system one that has Debian's python3-torch).
 */
export function findTorch(pythons: readonly string[]): { python: string; version: string } | undefined {
  for (const python of pythons) {
    const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { python, version: r.stdout.trim() };
  }
  return undefined;
}

export function runPeer(
  dir: string,
  workload: Workload & { peerFloat32Batches?: boolean; peerBudgetMs: number },
  dtypes: readonly string[],
  log: (message: string) => void,
  python: string,
): Promise<PeerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script(), dir, JSON.stringify(workload), dtypes.join(',')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
      for (const line of String(d).split('\n')) if (line.startsWith('peer:')) log(line);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0)
        reject(
          new Error(`the PyTorch peer exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`),
        );
      else resolve(JSON.parse(out) as PeerResult);
    });
  });
}
