// `pnpm release:pack [--out DIR] [--no-build]`: one npm tarball per public workspace
// package (those without "private": true, i.e. what `pnpm changeset publish` would
// publish), written to release/ (git-ignored). `pnpm pack` replaces each workspace:*
// dependency with the version in the sibling's package.json, so the tarballs install
// together with plain npm: `npm install release/*.tgz`. For a release, run
// `pnpm changeset version` first; the tarballs carry whatever versions package.json holds.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pnpm, root } from './bootstrap.mjs';

const { values } = parseArgs({
  options: { out: { type: 'string' }, 'no-build': { type: 'boolean' } },
});
const out = resolve(values.out ?? join(root, 'release'));

/** The public workspace packages: name, version, folder. */
export function publicPackages() {
  const list = JSON.parse(
    execFileSync('pnpm', ['ls', '-r', '--depth', '-1', '--json'], { cwd: root, encoding: 'utf8' }),
  );
  return list
    .filter((p) => !p.private && p.name !== 'blip2-ts')
    .map((p) => ({ name: p.name, version: p.version, dir: p.path }));
}

function pack(dir) {
  return new Promise((ok, fail) => {
    const child = spawn('pnpm', ['pack', '--pack-destination', out], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.on('error', fail);
    child.on('close', (code) =>
      code === 0 ? ok() : fail(new Error(`pnpm pack failed in ${dir} (exit ${code})`)),
    );
  });
}

if (!values['no-build']) pnpm(['run', 'build']);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const packages = publicPackages();
// two at a time: the machine has two cores
for (let i = 0; i < packages.length; i += 2)
  await Promise.all(packages.slice(i, i + 2).map((p) => pack(p.dir)));
const tarballs = readdirSync(out).filter((f) => f.endsWith('.tgz'));
for (const p of packages) console.log(`${p.name}@${p.version}`);
console.log(`${tarballs.length} tarballs in ${out}`);
if (tarballs.length !== packages.length) {
  console.error(`expected ${packages.length} tarballs`);
  process.exit(1);
}
