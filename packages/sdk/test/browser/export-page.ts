/**
 * Page script of browser-export.test.ts: an exported (quantized) folder loaded by URL
 * through `@blip2/sdk/browser`, as an application would, and run on one fixture case.
 */
import { Blip2ForConditionalGeneration, configureWebRuntime } from '@blip2/sdk/browser';
import { float32, int64 } from '@blip2/tensor';
import type { ErrorResult, PlainTensor } from './page.js';

export interface ExportCaseRequest {
  readonly modelUrl: string;
  readonly device: 'webgpu' | 'wasm';
  /** quantize at load (a float32 folder); absent: the folder's own dtypes */
  readonly dtype?: string;
  readonly pixelValues: PlainTensor;
  readonly inputIds: number[];
  /** T5's teacher-forced decoder ids for the logits */
  readonly decoderInputIds?: number[];
  readonly maxNewTokens: number;
}

export interface ExportCaseResult {
  readonly backend: string;
  readonly logits: PlainTensor;
  readonly tokens: number[][];
  readonly warnings: string[];
}

configureWebRuntime({ wasmPaths: `${location.origin}/ort/` });

async function runExport(req: ExportCaseRequest): Promise<ExportCaseResult> {
  const warnings: string[] = [];
  const model = await Blip2ForConditionalGeneration.fromPretrained(req.modelUrl, {
    device: req.device,
    ...(req.dtype ? { dtype: req.dtype as 'q4' } : {}),
    onWarning: (m) => warnings.push(m),
  });
  try {
    const pixelValues = float32(req.pixelValues.dims, req.pixelValues.data);
    const inputIds = int64([1, req.inputIds.length], req.inputIds);
    const decoderInputIds = req.decoderInputIds
      ? int64([1, req.decoderInputIds.length], req.decoderInputIds)
      : undefined;
    const { logits } = await model.forward({
      pixelValues,
      inputIds,
      ...(decoderInputIds ? { decoderInputIds } : {}),
    });
    const out = await model.generate(
      { pixelValues, inputIds },
      { maxNewTokens: req.maxNewTokens, doSample: false },
    );
    return {
      backend: model.backendName,
      logits: { dims: [...logits.dims], data: Array.from(logits.data) },
      tokens: out.sequences,
      warnings,
    };
  } finally {
    await model.dispose();
  }
}

/** The typed error a load (or the first run) fails with, as plain data. */
async function exportError(modelUrl: string, options: Record<string, unknown>): Promise<ErrorResult | null> {
  try {
    const model = await Blip2ForConditionalGeneration.fromPretrained(modelUrl, options);
    await model.dispose();
    return null;
  } catch (e) {
    const err = e as Error & { code?: string };
    return { name: err.name, ...(err.code !== undefined ? { code: err.code } : {}), message: err.message };
  }
}

const g = globalThis as unknown as Record<string, unknown>;
g.runExport = runExport;
g.exportError = exportError;
