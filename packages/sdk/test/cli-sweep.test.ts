/**
 * The hostile-input sweep of the `blip2` command: every command probed with missing files,
 * folders where files belong, empty files, FIFOs (root ignores chmod; a FIFO is what would
 * block a reader), symbolic-link loops, broken checkpoint files, huge, negative and
 * non-numeric values. Each probe must end in our one-line message on stderr, exit 2 for
 * usage and 1 for runtime, within seconds, and never with a Node stack. Tiny fixtures only.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtures } from '@blip2/fixtures';
import { build } from 'tsup';
import { beforeAll, describe, expect, it } from 'vitest';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const IMAGE = join(fixtures.images, 'small_47x31.png');
const TINY = fixtures.tinyOpt;
let cli = '';
let dir = '';
const at = (name: string) => join(dir, name);

/** A copy of the tiny OPT checkpoint with one file replaced. */
function brokenCheckpoint(name: string, file: string, text: string): void {
  cpSync(TINY, at(name), { recursive: true });
  writeFileSync(join(at(name), file), text);
}

beforeAll(async () => {
  const cache = join(pkg, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const outDir = mkdtempSync(join(cache, 'blip2-sweep-'));
  await build({
    config: false,
    entry: { cli: join(pkg, 'src', 'cli.ts') },
    format: ['esm'],
    target: 'es2022',
    outDir,
    silent: true,
  });
  cli = join(outDir, 'cli.js');

  dir = mkdtempSync(join(tmpdir(), 'blip2-sweep-'));
  mkdirSync(at('empty-dir'));
  writeFileSync(at('empty.png'), '');
  writeFileSync(at('empty.txt'), '');
  execFileSync('mkfifo', [at('fifo')]);
  symlinkSync(at('loop-b'), at('loop-a'));
  symlinkSync(at('loop-a'), at('loop-b'));
  const config = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8'));
  brokenCheckpoint('empty-config', 'config.json', '');
  brokenCheckpoint('config-array', 'config.json', '[]');
  brokenCheckpoint(
    'huge-width',
    'config.json',
    JSON.stringify({ ...config, vision_config: { ...config.vision_config, hidden_size: 1e15 } }),
  );
  brokenCheckpoint(
    'infinite-eps',
    'config.json',
    JSON.stringify({
      ...config,
      vision_config: { ...config.vision_config, layer_norm_eps: '__INF__' },
    }).replace('"__INF__"', '1e999'),
  );
  brokenCheckpoint(
    'eos-outside',
    'config.json',
    JSON.stringify({ ...config, text_config: { ...config.text_config, eos_token_id: 100000 } }),
  );
  brokenCheckpoint('empty-weights', 'model.safetensors', '');
  brokenCheckpoint('short-header', 'model.safetensors', 'abc');
  brokenCheckpoint(
    'bad-tokenizer',
    'tokenizer.json',
    '{"model": {"type": "BPE", "vocab": [], "merges": []}}',
  );
  brokenCheckpoint('bad-generation', 'generation_config.json', '{"num_beams": 0}');
  brokenCheckpoint(
    'bad-preprocessor',
    'preprocessor_config.json',
    '{"size": {"height": 100000, "width": 32}}',
  );
  // files of a checkpoint that are no regular files: each read would block or never end
  const special = (name: string, file: string, make: (path: string) => void) => {
    cpSync(TINY, at(name), { recursive: true });
    rmSync(join(at(name), file));
    make(join(at(name), file));
  };
  special('fifo-weights', 'model.safetensors', (p) => execFileSync('mkfifo', [p]));
  special('folder-weights', 'model.safetensors', (p) => mkdirSync(p));
  special('zero-weights', 'model.safetensors', (p) => symlinkSync('/dev/zero', p));
  special('fifo-tokenizer', 'tokenizer.json', (p) => execFileSync('mkfifo', [p]));
  special('fifo-config', 'config.json', (p) => execFileSync('mkfifo', [p]));
  return () => {
    rmSync(outDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  };
}, 120_000);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function blip2(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: pkg });
    child.stdin.end();
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    // a probe that hangs (a FIFO read, a wait on nothing) fails here, not at vitest's timeout
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const caption = (...rest: string[]) => ['caption', '--model', TINY, '--image', IMAGE, ...rest];
const onModel = (name: string) => ['caption', '--model', at(name), '--image', IMAGE];

/** [probe, args, exit code, what stderr's first line says] */
const PROBES: [string, () => string[], 1 | 2, RegExp][] = [
  // models
  ['a missing model folder', () => ['caption', '--model', at('nope'), '--image', IMAGE], 1, /nope/],
  ['a file as the model', () => ['caption', '--model', IMAGE, '--image', IMAGE], 1, /small_47x31\.png/],
  [
    'an empty folder as the model',
    () => ['caption', '--model', at('empty-dir'), '--image', IMAGE],
    1,
    /config\.json/,
  ],
  [
    'a symlink loop as the model',
    () => ['caption', '--model', at('loop-a'), '--image', IMAGE],
    1,
    /loop-a|ELOOP/,
  ],
  ['a FIFO as the model', () => ['inspect', '--model', at('fifo')], 1, /fifo/],
  ['an empty config.json', () => onModel('empty-config'), 1, /config\.json: not valid JSON/],
  ['a config.json holding a list', () => onModel('config-array'), 1, /config\.json: expected a JSON object/],
  [
    'a width of 1e15',
    () => onModel('huge-width'),
    1,
    /vision_config\.hidden_size must be within ±2147483647/,
  ],
  [
    'an epsilon of 1e999',
    () => onModel('infinite-eps'),
    1,
    /vision_config\.layer_norm_eps: expected a number, got Infinity/,
  ],
  [
    'an eos id past the vocabulary',
    () => onModel('eos-outside'),
    1,
    /text_config\.eos_token_id \(100000\) is not a token id/,
  ],
  ['an empty model.safetensors', () => onModel('empty-weights'), 1, /model\.safetensors/],
  ['a 3-byte model.safetensors', () => onModel('short-header'), 1, /model\.safetensors/],
  [
    'a tokenizer.json with a list as vocab',
    () => onModel('bad-tokenizer'),
    1,
    /tokenizer\.json model \(BPE\): "vocab" must be an object/,
  ],
  [
    'num_beams 0 in generation_config.json',
    () => onModel('bad-generation'),
    1,
    /generation_config\.json: num_beams must be an integer in \[1, /,
  ],
  [
    'a 100000-pixel resize',
    () => onModel('bad-preprocessor'),
    1,
    /size\.height must be an integer in \[1, 4096\]/,
  ],
  ['a FIFO as model.safetensors', () => onModel('fifo-weights'), 1, /model\.safetensors: not a regular file/],
  [
    'a folder as model.safetensors',
    () => onModel('folder-weights'),
    1,
    /model\.safetensors: not a regular file/,
  ],
  [
    '/dev/zero as model.safetensors',
    () => onModel('zero-weights'),
    1,
    /model\.safetensors: not a regular file/,
  ],
  ['a FIFO as tokenizer.json', () => onModel('fifo-tokenizer'), 1, /tokenizer\.json.*not a regular file/],
  [
    'a FIFO as config.json',
    () => ['inspect', '--model', at('fifo-config')],
    1,
    /config\.json.*not a regular file/,
  ],
  ['inspect of a missing folder', () => ['inspect', '--model', at('nope')], 1, /nope/],
  [
    'export into a file',
    () => ['export', '--model', TINY, '--out', IMAGE, '--dtype', 'q8'],
    1,
    /small_47x31\.png/,
  ],
  [
    'export of a missing model',
    () => ['export', '--model', at('nope'), '--out', at('exported'), '--dtype', 'q8'],
    1,
    /nope/,
  ],
  ['parity of an empty folder', () => ['parity', at('empty-dir')], 1, /empty-dir/],
  // images
  ['a folder as the image', () => ['caption', '--model', TINY, '--image', at('empty-dir')], 1, /empty-dir/],
  [
    'a FIFO as the image (must not block)',
    () => ['caption', '--model', TINY, '--image', at('fifo')],
    1,
    /fifo.*(regular file|FIFO)/i,
  ],
  ['/dev/zero as the image', () => ['caption', '--model', TINY, '--image', '/dev/zero'], 1, /\/dev\/zero/],
  ['an empty image file', () => ['caption', '--model', TINY, '--image', at('empty.png')], 1, /empty\.png/],
  ['a symlink loop as the image', () => ['caption', '--model', TINY, '--image', at('loop-a')], 1, /loop-a/],
  // text files
  [
    'a FIFO as the prompt file',
    () => caption('--prompt-file', at('fifo')),
    2,
    /--prompt-file .*fifo: not a regular file/,
  ],
  [
    'a folder as the question file',
    () => ['ask', '--model', TINY, '--image', IMAGE, '--question-file', at('empty-dir')],
    2,
    /not a regular file/,
  ],
  [
    'a symlink loop as the prompt file',
    () => caption('--prompt-file', at('loop-a')),
    2,
    /--prompt-file .*loop-a: ELOOP/,
  ],
  [
    'an empty question file',
    () => ['ask', '--model', TINY, '--image', IMAGE, '--question-file', at('empty.txt')],
    2,
    /--question-file .*empty\.txt: holds no question/,
  ],
  // numbers
  [
    'a negative beam count',
    () => caption('--num-beams', '-1'),
    2,
    /--num-beams must be an integer >= 1, got -1/,
  ],
  ['a beam count past safe integers', () => caption('--num-beams', '99999999999999999999'), 2, /--num-beams/],
  [
    'a beam count no memory holds',
    () => caption('--num-beams', '100000000'),
    1,
    /numBeams 100000000 .* above the limit/,
  ],
  ['a word as a number', () => caption('--max-new-tokens', 'many'), 2, /--max-new-tokens/],
  [
    'a zero input cap',
    () => caption('--max-input-tokens', '0'),
    2,
    /--max-input-tokens must be an integer >= 1, got 0/,
  ],
  ['NaN as a temperature', () => caption('--do-sample', '--temperature', 'NaN'), 2, /--temperature/],
  ['Infinity as top-p', () => caption('--top-p', 'Infinity'), 2, /--top-p/],
  ['a negative seed', () => caption('--do-sample', '--seed', '-5'), 2, /--seed/],
  ['an unknown dtype', () => caption('--dtype', 'q3'), 2, /q3/],
  ['an unknown device', () => caption('--device', 'tpu'), 2, /tpu/],
  ['bench with a negative batch list', () => ['bench', '--small', '--batches', '-1'], 2, /--batches/],
  ['bench with an unknown figure', () => ['bench', '--small', '--figures', 'warp'], 2, /warp/],
];

describe('blip2 under hostile input: a typed message, the right exit code, no stack', () => {
  it.each(PROBES)('%s', async (_name, args, code, says) => {
    const r = await blip2(args());
    expect(r.signal, r.stderr).toBeNull();
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // runtime errors: `blip2: <message>`; usage errors: `blip2 <command>: <message>`
    expect(r.stderr, r.stderr).toMatch(/^blip2( [a-z]+)?: /);
    expect(r.stderr.split('\n')[0]).toMatch(says);
    expect(r.code, r.stderr).toBe(code);
    expect(r.stdout).toBe('');
  });
});
