/**
 * `blip2 inspect --model M`: what a checkpoint is without running it: the config
 * summary, the parameter count and dtypes from the safetensors headers, the files,
 * and the weights the graphs would miss or leave unused (the graphs are built,
 * which reads only headers; no session is created).
 */
import { type Blip2Config, parseBlip2Config, parseImageProcessorConfig } from '@blip2/configs';
import type { Sourced } from '@blip2/generation';
import { buildQFormer } from '@blip2/qformer';
import { MissingWeightError } from '@blip2/safetensors';
import { buildVisionModel } from '@blip2/vision-encoder';
import { requireModule } from '../core/families.js';
import { type GenerationSources, generationDefaultsOf } from '../core/load.js';
import { platform } from '../core/platform.js';
import { recordUse, unusedWeights } from '../core/weights.js';
import { SdkError } from '../errors.js';
import type { ProgressCallback } from '../sources/progress.js';
import { displayPath, type Io } from './io.js';
import { COMMON, parse, required } from './options.js';
import { progressBar } from './progress.js';

export const INSPECT_USAGE = `usage: blip2 inspect --model M [--json]
  Config summary, parameter count, dtypes, files, and missing or unexpected weights
  of a checkpoint (folder, URL or hub id), from its config and safetensors headers.`;

export interface InspectReport {
  readonly location: string;
  readonly languageModel: string;
  readonly config: Record<string, unknown>;
  readonly parameters: number;
  /** parameters per safetensors dtype */
  readonly dtypes: Record<string, number>;
  readonly files: { name: string; bytes: number }[];
  /** why a part's graph cannot be built (the first weight it misses, or a wrong shape) */
  readonly missing: { part: string; problem: string }[];
  /** weights no graph uses (published checkpoints carry a few, e.g. the Q-Former's text-side layers) */
  readonly unexpected: string[];
  /** what a run will use where checkpoints differ, each with the file and field it came from */
  readonly uses: InspectUses;
}

export type { Sourced };

export interface InspectUses {
  /** the feed-forward activation (ACT2FN name; T5: of `wi` / `wi_0`, "gated" when `wi_1` multiplies it) */
  readonly activation: Sourced<string>;
  /** the token(s) generation stops on; null: none (generation runs to its length limit) */
  readonly eosTokenId: Sourced<number | number[] | null>;
  readonly bosTokenId: Sourced<number | null>;
  readonly padTokenId: Sourced<number | null>;
  /** T5: the first decoder token */
  readonly decoderStartTokenId?: Sourced<number>;
  /** the size images are resized to, [height, width] */
  readonly imageSize: Sourced<[number, number]>;
}

function summary(config: Blip2Config, text: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const v = config.visionConfig;
  const q = config.qformerConfig;
  return {
    vision: {
      hiddenSize: v.hiddenSize,
      layers: v.numHiddenLayers,
      heads: v.numAttentionHeads,
      imageSize: v.imageSize,
      patchSize: v.patchSize,
    },
    qformer: {
      hiddenSize: q.hiddenSize,
      layers: q.numHiddenLayers,
      heads: q.numAttentionHeads,
      crossAttentionFrequency: q.crossAttentionFrequency,
    },
    numQueryTokens: config.numQueryTokens,
    imageTokenIndex: config.imageTokenIndex ?? null,
    text,
  };
}

function sourced<T>(value: T | undefined, sources: GenerationSources, key: string): Sourced<T | null> {
  return value === undefined ? { value: null, source: 'unset' } : { value, source: sources[key] ?? 'unset' };
}

export async function inspectModel(source: string, onProgress?: ProgressCallback): Promise<InspectReport> {
  const files = await platform().openSource(source, { onProgress });
  const rawConfig = await files.readJson('config.json');
  const modelType = (rawConfig as { model_type?: unknown })?.model_type;
  if (modelType !== 'blip-2') {
    throw new SdkError(
      'E_MODEL_TYPE',
      `${files.location}/config.json: model_type is ${JSON.stringify(modelType)}, not 'blip-2'`,
    );
  }
  const config = parseBlip2Config(rawConfig, `${files.location}/config.json`);
  // sources name files within the checkpoint (its location heads the report)
  const configFile = 'config.json';
  const generation = generationDefaultsOf(
    await files.readJson('generation_config.json', true),
    rawConfig,
    config,
    files.location,
  );
  const preName = ['processor_config.json', 'preprocessor_config.json'];
  let imageSize: Sourced<[number, number]> = {
    value: [config.visionConfig.imageSize, config.visionConfig.imageSize],
    source: `${configFile} vision_config.image_size (no processor file)`,
  };
  for (const name of preName) {
    const pre = await files.readJson(name, true);
    if (pre === undefined) continue;
    const { size } = parseImageProcessorConfig(pre, `${files.location}/${name}`);
    imageSize = { value: [size.height, size.width], source: `${name} size` };
    break;
  }
  const rawText = ((rawConfig as { text_config?: unknown }).text_config ?? {}) as Record<string, unknown>;
  const d = generation.defaults;
  const module = requireModule(config.textConfig.modelType, `${files.location}/config.json`);
  const lm = module.summary(config.textConfig, rawText, configFile);
  const decoderStart = lm.decoderStartTokenId;
  const uses: InspectUses = {
    activation: lm.activation,
    eosTokenId: sourced(d.eosTokenId, generation.sources, 'eos_token_id'),
    bosTokenId: sourced(d.bosTokenId, generation.sources, 'bos_token_id'),
    padTokenId: sourced(d.padTokenId, generation.sources, 'pad_token_id'),
    ...(decoderStart ? { decoderStartTokenId: decoderStart } : {}),
    imageSize,
  };
  const weights = await files.openWeights();
  try {
    const dtypes: Record<string, number> = {};
    let parameters = 0;
    for (const info of weights.tensors.values()) {
      const n = info.shape.reduce((a, b) => a * b, 1);
      parameters += n;
      dtypes[info.dtype] = (dtypes[info.dtype] ?? 0) + n;
    }
    const recorder = recordUse(weights);
    const missing: InspectReport['missing'] = [];
    const parts: [string, () => unknown][] = [
      ['vision_model', () => buildVisionModel(config.visionConfig, recorder.lookup)],
      [
        'qformer',
        () =>
          buildQFormer(config.qformerConfig, recorder.lookup, {
            numQueryTokens: config.numQueryTokens,
            languageProjection: true,
          }),
      ],
      ['language_model', () => module.build(config.textConfig, recorder.lookup)],
    ];
    for (const [part, build] of parts) {
      try {
        build();
      } catch (e) {
        // only a checkpoint that does not fit the model is reported; anything else is a real failure
        if (!MissingWeightError.isInstance(e) && typeof (e as { code?: unknown }).code !== 'string') throw e;
        missing.push({ part, problem: (e as Error).message });
      }
    }
    return {
      location: files.location,
      languageModel: module.modelType,
      config: summary(config, lm.text),
      parameters,
      dtypes,
      files: weights.files.map((f) => ({ name: f.name, bytes: f.size })),
      missing,
      // with a part missing, its weights look unused: list unused ones only for a complete build
      unexpected: missing.length ? [] : unusedWeights(weights, recorder.used),
      uses,
    };
  } finally {
    await weights.close();
  }
}

export async function inspect(args: readonly string[], io: Io): Promise<number> {
  const { values } = parse(args, { ...COMMON, model: { type: 'string' } }, INSPECT_USAGE);
  if (values.help) {
    io.stdout.write(`${INSPECT_USAGE}\n`);
    return 0;
  }
  const source = required(values, 'model', INSPECT_USAGE);
  const bar = progressBar(io.stderr);
  let report: InspectReport;
  try {
    report = await inspectModel(source, bar.onProgress);
  } finally {
    bar.done();
  }
  if (values.json) {
    io.stdout.write(`${JSON.stringify(report)}\n`);
    return report.missing.length ? 1 : 0;
  }
  const c = report.config as {
    vision: object;
    qformer: object;
    text: object;
    numQueryTokens: number;
    imageTokenIndex: number | null;
  };
  const kv = (o: object) =>
    Object.entries(o)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  const lines = [
    `${displayPath(report.location)}: BLIP-2 with ${report.languageModel.toUpperCase()}`,
    `  vision     ${kv(c.vision)}`,
    `  qformer    ${kv(c.qformer)}, queries ${c.numQueryTokens}, <image> token ${c.imageTokenIndex ?? 'none (queries prepended)'}`,
    `  text       ${kv(c.text)}`,
    'uses',
    ...Object.entries(report.uses).map(
      ([k, u]: [string, Sourced<unknown>]) =>
        `  ${k.padEnd(20)} ${k === 'imageSize' ? (u.value as number[]).join(' x ') : typeof u.value === 'string' ? u.value : JSON.stringify(u.value)}  (${u.source})`,
    ),
    `parameters   ${report.parameters.toLocaleString('en-US')} (${Object.entries(report.dtypes)
      .map(([d, n]) => `${d} ${n.toLocaleString('en-US')}`)
      .join(', ')})`,
    'files',
    ...report.files.map((f) => `  ${f.name} ${f.bytes.toLocaleString('en-US')} bytes`),
    report.missing.length ? 'missing weights' : 'missing weights: none',
    ...report.missing.map((m) => `  ${m.part}: ${m.problem}`),
    report.unexpected.length
      ? `unexpected weights (${report.unexpected.length}, unused by the model)`
      : 'unexpected weights: none',
    ...report.unexpected.map((n) => `  ${n}`),
  ];
  io.stdout.write(`${lines.join('\n')}\n`);
  return report.missing.length ? 1 : 0;
}
