// `npm test` / `pnpm test`: install if needed, then every package's tests through turbo,
// then one closing line with the totals.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ensureChromium, ensureInstalled, root } from './bootstrap.mjs';

ensureInstalled();
ensureChromium();

// --continue: one failing package must not hide the others' results
const args = ['run', 'test', '--concurrency=2', '--continue', ...process.argv.slice(2)];
const child = spawn(join(root, 'node_modules', '.bin', 'turbo'), args, {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
});
let passed = 0;
let failed = 0;
let skipped = 0;
let pending = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  pending += chunk.toString();
  const lines = pending.split('\n');
  pending = lines.pop() ?? '';
  for (const line of lines) {
    // vitest's summary: "      Tests  12 passed | 1 failed (13)"
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes
    const plain = line.replace(/\x1b\[[0-9;]*m/g, '');
    const m = /Tests\s+(.*)\(\d+\)\s*$/.exec(plain);
    if (!m) continue;
    for (const part of m[1].split('|')) {
      const n = /(\d+)\s+(passed|failed|skipped|todo)/.exec(part);
      if (!n) continue;
      if (n[2] === 'passed') passed += Number(n[1]);
      else if (n[2] === 'failed') failed += Number(n[1]);
      else skipped += Number(n[1]);
    }
  }
});
child.on('close', (code) => {
  console.log(`\nvitest: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code ?? 1);
});
