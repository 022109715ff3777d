/**
 * Loading a checkpoint: config -> graphs (built in TypeScript over the weights in
 * place) -> sessions on the chosen backend. Each class of ./models.ts asks for the
 * parts it needs; the image side (vision + Q-Former) and the language model are
 * independent so that, e.g., Blip2VisionModel never builds OPT.
 */
import { type Blip2Config, generationDefaultsFromModelConfig, parseBlip2Config } from '@blip2/configs';
import {
  type GenerationOptions,
  generationOptionsFromConfig,
  registeredLanguageModels,
} from '@blip2/generation';
import {
  GraphBuildError,
  isQ4BlockSize,
  type KvLoadOptions,
  MODULES,
  type ModelDType,
  type ModuleName,
  PACKED_OPS,
  parseQuantizationManifest,
  type Q4BlockSize,
  QUANTIZATION_FILE,
  type QuantizationManifest,
  type WeightLookup,
  withPackedWeights,
} from '@blip2/onnx';
import { buildQFormer } from '@blip2/qformer';
import type { WeightIndex } from '@blip2/safetensors';
import { type Backend, type BuiltGraph, isObject, type Session } from '@blip2/tensor';
import { buildVisionModel } from '@blip2/vision-encoder';
import { SdkError } from '../errors.js';
import type { ProgressCallback } from '../sources/progress.js';
import {
  type DTypeOption,
  describeDTypes,
  HALF_CHECKPOINT_CPU_DTYPE,
  isHalfCheckpoint,
  planQuantization,
  resolveDTypes,
  sameDTypes,
} from './dtype.js';
import { type LanguageModelModule, requireModule } from './families.js';
import { checkFromPretrainedOptions } from './option-names.js';
import { type BackendChoice, type ModelFiles, platform, type SourceOptions } from './platform.js';
import { type Blip2Processor, loadProcessor } from './processor.js';
import { type RecordingLookup, recordUse, unusedWeights } from './weights.js';

export interface FromPretrainedOptions extends SourceOptions, BackendChoice {
  /**
   * Weight format per module: `fp32 | fp16 | q8 | q4 | q4f16`, one for all, or e.g.
   * `{ vision: 'fp16', language_model: 'q4' }` (unnamed modules fp32). Default: fp32 for
   * a checkpoint (f16/bf16 weights widened at session creation), the exported dtypes
   * for a `blip2 export` folder. A plain checkpoint asked for another dtype is
   * quantized once into the cache (Node) or into memory (browsers), see
   * docs/backends.md for which op each dtype runs.
   */
  readonly dtype?: DTypeOption;
  /** Replaces the language-model module chosen from `text_config.model_type`. */
  readonly languageModel?: LanguageModelModule;
  /**
   * Passed to the language-model module's load: `batchedStep` ('lazy' | 'eager' | 'never')
   * chooses when the weight-first graph for steps of several rows (beams) is loaded; the
   * default follows the backend's capabilities.
   */
  readonly languageModelOptions?: KvLoadOptions;
  /** Notices that are not errors (unused weights, a device fallback); default console.warn. */
  readonly onWarning?: (message: string) => void;
}

export interface LoadedParts {
  readonly files: ModelFiles;
  readonly config: Blip2Config;
  readonly weights: WeightIndex;
  readonly backend: Backend;
  readonly graphs: Map<string, BuiltGraph>;
  readonly sessions: Map<string, Session>;
  readonly languageModel?: {
    readonly module: LanguageModelModule;
    readonly adapter: Awaited<ReturnType<LanguageModelModule['load']>>;
  };
  readonly processor?: Blip2Processor;
  /** The weight format each module runs in: the export's (quantization.json), else what was asked (fp32 by default). */
  readonly dtypes: Readonly<Record<ModuleName, ModelDType>>;
  readonly generationDefaults: GenerationOptions;
  /** where each token default came from (`generation_config.json`, `config.json text_config.eos_token_id`, ...) */
  readonly generationSources: GenerationSources;
  readonly rawConfig: unknown;
}

/** The source of each token id generation starts and stops with, by generation_config.json key. */
export type GenerationSources = Readonly<Record<string, string>>;

/**
 * generation_config.json when the checkpoint has one; otherwise what transformers then
 * uses, `GenerationConfig.from_model_config(config)` (the text config's token ids).
 * A file that says `_from_model_config: true` was itself derived from the model config:
 * transformers 4.27-4.40 wrote such files without any token id for BLIP-2 (its top-level
 * config has none) and generated through the language model, whose own generation config
 * came from `text_config`. The token fields such a file lacks come from the model config.
 */
export function generationDefaultsOf(
  genJson: unknown,
  rawConfig: unknown,
  config: Blip2Config,
  location: string,
): { defaults: GenerationOptions; sources: GenerationSources } {
  const derived = generationDefaultsFromModelConfig(rawConfig, config, `${location}/config.json`);
  // sources name the file within the checkpoint; errors keep the full path
  const inFolder = (source: string) => source.replace(`${location}/`, '');
  if (genJson === undefined) {
    return {
      defaults: generationOptionsFromConfig(derived.json, `${location}/config.json (from_model_config)`),
      sources: Object.fromEntries(Object.entries(derived.sources).map(([k, v]) => [k, inFolder(v)])),
    };
  }
  const file = `${location}/generation_config.json`;
  const stored = genJson as Record<string, unknown>;
  const sources: Record<string, string> = Object.fromEntries(
    Object.entries(stored)
      .filter(([k, v]) => k.endsWith('token_id') && v !== null)
      .map(([k]) => [k, 'generation_config.json']),
  );
  let json = stored;
  if (stored !== null && typeof stored === 'object' && stored._from_model_config === true) {
    for (const [k, v] of Object.entries(derived.json)) {
      if (stored[k] != null) continue;
      json = { ...json, [k]: v };
      sources[k] =
        `${inFolder(derived.sources[k as keyof typeof derived.sources] ?? '')} (generation_config.json is _from_model_config without it)`;
    }
  }
  return { defaults: generationOptionsFromConfig(json, file), sources };
}

export type Part = 'vision' | 'qformer' | 'languageModel' | 'processor';

export async function loadParts(
  source: string,
  parts: readonly Part[],
  options: FromPretrainedOptions = {},
): Promise<LoadedParts> {
  // before any file is fetched: a misspelt option would otherwise be ignored
  checkFromPretrainedOptions(options, 'fromPretrained options');
  const p = platform();
  const files = await p.openSource(source, options);
  const rawConfig = await files.readJson('config.json');
  const modelType = (rawConfig as { model_type?: unknown })?.model_type;
  // a file that is no JSON object at all is named as such by the parser
  if (modelType !== 'blip-2' && isObject(rawConfig)) {
    throw new SdkError(
      'E_MODEL_TYPE',
      `${files.location}/config.json: model_type is ${JSON.stringify(modelType)}; blip2-ts runs 'blip-2' checkpoints (language models: ${registeredLanguageModels().join(', ')})`,
    );
  }
  const config = parseBlip2Config(rawConfig, `${files.location}/config.json`, {
    textConfig: options.languageModel,
  });
  const module =
    options.languageModel ?? requireModule(config.textConfig.modelType, `${files.location}/config.json`);
  const manifestJson = await files.readJson(QUANTIZATION_FILE, true);
  let manifest =
    manifestJson === undefined
      ? undefined
      : parseQuantizationManifest(manifestJson, `${files.location}/${QUANTIZATION_FILE}`);
  if (manifest && options.dtype !== undefined && !sameDTypes(resolveDTypes(options.dtype), manifest.dtype)) {
    throw new SdkError(
      'E_DTYPE',
      `${files.location} was exported as ${describeDTypes(manifest.dtype)}; dtype ${describeDTypes(resolveDTypes(options.dtype))} was asked (export the original checkpoint again to change it)`,
    );
  }
  // the processor's files are small and checked against config.json here, before any
  // weight is opened or session created
  const processor = parts.includes('processor')
    ? checkProcessorFits(
        await loadProcessor(files, config, module.paddingSide, p.decodeImage),
        config,
        files.location,
      )
    : undefined;
  const backend = await p.createBackend(options);
  let weights = await files.openWeights();
  let dtypes: Record<ModuleName, ModelDType>;
  try {
    const fallback =
      options.dtype === undefined && p.quantizeWeights ? defaultDType(weights, backend) : 'fp32';
    if (!manifest && fallback !== 'fp32') {
      (options.onWarning ?? console.warn)(
        `blip2: ${files.location} stores half-precision weights, which the CPU computes on only widened to float32 (a private copy); loading them as ${fallback}, quantized once into the cache (dtype: 'fp32' keeps them exact)`,
      );
    }
    dtypes = manifest ? manifest.dtype : resolveDTypes(options.dtype, fallback);
    checkBackendRuns(backend, dtypes);
  } catch (e) {
    await weights.close();
    throw e;
  }
  const progress: ProgressCallback | undefined = options.onProgress;

  if (!manifest) {
    // packed tensors without the file that says what they are: a folder copied without it
    const packed = [...weights.tensors.keys()].find((n) => /\.(q4|q8)$/.test(n));
    if (packed) {
      await weights.close();
      throw new SdkError(
        'E_PACKED_WEIGHT',
        `${files.location}: holds packed weights ('${packed}') but no ${QUANTIZATION_FILE}, which says how they were packed; copy the whole exported folder`,
      );
    }
  }
  let graphs: Map<string, BuiltGraph>;
  let recorder: RecordingLookup;
  let lmGraphs: Record<string, BuiltGraph> | undefined;
  try {
    if (!manifest && MODULES.some((m) => dtypes[m] !== 'fp32')) {
      const plan = planQuantization(
        weights,
        weightRoles(config, module, weights),
        dtypes,
        files.location,
        preferredQ4Block(backend),
      );
      if (plan.changes) {
        if (!p.quantizeWeights) {
          throw new SdkError(
            'E_DTYPE',
            `${files.location}: dtype ${describeDTypes(dtypes)} needs the weights quantized, which this platform does not do at load; load a folder written by \`blip2 export --dtype ...\``,
          );
        }
        const quantized = await p.quantizeWeights(plan, weights, options);
        await weights.close();
        weights = quantized;
        manifest = plan.manifest;
      }
    }
    if (manifest) checkQ4Blocks(manifest, backend, files.location);
    recorder = recordUse(weights);
    const lookup = lookupFor(recorder.lookup, manifest, backend);
    ({ graphs, lmGraphs } = buildGraphs(config, module, lookup, parts));
  } catch (e) {
    const error = weightError(e, files.location);
    await weights.close();
    throw error;
  }
  let n = 0;
  for (const g of graphs.values())
    progress?.({ phase: 'build', graph: g.name, done: ++n, total: graphs.size });

  if (parts.includes('vision') && parts.includes('qformer') && parts.includes('languageModel')) {
    const unused = unusedWeights(weights, recorder.used);
    if (unused.length) {
      (options.onWarning ?? console.warn)(
        `blip2: ${unused.length} weight(s) of ${files.location} are not used by the model: ${unused.slice(0, 10).join(', ')}${unused.length > 10 ? ', ...' : ''}`,
      );
    }
  }

  const sessions = new Map<string, Session>();
  let loaded = 0;
  const loadOne = async (key: string, g: BuiltGraph) => {
    if (options.signal?.aborted) throw new SdkError('E_ABORTED', 'loading was aborted');
    sessions.set(key, await backend.load(g, { signal: options.signal }));
    progress?.({ phase: 'load', graph: g.name, done: ++loaded, total: graphs.size });
  };
  try {
    for (const key of ['vision', 'qformer']) {
      const g = graphs.get(key);
      if (g) await loadOne(key, g);
    }
    let languageModel: LoadedParts['languageModel'];
    if (lmGraphs) {
      // the image side's own shards can go before the language model's are fetched (a
      // browser would otherwise hold every shard at once, beside the copies in wasm memory)
      backend.clearWeightCache?.(Object.values(lmGraphs).flatMap((g) => g.externalData.map((f) => f.uri)));
      const adapter = await module.load(config.textConfig, lmGraphs, backend, options.languageModelOptions);
      loaded += Object.keys(lmGraphs).length;
      progress?.({
        phase: 'load',
        graph: `language_model (${module.modelType})`,
        done: loaded,
        total: graphs.size,
      });
      languageModel = { module, adapter };
    }
    // onnxruntime-web copied the weights into its own memory: drop the fetched bytes
    // rather than hold a second copy for the model's lifetime (a graph loaded later,
    // e.g. the vision model with every hidden state, fetches again)
    backend.clearWeightCache?.();
    const genJson = await files.readJson('generation_config.json', true);
    const generation = generationDefaultsOf(genJson, rawConfig, config, files.location);
    return {
      files,
      config,
      weights,
      backend,
      graphs,
      sessions,
      languageModel,
      processor,
      dtypes: manifest?.dtype ?? dtypes,
      generationDefaults: generation.defaults,
      generationSources: generation.sources,
      rawConfig,
    };
  } catch (e) {
    await Promise.all([...sessions.values()].map((s) => s.release()));
    await weights.close();
    throw e;
  }
}

/**
 * A processor whose tokenizer or image size disagrees with config.json would hand the
 * model ids past its embedding rows (a Gather out of range deep in onnxruntime) or
 * pixels of the wrong size: refused by name at load.
 */
function checkProcessorFits(
  processor: Blip2Processor,
  config: Blip2Config,
  location: string,
): Blip2Processor {
  const vocab = config.textConfig.vocabSize;
  if (processor.tokenizer.vocabSize > vocab) {
    throw new SdkError(
      'E_INPUT',
      `${location}/tokenizer.json has ids up to ${processor.tokenizer.vocabSize - 1}, past config.json text_config.vocab_size (${vocab}): the language model has no embedding for them`,
    );
  }
  const { height, width } = processor.imageProcessor.options.size;
  const side = config.visionConfig.imageSize;
  if (processor.imageProcessor.options.doResize && (height !== side || width !== side)) {
    throw new SdkError(
      'E_INPUT',
      `${location}: the image processor resizes to ${height}x${width} but config.json vision_config.image_size is ${side}`,
    );
  }
  return processor;
}

/** How the graphs use each weight (a linear's, or other), from building them all once over the checkpoint. */
export function weightRoles(
  config: Blip2Config,
  module: LanguageModelModule,
  weights: WeightIndex,
): RecordingLookup['roles'] {
  const probe = recordUse(weights);
  buildGraphs(config, module, probe.lookup, ['vision', 'qformer', 'languageModel']);
  return probe.roles;
}

/** The graphs of `parts` over `lookup`: the image side's two and the language model's. */
function buildGraphs(
  config: Blip2Config,
  module: LanguageModelModule,
  lookup: WeightLookup,
  parts: readonly Part[],
): { graphs: Map<string, BuiltGraph>; lmGraphs?: Record<string, BuiltGraph> } {
  const graphs = new Map<string, BuiltGraph>();
  if (parts.includes('vision')) graphs.set('vision', buildVisionModel(config.visionConfig, lookup));
  if (parts.includes('qformer')) {
    graphs.set(
      'qformer',
      buildQFormer(config.qformerConfig, lookup, {
        numQueryTokens: config.numQueryTokens,
        languageProjection: true,
      }),
    );
  }
  let lmGraphs: Record<string, BuiltGraph> | undefined;
  if (parts.includes('languageModel')) {
    lmGraphs = module.build(config.textConfig, lookup);
    for (const [k, g] of Object.entries(lmGraphs)) graphs.set(`lm.${k}`, g);
  }
  return { graphs, lmGraphs };
}

/**
 * A dtype whose op the backend says it lacks (its open `capabilities` record,
 * `{ MatMulNBits: false }`) and that has no other form (PACKED_OPS) is refused before
 * anything loads; absent means supported.
 */
/**
 * The dtype of a checkpoint loaded without one: fp32, except a half-precision
 * checkpoint on a backend whose int8 products are fast (`fastInt8Linears`: the CPU
 * provider), which gets HALF_CHECKPOINT_CPU_DTYPE (q8). Those kernels compute in
 * float32 only, so fp32 would widen every weight into a private copy (twice the file
 * in memory); q8 maps a quarter of the float32 bytes and runs the image side and
 * decode faster (measured, docs/backends.md).
 */
function defaultDType(weights: WeightIndex, backend: Backend): ModelDType {
  return backend.capabilities.fastInt8Linears === true && isHalfCheckpoint(weights)
    ? HALF_CHECKPOINT_CPU_DTYPE
    : 'fp32';
}

/** The q4 block a backend runs fastest (its `capabilities.q4BlockSizes`, first), among the ones q4 packs in. */
function preferredQ4Block(backend: Backend): Q4BlockSize {
  const first = backend.capabilities.q4BlockSizes?.[0];
  return isQ4BlockSize(first) ? first : 32;
}

/** A folder whose q4 blocks the backend does not multiply right is refused, naming a weight, its block and the way out. */
function checkQ4Blocks(manifest: QuantizationManifest, backend: Backend, location: string): void {
  const runs = backend.capabilities.q4BlockSizes ?? [32];
  for (const [name, e] of Object.entries(manifest.weights)) {
    if (e.format === 'q8' || e.block_size === undefined || runs.includes(e.block_size)) continue;
    throw new SdkError(
      'E_DTYPE',
      `${location}: q4 weight '${name}' is packed in blocks of ${e.block_size}; backend '${backend.name}' multiplies blocks of ${runs.join(' or ')} only (onnxruntime-web's WebGPU MatMulNBits gets blocks of 128 wrong, docs/browser.md): export the checkpoint again with --q4-block ${runs[0]}, or load it on another backend`,
    );
  }
}

function checkBackendRuns(backend: Backend, dtypes: Readonly<Record<string, string>>): void {
  const caps = backend.capabilities;
  for (const [mod, d] of Object.entries(dtypes)) {
    const form = PACKED_OPS[d as keyof typeof PACKED_OPS];
    if (form && caps[form.op] === false && !form.fallback) {
      throw new SdkError(
        'E_DTYPE',
        `dtype '${d}' (${mod}) runs com.microsoft.${form.op}, which backend '${backend.name}' cannot run; use fp32, fp16 or q8 there`,
      );
    }
  }
}

/** The builder's view of the weights: packed ones by their names, float16 compute where the backend computes in it. */
function lookupFor(
  base: WeightLookup,
  manifest: QuantizationManifest | undefined,
  backend: Backend,
): WeightLookup {
  const lookup = manifest ? withPackedWeights(base, manifest) : base;
  const caps = backend.capabilities;
  const lackingOps = Object.values(PACKED_OPS)
    .map((f) => f.op)
    .filter((op) => caps[op] === false);
  const float16Compute = caps.computeDtypes.includes('float16');
  if (!float16Compute && lackingOps.length === 0) return lookup;
  return {
    ...lookup,
    ...(float16Compute ? { float16Compute } : {}),
    ...(lackingOps.length ? { lackingOps } : {}),
  };
}

/**
 * The graph builder names an absent or mis-shaped weight (GraphBuildError); users
 * get the SDK's code for it, with the checkpoint named.
 */
function weightError(e: unknown, location: string): unknown {
  if (!GraphBuildError.isInstance(e)) return e;
  if (e.code === 'E_MISSING_WEIGHT')
    return new SdkError('E_MISSING_WEIGHT', `${location}: ${e.message}`, { cause: e });
  if (e.code === 'E_WEIGHT_SHAPE')
    return new SdkError('E_WEIGHT_SHAPE', `${location}: ${e.message}`, { cause: e });
  if (e.code === 'E_PACKED_WEIGHT')
    return new SdkError('E_PACKED_WEIGHT', `${location}: ${e.message}`, { cause: e });
  return e;
}

export async function releaseParts(parts: LoadedParts): Promise<void> {
  await Promise.all([...parts.sessions.values()].map((s) => s.release()));
  await parts.languageModel?.adapter.release();
  await parts.weights.close();
}
