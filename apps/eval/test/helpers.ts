/**
 * Shared test helpers. `runShapesVal` is the shape the end-to-end checks take once the SDK lands:
 * give it a real `VqaAnswerer` for shapes-blip2-opt / -t5 and compare against the reference.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import type { VqaProtocol, VqaSettings } from '@blip2/generation';
import { LANGUAGE_MODELS } from '@blip2/sdk';
import { build, type Options as TsupOptions } from 'tsup';
import type { GenerationSettings, VqaAnswerer, VqaItem } from '../src/answerer.js';
import { type RunOptions, type RunOutcome, runEvaluation } from '../src/run.js';
import type { VqaResult } from '../src/vqa-eval.js';

export const shapes = {
  questions: join(fixtures.shapesVal, 'questions.json'),
  annotations: join(fixtures.shapesVal, 'annotations.json'),
  images: join(fixtures.shapesVal, 'images'),
  hfPredictions: (family: 'opt' | 't5') => join(fixtures.shapesVal, `hf_predictions_${family}.json`),
};

export type Decoding = 'greedy' | 'beam5_lavis';
type Family = 'opt' | 't5';

/** The reference's generation settings for each recorded decoding (lengths, beams, penalty). */
export const DECODINGS: Record<Decoding, Omit<GenerationSettings, 'eosTokenIds' | 'paddingSide'>> = {
  greedy: { numBeams: 1, maxNewTokens: 10, minNewTokens: 0, lengthPenalty: 1 },
  beam5_lavis: { numBeams: 5, maxNewTokens: 10, minNewTokens: 1, lengthPenalty: -1 },
};

/**
 * What transformers ran for hf_predictions_*.json, every setting explicit so no protocol default
 * leaks in: the family's training prompt, the checkpoint's generation_config.json EOS,
 * transformers' padding side (OPT left, T5 right), the questions as written.
 */
export const AS_RECORDED: Record<
  Family,
  { prompt: string; eosTokenIds: number[]; paddingSide: 'left' | 'right' }
> = {
  opt: { prompt: 'Question: {} Answer:', eosTokenIds: [configEos(fixtures.shapesOpt)], paddingSide: 'left' },
  t5: {
    prompt: 'Question: {} Short answer:',
    eosTokenIds: [configEos(fixtures.shapesT5)],
    paddingSide: 'right',
  },
};

function configEos(dir: string): number {
  return JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')).eos_token_id;
}

function family(answerer: VqaAnswerer): Family {
  if (answerer.family !== 'opt' && answerer.family !== 't5')
    throw new Error(`no reference for ${answerer.family}`);
  return answerer.family;
}

export function hfPredictions(family: Family): Record<Decoding, { accuracy: number; results: VqaResult[] }> {
  return JSON.parse(readFileSync(shapes.hfPredictions(family), 'utf8'));
}

/**
 * Runs the shapes-vqa val set (200 questions, as the reference did: no question preprocessing,
 * batches of 50) and reports how many answers equal the reference's.
 */
export async function runShapesVal(
  answerer: VqaAnswerer,
  decoding: Decoding,
  extra: Partial<RunOptions> = {},
): Promise<{
  outcome: RunOutcome;
  reference: { accuracy: number; results: VqaResult[] };
  sameAnswers: number;
}> {
  const { prompt, ...recorded } = AS_RECORDED[family(answerer)];
  const outcome = await runEvaluation({
    answerer,
    questionsPath: shapes.questions,
    annotationsPath: shapes.annotations,
    imagesDir: shapes.images,
    prompt,
    questionPreprocess: 'none',
    generation: { ...DECODINGS[decoding], ...recorded },
    batchSize: 50,
    ...extra,
  });
  const reference = hfPredictions(family(answerer))[decoding];
  const ref = new Map(reference.results.map((r) => [r.question_id, r.answer]));
  const sameAnswers = outcome.results.filter((r) => ref.get(r.question_id) === r.answer).length;
  return { outcome, reference, sameAnswers };
}

/**
 * Bundles the `vqa-eval` executable from the TypeScript sources of this app and of every
 * @blip2 package (their `source` export condition), so a child-process test runs the code under
 * test rather than whatever `dist/` folders were last built. Third-party packages (onnxruntime,
 * sharp, tokenizers: native binaries) stay external, imported by absolute path because the
 * bundle lives in a temporary folder with no node_modules of its own.
 */
export async function buildCliFromSources(): Promise<string> {
  const outDir = tempDir();
  const thirdPartyByPath: NonNullable<TsupOptions['esbuildPlugins']>[number] = {
    name: 'third-party-by-absolute-path',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.path.startsWith('node:') || args.path.startsWith('@blip2/') || args.pluginData?.inner)
          return;
        const found = await b.resolve(args.path, {
          kind: args.kind,
          resolveDir: args.resolveDir,
          importer: args.importer,
          pluginData: { inner: true },
        });
        if (found.errors.length > 0 || found.external) return;
        return { path: found.path, external: true };
      });
    },
  };
  await build({
    entry: { cli: join(import.meta.dirname, '..', 'src', 'cli.ts') },
    outDir,
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    dts: false,
    silent: true,
    config: false,
    noExternal: [/^@blip2\//],
    esbuildOptions(o) {
      o.conditions = ['source'];
    },
    esbuildPlugins: [thirdPartyByPath],
  });
  return join(outDir, 'cli.js');
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'vqa-eval-test-'));
}

/** Stop-token ids the fake's "tokenizer" gives: OPT's vocabulary for "\n", generation_config's EOS. */
export const FAKE_TOKEN_IDS = { newline: 50118, eos: { opt: 2, t5: 1 } } as const;

/**
 * A deterministic stand-in for a model: its answer is a fixed function of the prompt and image,
 * for testing the run mechanics only (it knows nothing about the pictures). Its protocols are the
 * family package's presets, resolved with FAKE_TOKEN_IDS.
 */
export class FakeAnswerer implements VqaAnswerer {
  readonly model = 'fake-model';
  readonly backend = 'test:none';
  readonly calls: VqaItem[][] = [];
  readonly settings: GenerationSettings[] = [];
  closed = false;
  constructor(
    readonly family: Family = 'opt',
    private readonly hooks: { beforeBatch?: (n: number) => void | Promise<void> } = {},
  ) {}

  vqaSettings(protocol: VqaProtocol): VqaSettings {
    const { stopOn, ...preset } = LANGUAGE_MODELS[this.family]!.vqaPresets[protocol];
    const eos = stopOn === 'eos' ? FAKE_TOKEN_IDS.eos[this.family] : FAKE_TOKEN_IDS.newline;
    if (stopOn !== 'eos' && stopOn.text !== '\n') throw new Error(`the fake cannot tokenize ${stopOn.text}`);
    return { ...preset, eosTokenIds: [eos] };
  }

  async answer(
    items: readonly VqaItem[],
    settings: GenerationSettings,
    signal?: AbortSignal,
  ): Promise<string[]> {
    await this.hooks.beforeBatch?.(this.calls.length);
    signal?.throwIfAborted();
    this.calls.push([...items]);
    this.settings.push(settings);
    return items.map((it) => fakeAnswer(it));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const WORDS = ['yes', 'no', ' red ', 'blue', '2', 'circle', 'three'];

export function fakeAnswer(item: VqaItem): string {
  let h = 2166136261;
  for (const ch of `${item.imagePath}|${item.prompt}`) h = Math.imul(h ^ ch.codePointAt(0)!, 16777619) >>> 0;
  return WORDS[h % WORDS.length]!;
}
