/**
 * `blip2 caption` and `blip2 ask`: images (and questions) through Blip2ForConditionalGeneration.
 * They run the same steps as `model.caption` / `model.ask` (the ask prompt and decoding are
 * the family's paper protocol unless overridden), but
 * keep the token ids and the time each step took for `--json`.
 */
import type { GenerationOptions } from '@blip2/generation';
import { Blip2ForConditionalGeneration, vqaGenerationOptions } from '../core/models.js';
import { readTextArgument } from './argv.js';
import { UsageError } from './errors.js';
import type { Io } from './io.js';
import {
  BACKEND,
  backendChoice,
  COMMON,
  DTYPE_HELP,
  GENERATION,
  generationOptions,
  list,
  type OptionSpec,
  parse,
  required,
} from './options.js';
import { progressBar } from './progress.js';
import { isVqaOnlyModel, VQA_ONLY_NOTE } from './shipped.js';

const SHARED = `
  --backend node|web      onnxruntime-node (default) or onnxruntime-web (wasm)
  --device D              node: cpu|cuda|tensorrt|dml|coreml; web: wasm|webgpu|webnn
${DTYPE_HELP}
  --num-beams N           beam search with N beams
  --max-new-tokens N      generate at most N tokens
  --min-new-tokens N      no end of sequence before N tokens
  --max-input-tokens N    T5: refuse encoder inputs (queries + prompt) over N tokens (default 2048)
  --length-penalty X      beam scores divided by length ** X
  --repetition-penalty X  penalize tokens already in the sequence
  --do-sample             sample instead of searching (with --temperature, --top-k, --top-p)
  --temperature X         divide the logits by X before sampling (> 0)
  --top-k N               sample among the N most likely tokens (0: all)
  --top-p X               sample among the most likely tokens whose probabilities sum to X (0 < X <= 1)
  --seed N                seed of the sampler: the same seed gives the same text
  --json                  print {"text", "tokens", "timings"} (one line per answer)
  --verbose               show stacks of errors`;

export const CAPTION_USAGE = `usage: blip2 caption --model M --image I [--image I2 ...] [--prompt P] [options]
       blip2 caption --model M [options] I [I2 ...]
  Captions images (or continues the prompt P, e.g. "a photo of"). With several
  images, each line is the image, a tab, and its caption.
  --model M               checkpoint folder, URL or Hugging Face hub id
  --image I               image file (png, jpeg, webp, ...); repeat it, or list images after the options
  --prompt P              text to continue
  --prompt-file F         the prompt from file F ('-': standard input), one trailing newline dropped${SHARED}`;

export const ASK_USAGE = `usage: blip2 ask --model M --image I --question Q [--question Q2 ...] [options]
  Answers questions about images with the paper's zero-shot VQA protocol of the
  model's family (its prompt, 5 beams, length penalty -1, up to 10 new tokens). Every question
  is asked about every image; with more than one pair, each line is the image, the
  question and the answer, separated by tabs.
  --model M               checkpoint folder, URL or Hugging Face hub id
  --image I               image file; repeat it, or list images after the options
  --question Q            the question; repeat it to ask several
  --question-file F       questions from file F ('-': standard input), one per line, blank lines skipped${SHARED}`;

export interface GenerateResult {
  /** with several images or questions: which pair the line answers */
  readonly image?: string;
  readonly question?: string;
  readonly text: string;
  /** why the text may not be what it seems (a VQA-only model's caption, an empty text) */
  readonly warnings?: string[];
  /** the generated ids (T5: the decoder sequence, starting with its start token) */
  readonly tokens: number[];
  /** milliseconds */
  readonly timings: { load: number; preprocess: number; generate: number; total: number };
}

export async function loadModel(
  source: string,
  options: Parameters<typeof Blip2ForConditionalGeneration.fromPretrained>[1],
  io: Io,
): Promise<Blip2ForConditionalGeneration> {
  const bar = progressBar(io.stderr);
  try {
    return await Blip2ForConditionalGeneration.fromPretrained(source, {
      ...options,
      onProgress: bar.onProgress,
      onWarning: (m) => {
        bar.done();
        io.stderr.write(`${m}\n`);
      },
    });
  } finally {
    bar.done();
  }
}

/** Preprocess, generate, decode: what `caption`/`ask` do inside, with the ids kept. */
export async function generateText(
  model: Blip2ForConditionalGeneration,
  image: string,
  prompt: string | undefined,
  options: GenerationOptions,
): Promise<{ text: string; tokens: number[]; preprocess: number; generate: number }> {
  const t0 = performance.now();
  const inputs = await model.processor.process(
    prompt === undefined ? { images: [image] } : { images: [image], text: [prompt] },
  );
  const t1 = performance.now();
  const { pixelValues, inputIds, attentionMask } = inputs;
  if (!pixelValues) throw new Error('the processor returned no pixel values');
  const out = await model.generate({ pixelValues, inputIds, attentionMask }, options);
  const t2 = performance.now();
  const tokens = out.sequences[0];
  // T5's decoder sequence starts with decoder_start_token_id, which is not text
  const text = model.processor
    .decode(model.config.isEncoderDecoder ? tokens.slice(1) : tokens, { skipSpecialTokens: true })
    .trim();
  return { text, tokens, preprocess: t1 - t0, generate: t2 - t1 };
}

/** `model.ask` of one question, its prompt and decoding from the paper protocol, through `generateText`. */
export async function askText(
  model: Blip2ForConditionalGeneration,
  image: string,
  question: string,
  options: GenerationOptions,
): Promise<{ text: string; tokens: number[]; preprocess: number; generate: number }> {
  const vqa = model.vqaSettings('paper');
  return generateText(model, image, vqa.prompt.replace('{}', question), {
    ...vqaGenerationOptions(vqa),
    ...options,
  });
}

export async function captionOrAsk(
  command: 'caption' | 'ask',
  args: readonly string[],
  io: Io,
): Promise<number> {
  const usage = command === 'caption' ? CAPTION_USAGE : ASK_USAGE;
  const extra: OptionSpec =
    command === 'caption'
      ? { prompt: { type: 'string' }, 'prompt-file': { type: 'string' } }
      : { question: { type: 'string', multiple: true }, 'question-file': { type: 'string', multiple: true } };
  const { values, positionals } = parse(
    args,
    {
      ...COMMON,
      ...BACKEND,
      ...GENERATION,
      model: { type: 'string' },
      image: { type: 'string', multiple: true },
      ...extra,
    },
    usage,
    Number.POSITIVE_INFINITY,
  );
  if (values.help) {
    io.stdout.write(`${usage}\n`);
    return 0;
  }
  const source = required(values, 'model', usage);
  const images = [...list(values, 'image'), ...positionals];
  if (images.length === 0) throw new UsageError('--image is required', usage);
  if (values.prompt !== undefined && values['prompt-file'] !== undefined)
    throw new UsageError('give --prompt or --prompt-file, not both', usage);
  if (typeof values['prompt-file'] === 'string')
    values.prompt = readTextOption(values['prompt-file'], 'prompt-file', usage).replace(/\r?\n$/, '');
  const questionLines = list(values, 'question-file').flatMap((f) => {
    const lines = readTextOption(f, 'question-file', usage)
      .split(/\r?\n/)
      .filter((line) => line.trim() !== '');
    if (lines.length === 0) throw new UsageError(`--question-file ${f}: holds no question`, usage);
    return lines;
  });
  const questions = command === 'ask' ? [...list(values, 'question'), ...questionLines] : [undefined];
  if (questions.length === 0) throw new UsageError('--question is required', usage);
  if (questions.some((q) => q === '')) throw new UsageError('--question must not be empty', usage);
  const gen = generationOptions(values, usage);
  const choice = backendChoice(values, usage);

  const start = performance.now();
  const model = await loadModel(source, choice, io);
  try {
    const load = performance.now() - start;
    const several = images.length * questions.length > 1;
    const noted = new Set<string>();
    for (const image of images) {
      for (const question of questions) {
        const result =
          question === undefined
            ? await generateText(model, image, values.prompt as string | undefined, gen)
            : await askText(model, image, question, gen);
        const warnings = [
          ...(question === undefined && isVqaOnlyModel(source)
            ? [`${source} is ${VQA_ONLY_NOTE}; for captions use shapes-blip2-opt-captioner beside it`]
            : []),
          ...(result.text === ''
            ? [
                `the model generated no text${several ? ` for ${image}` : ''} (token ids ${JSON.stringify(result.tokens)}: only special tokens)`,
              ]
            : []),
        ];
        const output: GenerateResult = {
          ...(several ? { image, ...(question === undefined ? {} : { question }) } : {}),
          text: result.text,
          ...(warnings.length ? { warnings } : {}),
          tokens: result.tokens,
          timings: {
            load: round(load),
            preprocess: round(result.preprocess),
            generate: round(result.generate),
            total: round(performance.now() - start),
          },
        };
        if (values.json) {
          io.stdout.write(`${JSON.stringify(output)}\n`);
          continue;
        }
        // a note about the model is said once, not once per image
        for (const w of warnings.filter((n) => !noted.has(n))) {
          noted.add(w);
          io.stderr.write(`blip2 ${command}: note: ${w}\n`);
        }
        if (several) {
          io.stdout.write(
            `${[image, ...(question === undefined ? [] : [question]), output.text].join('\t')}\n`,
          );
        } else if (output.text !== '') {
          // an empty text is said on stderr above, not printed as a blank line
          io.stdout.write(`${output.text}\n`);
        }
      }
    }
    return 0;
  } finally {
    await model.dispose();
  }
}

export function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function readTextOption(path: string, flag: string, usage: string): string {
  const read = readTextArgument(path, flag);
  if ('problem' in read) throw new UsageError(read.problem, usage);
  return read.text;
}
