// `npm run demo`: on a fresh clone with only Node 20 and npm, installs the workspace
// (pnpm through npx when needed), builds the SDK and what it depends on, then runs
// `blip2 demo`: the shipped shapes-VQA models caption a validation image and answer
// its questions. Extra arguments go to `blip2 demo` (e.g. `npm run demo -- --backend web`).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureInstalled, pnpm, root } from './bootstrap.mjs';

ensureInstalled();
console.error('blip2-ts: building @blip2/sdk and its dependencies...');
pnpm(['exec', 'turbo', 'run', 'build', '--filter=@blip2/sdk...', '--output-logs=errors-only']);
const r = spawnSync(
  process.execPath,
  [join(root, 'packages', 'sdk', 'dist', 'cli.js'), 'demo', ...process.argv.slice(2)],
  {
    stdio: 'inherit',
    cwd: root,
  },
);
if (r.error) throw r.error;
process.exit(r.status ?? 1);
