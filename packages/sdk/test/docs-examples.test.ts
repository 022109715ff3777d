// Runs every ```ts block of docs/sdk.md (and of docs/reliability.md), as a user would from the repository root,
// and checks each `// prints: ...` line against what the block logged, so the page
// cannot drift from the code.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const packageDir = resolve(here, '..');
const repoRoot = resolve(packageDir, '../..');
const page = readFileSync(join(repoRoot, 'docs/sdk.md'), 'utf8');

interface Example {
  readonly heading: string;
  readonly code: string;
  readonly prints: string[];
}

function examples(markdown: string): Example[] {
  const out: Example[] = [];
  let heading = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('#')) heading = lines[i].replace(/^#+\s*/, '');
    if (lines[i].trim() !== '```ts') continue;
    const body: string[] = [];
    for (i++; lines[i].trim() !== '```'; i++) body.push(lines[i]);
    const prints = body
      .map((l) => /^\s*\/\/ prints: (.*)$/.exec(l)?.[1])
      .filter((p): p is string => p !== undefined);
    out.push({ heading, code: body.join('\n'), prints });
  }
  return out;
}

const blocks = examples(page);
const reliability = examples(readFileSync(join(repoRoot, 'docs/reliability.md'), 'utf8'));
let scratch: string;
const cwd = process.cwd();
beforeAll(() => {
  // inside the package, so that its dependencies (@blip2/tensor, ...) resolve as for a user
  scratch = mkdtempSync(join(packageDir, '.docs-examples-'));
  process.chdir(repoRoot);
});
afterAll(() => {
  process.chdir(cwd);
  rmSync(scratch, { recursive: true, force: true });
});

describe('docs/sdk.md examples', () => {
  it('has an example for every API of the page', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(14);
    for (const name of [
      'fromPretrained',
      '.caption(',
      '.ask(',
      '.stream(',
      '.generate(',
      'Blip2Processor.fromPretrained',
      'fromVisionQformerTextConfigs',
      'Blip2VisionModel.fromPretrained',
      'Blip2QFormerModel.fromPretrained',
      'getImageFeatures',
      'getQformerFeatures',
      'getTextFeatures',
      'labels',
      'languageModel',
    ])
      expect(
        blocks.some((b) => b.code.includes(name)),
        name,
      ).toBe(true);
  });

  it.each(blocks.map((b, i) => [`${i + 1}: ${b.heading}`, b] as const))('%s', (_name, block) =>
    runExample(block, `example-${blocks.indexOf(block)}.ts`),
  );
});

describe('docs/reliability.md examples', () => {
  it.each(reliability.map((b, i) => [`${i + 1}: ${b.heading}`, b] as const))('%s', (_name, block) =>
    runExample(block, `reliability-${reliability.indexOf(block)}.ts`),
  );
});

async function runExample(block: Example, name: string): Promise<void> {
  expect(block.prints.length).toBeGreaterThan(0);
  // the source entry stands in for the built package
  const code = block.code.replaceAll(
    "from '@blip2/sdk'",
    `from ${JSON.stringify(join(packageDir, 'src/index.ts'))}`,
  );
  const file = join(scratch, name);
  writeFileSync(file, code);
  const logged: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    logged.push(args.map(String).join(' '));
  });
  try {
    await import(/* @vite-ignore */ pathToFileURL(file).href);
  } finally {
    spy.mockRestore();
  }
  expect(logged).toEqual(block.prints);
}
