/**
 * Page script of browser.test.ts, written as an application would use the SDK:
 * `@blip2/sdk/browser`, a model by URL (or hub id), onnxruntime-web's files served
 * at /ort/. Each function registered on globalThis returns plain JSON so the test
 * (in Node) can compare it with the reference.
 */

import { generationOptionsFromConfig } from '@blip2/generation';
import {
  Blip2ForConditionalGeneration,
  Blip2VisionModel,
  configureWebRuntime,
  type LoadProgress,
} from '@blip2/sdk/browser';
import { float32, int64, type Tensor } from '@blip2/tensor';

export interface PlainTensor {
  readonly dims: number[];
  readonly data: number[];
}

export interface CaseRequest {
  readonly modelUrl: string;
  readonly device: 'webgpu' | 'wasm';
  readonly pixelValues: PlainTensor;
  readonly inputIds: number[];
  /** generate kwargs as transformers recorded them, by record name */
  readonly generations: Record<string, Record<string, unknown>>;
  /** the case's image file, for the real path: decode, preprocess, caption */
  readonly imageUrl: string;
}

export interface CaseResult {
  readonly backend: string;
  readonly logits: PlainTensor;
  readonly generated: Record<string, number[][]>;
  /** what the processor made of the image in this browser */
  readonly processedPixelValues: PlainTensor;
  readonly captionTokens: number[];
  readonly caption: string;
  readonly progress: LoadProgress[];
  readonly warnings: string[];
}

export interface ErrorResult {
  readonly name: string;
  readonly code?: string;
  readonly message: string;
}

// onnxruntime-web looks for its .wasm/.mjs next to its own script by default; a
// bundled page has to say where they are served.
configureWebRuntime({ wasmPaths: `${location.origin}/ort/` });

const plain = (t: Tensor): PlainTensor => ({
  dims: [...t.dims],
  data: Array.from(t.data as Float32Array),
});

async function runCase(req: CaseRequest): Promise<CaseResult> {
  const progress: LoadProgress[] = [];
  const warnings: string[] = [];
  const model = await Blip2ForConditionalGeneration.fromPretrained(req.modelUrl, {
    backend: 'web',
    device: req.device,
    onProgress: (e) => progress.push(e),
    onWarning: (m) => warnings.push(m),
  });
  try {
    const pixelValues = float32(req.pixelValues.dims, req.pixelValues.data);
    const inputIds = int64([1, req.inputIds.length], req.inputIds);
    const { logits } = await model.forward({ pixelValues, inputIds });

    const generated: Record<string, number[][]> = {};
    for (const [name, kwargs] of Object.entries(req.generations)) {
      const out = await model.generate({ pixelValues, inputIds }, generationOptionsFromConfig(kwargs, name));
      generated[name] = out.sequences;
    }

    // the real path: the browser decodes the PNG, the processor resizes and normalizes it
    const image = await (await fetch(req.imageUrl)).blob();
    const processed = await model.processor.process({ images: image });
    if (!processed.pixelValues) throw new Error('the processor returned no pixel values');
    const captionOut = await model.generate({ pixelValues: processed.pixelValues });
    const caption = await model.caption(req.imageUrl);
    return {
      backend: model.backendName,
      logits: plain(logits),
      generated,
      processedPixelValues: plain(processed.pixelValues),
      captionTokens: captionOut.sequences[0],
      caption,
      progress,
      warnings,
    };
  } finally {
    await model.dispose();
  }
}

/** The vision model from a model URL relative to the page. */
async function runVision(modelUrl: string, pixels: PlainTensor): Promise<{ lastHiddenState: PlainTensor }> {
  const model = await Blip2VisionModel.fromPretrained(modelUrl, { device: 'wasm' });
  try {
    const out = await model.forward(float32(pixels.dims, pixels.data));
    return { lastHiddenState: plain(out.lastHiddenState) };
  } finally {
    await model.dispose();
  }
}

/** Loads from a hub id (against a test endpoint) and answers case 0's question. */
async function runHub(
  source: string,
  endpoint: string,
  token: string | undefined,
  imageUrl: string,
  question: string,
): Promise<{ backend: string; answer: string }> {
  const model = await Blip2ForConditionalGeneration.fromPretrained(source, {
    endpoint,
    ...(token ? { token } : {}),
    device: 'wasm',
  });
  try {
    return { backend: model.backendName, answer: await model.ask(imageUrl, question) };
  } finally {
    await model.dispose();
  }
}

/** The typed error a load fails with, as plain data. */
async function loadError(source: string, options: Record<string, unknown>): Promise<ErrorResult | null> {
  try {
    const model = await Blip2ForConditionalGeneration.fromPretrained(source, options);
    await model.dispose();
    return null;
  } catch (e) {
    const err = e as Error & { code?: string };
    return {
      name: err.name,
      ...(err.code !== undefined ? { code: err.code } : {}),
      message: err.message,
    };
  }
}

const g = globalThis as unknown as Record<string, unknown>;
g.runCase = runCase;
g.runVision = runVision;
g.runHub = runHub;
g.loadError = loadError;
