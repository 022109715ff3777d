/**
 * Model sources (Node): a local folder, an http(s) URL of a folder, or a Hugging
 * Face hub id `org/name[@revision]`. Remote ones are brought into a cache folder
 * first (resumable, verified, with progress), so everything downstream reads
 * files: onnxruntime-node maps the weights from disk.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, realpath } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { readJsonFile } from '@blip2/configs/node';
import type { SourceOptions } from '../core/platform.js';
import { SdkError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { download, type FetchOptions, probe, type RemoteFile } from './download.js';
import type { ProgressCallback } from './progress.js';

/** `SourceOptions` as the Node resolver takes them, plus the `fetch` it downloads with (tests pass one). */
export interface ModelSourceOptions extends SourceOptions {
  readonly fetch?: typeof fetch;
}

export interface ResolvedModel {
  /** the folder holding the model's files (real path) */
  readonly dir: string;
  /** what the user passed */
  readonly source: string;
  readonly kind: 'folder' | 'url' | 'hub';
  /** the commit a hub revision resolved to, when the hub named it */
  readonly commit?: string;
}

/** Files a BLIP-2 checkpoint folder holds; `required` ones must exist. */
const SMALL_FILES: { name: string; required: boolean }[] = [
  { name: 'config.json', required: true },
  { name: 'generation_config.json', required: false },
  { name: 'tokenizer.json', required: true },
  { name: 'tokenizer_config.json', required: false },
  { name: 'special_tokens_map.json', required: false },
  { name: 'preprocessor_config.json', required: false },
  { name: 'processor_config.json', required: false },
  { name: 'model.safetensors.index.json', required: false },
  // a `blip2 export` folder: which weights are packed how
  { name: 'quantization.json', required: false },
];

const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@([\w./-]+))?$/;

export function defaultCacheDir(): string {
  return process.env.BLIP2_CACHE ?? join(homedir(), '.cache', 'blip2-ts');
}

/** A Hugging Face hub cache snapshot of `org/name` at `revision`, when one is on disk. */
function hubCacheSnapshot(org: string, name: string, revision: string): string | undefined {
  const hubs = [
    process.env.HF_HUB_CACHE,
    process.env.HF_HOME && join(process.env.HF_HOME, 'hub'),
    join(homedir(), '.cache', 'huggingface', 'hub'),
  ].filter((x): x is string => Boolean(x));
  for (const hub of hubs) {
    const repo = join(hub, `models--${org}--${name}`);
    let rev = revision;
    const ref = join(repo, 'refs', revision);
    if (existsSync(ref)) rev = readFileSync(ref, 'utf8').trim();
    const snap = join(repo, 'snapshots', rev);
    if (existsSync(join(snap, 'config.json'))) return snap;
  }
  return undefined;
}

export async function resolveModel(source: string, options: ModelSourceOptions = {}): Promise<ResolvedModel> {
  if (typeof source !== 'string' || source.length === 0) {
    throw new SdkError(
      'E_SOURCE',
      `model source must be a folder, an http(s) URL or a hub id 'org/name', got ${JSON.stringify(source)}`,
    );
  }
  if (/^https?:\/\//i.test(source)) {
    const base = source.endsWith('/') ? source : `${source}/`;
    const dir = join(
      options.cacheDir ?? defaultCacheDir(),
      `url--${createHash('sha256').update(base).digest('hex').slice(0, 16)}`,
    );
    await fetchModel((f) => new URL(f, base).toString(), dir, { ...options, headers: options.headers });
    return { dir: await realpath(dir), source, kind: 'url' };
  }
  const local = resolve(source);
  if (existsSync(local)) {
    if (!statSync(local).isDirectory())
      throw new SdkError(
        'E_SOURCE',
        `${local} is a file; a model source is the folder that holds config.json`,
      );
    if (!existsSync(join(local, 'config.json')))
      throw new SdkError(
        'E_MISSING_FILE',
        `${local}: no config.json (is this a Hugging Face checkpoint folder?)`,
      );
    return { dir: await realpath(local), source, kind: 'folder' };
  }
  const hub = HUB_ID.exec(source);
  if (!hub || source.startsWith('.') || source.startsWith('/')) {
    throw new SdkError(
      'E_SOURCE',
      `model source '${source}' is not an existing folder, an http(s) URL or a hub id 'org/name[@revision]'`,
    );
  }
  const [, org, name, rev] = hub;
  const revision = rev ?? options.revision ?? 'main';
  const cached = hubCacheSnapshot(org, name, revision);
  if (cached) return { dir: await realpath(cached), source, kind: 'hub' };
  const endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(
    /\/+$/,
    '',
  );
  const token = options.token ?? process.env.HF_TOKEN;
  const headers = { ...(options.headers ?? {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  const repo = join(options.cacheDir ?? defaultCacheDir(), `models--${org}--${name}`);
  const urlAt = (at: string) => (f: string) =>
    `${endpoint}/${org}/${name}/resolve/${encodeURIComponent(at)}/${f}`;
  // A branch or tag moves: resolve it to the commit it names now (the hub's X-Repo-Commit) and
  // cache by commit, so an updated branch is seen and every file comes from that one commit.
  let commit = /^[0-9a-f]{40}$/.test(revision) ? revision : undefined;
  if (!commit) {
    const config = await probe(urlAt(revision)('config.json'), { ...fetchOptionsOf(options), headers });
    if (!config)
      throw new SdkError(
        'E_MISSING_FILE',
        `${urlAt(revision)('config.json')}: not found (HTTP 404); a BLIP-2 checkpoint needs config.json`,
      );
    commit = config.commit;
  }
  const dir = join(repo, 'snapshots', commit ?? revision.replace(/\//g, '--'));
  await fetchModel(urlAt(commit ?? revision), dir, { ...options, headers });
  if (commit && commit !== revision) {
    await mkdir(join(repo, 'refs'), { recursive: true });
    writeFileAtomic(join(repo, 'refs', revision.replace(/\//g, '--')), commit);
  }
  return { dir: await realpath(dir), source, kind: 'hub', ...(commit ? { commit } : {}) };
}

function fetchOptionsOf(options: ModelSourceOptions): FetchOptions {
  return {
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeouts ? { timeouts: options.timeouts } : {}),
  };
}

/** Probes, then downloads the checkpoint's files into `dir`; weights last. */
async function fetchModel(
  urlOf: (file: string) => string,
  dir: string,
  options: ModelSourceOptions,
): Promise<void> {
  const fo = fetchOptionsOf(options);
  const found = new Map<string, RemoteFile>();
  await Promise.all(
    SMALL_FILES.map(async ({ name, required }) => {
      const remote = await probe(urlOf(name), fo);
      if (remote) found.set(name, remote);
      else if (required)
        throw new SdkError(
          'E_MISSING_FILE',
          `${urlOf(name)}: not found (HTTP 404); a BLIP-2 checkpoint needs ${name}`,
        );
    }),
  );
  if (!found.has('preprocessor_config.json') && !found.has('processor_config.json')) {
    throw new SdkError(
      'E_MISSING_FILE',
      `${urlOf('preprocessor_config.json')}: neither preprocessor_config.json nor processor_config.json exists`,
    );
  }
  const progress = makeProgress(options.onProgress);
  const small = [...found.entries()];
  for (const [, r] of small) progress.add(r.size);
  for (const [name, remote] of small)
    await download(remote, join(dir, name), { ...fo, onBytes: progress.bytes(name, remote.size) });

  let weightFiles = ['model.safetensors'];
  if (found.has('model.safetensors.index.json')) {
    const indexPath = join(dir, 'model.safetensors.index.json');
    // the file came from the remote: name its URL, not the cache path
    const index = (await readJsonFile(indexPath, {
      fail: (_fault, _file, reason, cause) =>
        new SdkError('E_SOURCE', `${urlOf('model.safetensors.index.json')}: ${reason}`, { cause }),
    })) as { weight_map?: unknown } | null;
    const map = index?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map))
      throw new SdkError('E_SOURCE', `${urlOf('model.safetensors.index.json')}: weight_map is not an object`);
    weightFiles = [...new Set(Object.values(map as Record<string, unknown>))] as string[];
    for (const f of weightFiles) {
      if (typeof f !== 'string' || !/^[\w.-]+$/.test(f) || f.includes('..'))
        throw new SdkError(
          'E_SOURCE',
          `model.safetensors.index.json names shard ${JSON.stringify(f)}, which is not a plain file name`,
        );
    }
  }
  const weights: [string, RemoteFile][] = [];
  for (const f of weightFiles) {
    const remote = await probe(urlOf(f), fo);
    if (!remote) throw new SdkError('E_MISSING_FILE', `${urlOf(f)}: not found (HTTP 404)`);
    weights.push([f, remote]);
    progress.add(remote.size);
  }
  for (const [name, remote] of weights)
    await download(remote, join(dir, name), { ...fo, onBytes: progress.bytes(name, remote.size) });
}

function makeProgress(cb: ProgressCallback | undefined) {
  let overallTotal = 0;
  const done = new Map<string, number>();
  return {
    add(size: number) {
      overallTotal += size;
    },
    bytes(file: string, total: number) {
      return (loaded: number) => {
        done.set(file, loaded);
        if (!cb) return;
        let overallLoaded = 0;
        for (const v of done.values()) overallLoaded += v;
        cb({ phase: 'download', file, loaded, total, overallLoaded, overallTotal });
      };
    },
  };
}
