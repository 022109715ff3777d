/**
 * A model fixture folder: a checkpoint with `reference.json` + `reference.safetensors`
 * (tiny-blip2-opt, tiny-blip2-t5), replayed through the SDK's public models.
 *
 * The stored `case{i}/pixel_values` are PIL's preprocessing (the same bytes as the
 * images fixture's `<image>/pil/<size>`), not transformers 5's torchvision processor
 * (`processor_pixel_maxdiff`, ~0.015 away). So the SDK's processor is checked against
 * them at the pixel tolerance, and the stored pixels, not ours, feed the model: each
 * model tensor is then judged on the model alone.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generationOptionsFromConfig } from '@blip2/generation';
import type { WeightIndex } from '@blip2/safetensors';
import { int64, reshape, type Tensor } from '@blip2/tensor';
import type { DTypeOption } from '../core/dtype.js';
import { loadParts } from '../core/load.js';
import { Blip2ForConditionalGeneration } from '../core/models.js';
import type { BackendChoice } from '../core/platform.js';
import { SdkError } from '../errors.js';
import type { ProgressCallback } from '../sources/progress.js';
import { openSafetensorsFile, readJson } from './files.js';
import { type ParityReport, PIXEL_TOLERANCE, ReportBuilder, SCORE_TOLERANCE } from './report.js';

interface ReferenceCase {
  readonly key: string;
  readonly image: string;
  readonly prompt: string;
  readonly input_ids: number[];
  /** encoder-decoder only: the decoder ids the stored logits were computed for */
  readonly decoder_input_ids?: number[];
}

interface GenerateRecord {
  readonly name: string;
  readonly kwargs: Record<string, unknown>;
  readonly new: number[][];
  readonly sequences_scores?: number[];
  /** batch records: the padded prompts */
  readonly input_ids?: number[][];
  readonly attention_mask?: number[][];
}

interface ReferenceJson {
  readonly model: string;
  readonly cases: ReferenceCase[];
  readonly generate: GenerateRecord[];
}

export interface ModelParityOptions extends BackendChoice {
  /** the weight format per module (default fp32): replays the fixture on quantized weights */
  readonly dtype?: DTypeOption;
  /** where a plain checkpoint quantized at load is kept (default: the SDK's cache) */
  readonly cacheDir?: string;
  /** where the cases' image files are (default: the `images` folder beside the model folder) */
  readonly imagesDir?: string;
  readonly onProgress?: ProgressCallback;
}

/** The SDK model plus the one thing parity needs that the public API keeps inside: the T5 encoder's output. */
class FixtureModel extends Blip2ForConditionalGeneration {
  static async open(dir: string, options: ModelParityOptions & { onWarning: (m: string) => void }) {
    return new FixtureModel(
      await loadParts(dir, ['vision', 'qformer', 'languageModel', 'processor'], options),
    );
  }

  /** transformers' `language_model.encoder(inputs_embeds=...)`.last_hidden_state, or undefined for decoder-only models. */
  async t5EncoderLastHiddenState(
    languageModelInputs: Tensor<'float32'>,
    inputIds: Tensor<'int64'>,
  ): Promise<Tensor<'float32'> | undefined> {
    const lm = this.parts.languageModel;
    if (!lm?.module.encoderLastHiddenState) return undefined;
    const mask = int64(inputIds.dims, new Array(inputIds.data.length).fill(1));
    const { inputsEmbeds, attentionMask } = await this.mergeInputs(languageModelInputs, inputIds, mask);
    return lm.module.encoderLastHiddenState(lm.adapter, inputsEmbeds, attentionMask);
  }
}

export async function modelParity(dir: string, options: ModelParityOptions = {}): Promise<ParityReport> {
  const report = new ReportBuilder('model', dir);
  const json = await readJson<ReferenceJson>(join(dir, 'reference.json'));
  const imagesDir = options.imagesDir ?? join(dirname(dir), 'images');
  const reference = await openSafetensorsFile(join(dir, 'reference.safetensors'));
  let model: FixtureModel | undefined;
  try {
    model = await FixtureModel.open(dir, {
      ...options,
      onWarning: (m) => {
        report.warnings.push(m);
        options.onWarning?.(m);
      },
    });
    for (const [i, c] of json.cases.entries())
      await replayCase(model, reference, imagesDir, `case${i}`, c, report);
    await replayGenerate(model, reference, json, report);
    return report.finish(model.backendName);
  } finally {
    await model?.dispose();
    await reference.close();
  }
}

async function ref(reference: WeightIndex, name: string): Promise<Tensor> {
  if (!reference.has(name)) {
    throw new SdkError('E_MISSING_FILE', `reference.safetensors has no tensor '${name}'`);
  }
  return reference.read(name);
}

async function replayCase(
  model: FixtureModel,
  reference: WeightIndex,
  imagesDir: string,
  name: string,
  c: ReferenceCase,
  report: ReportBuilder,
): Promise<void> {
  const stored = await ref(reference, `${name}/pixel_values`);
  const pixelValues = reshape(stored, [1, ...stored.dims]) as Tensor<'float32'>;

  const imagePath = join(imagesDir, c.image);
  if (!existsSync(imagePath)) {
    throw new SdkError(
      'E_MISSING_FILE',
      `${imagePath}: the image of ${name} is missing (give the images folder with --images / imagesDir)`,
    );
  }
  const processed = await model.processor.process({ images: imagePath, text: c.prompt });
  if (!processed.pixelValues || !processed.inputIds)
    throw new SdkError('E_INPUT', `${name}: the processor gave no output`);
  report.tensor(name, 'processor_pixel_values', processed.pixelValues, stored, PIXEL_TOLERANCE);
  report.equal(name, 'input_ids', [...processed.inputIds.data].map(Number), c.input_ids);

  const inputIds = int64([1, c.input_ids.length], c.input_ids);
  const { languageModelInputs, visionOutputs, qformerOutputs } =
    await model.getLanguageModelInputs(pixelValues);
  report.tensor(
    name,
    'vision_last_hidden_state',
    visionOutputs.lastHiddenState,
    await ref(reference, `${name}/vision_last_hidden_state`),
  );
  report.tensor(
    name,
    'vision_pooler_output',
    visionOutputs.poolerOutput,
    await ref(reference, `${name}/vision_pooler_output`),
  );
  report.tensor(
    name,
    'qformer_last_hidden_state',
    qformerOutputs.lastHiddenState,
    await ref(reference, `${name}/qformer_last_hidden_state`),
  );
  report.tensor(
    name,
    'language_projection',
    languageModelInputs,
    await ref(reference, `${name}/language_projection`),
  );

  const encoderState = await model.t5EncoderLastHiddenState(languageModelInputs, inputIds);
  if (encoderState) {
    report.tensor(
      name,
      't5_encoder_last_hidden_state',
      encoderState,
      await ref(reference, `${name}/t5_encoder_last_hidden_state`),
    );
  }

  const decoderInputIds = c.decoder_input_ids && int64([1, c.decoder_input_ids.length], c.decoder_input_ids);
  const { logits } = await model.forward({ pixelValues, inputIds, decoderInputIds });
  report.tensor(name, 'logits', logits, await ref(reference, `${name}/logits`));
}

/** Every `generate` record: the call's kwargs on top of generation_config.json, as transformers merged them. */
async function replayGenerate(
  model: FixtureModel,
  reference: WeightIndex,
  json: ReferenceJson,
  report: ReportBuilder,
): Promise<void> {
  for (const record of json.generate) {
    const kwargs = generationOptionsFromConfig(record.kwargs, `reference.json ${record.name} kwargs`);
    let inputs: { pixelValues: Tensor; inputIds: Tensor<'int64'>; attentionMask?: Tensor<'int64'> };
    const caseIndex = /^case(\d+)\//.exec(record.name)?.[1];
    if (caseIndex !== undefined) {
      const c = json.cases[Number(caseIndex)];
      if (!c)
        throw new SdkError('E_INPUT', `reference.json: ${record.name} names a case that does not exist`);
      const stored = await ref(reference, `case${caseIndex}/pixel_values`);
      inputs = {
        pixelValues: reshape(stored, [1, ...stored.dims]),
        inputIds: int64([1, c.input_ids.length], c.input_ids),
      };
    } else if (record.name.startsWith('batch/')) {
      const { input_ids: ids, attention_mask: mask } = record;
      if (!ids || !mask)
        throw new SdkError('E_INPUT', `reference.json: ${record.name} has no input_ids/attention_mask`);
      const dims = [ids.length, ids[0].length];
      inputs = {
        pixelValues: await ref(reference, 'batch/pixel_values'),
        inputIds: int64(dims, ids.flat()),
        attentionMask: int64(dims, mask.flat()),
      };
    } else {
      throw new SdkError(
        'E_INPUT',
        `reference.json: generate record '${record.name}' is neither case<i>/... nor batch/...`,
      );
    }
    const out = await model.generate(inputs, kwargs);
    const match = JSON.stringify(out.sequences) === JSON.stringify(record.new);
    let scoreDiff: number | undefined;
    if (record.sequences_scores) {
      const ours = out.sequencesScores;
      scoreDiff =
        ours && ours.length === record.sequences_scores.length
          ? Math.max(...record.sequences_scores.map((s, i) => Math.abs(s - ours[i])))
          : Number.POSITIVE_INFINITY;
    }
    report.generate.push({
      name: record.name,
      match,
      expected: record.new,
      got: out.sequences,
      ...(scoreDiff === undefined ? {} : { scoreDiff }),
      ok: match && (scoreDiff === undefined || scoreDiff <= SCORE_TOLERANCE),
    });
  }
}
