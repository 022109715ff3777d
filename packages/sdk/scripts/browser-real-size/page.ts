/**
 * Page script of browser-real-size.mjs: loads the served checkpoint through
 * `@blip2/sdk/browser`, captions one 224x224 image with a few greedy tokens, and
 * reports timings and the memory the page can see (the wasm heap, and
 * `performance.measureUserAgentSpecificMemory` where the page is cross-origin isolated).
 */
import { Blip2ForConditionalGeneration, configureWebRuntime, type LoadProgress } from '@blip2/sdk/browser';

// onnxruntime-web creates its wasm memory when the first session loads: keep a handle
// on every memory created, to read the heap's size (the 4 GiB wasm32 bound) from here.
const memories: WebAssembly.Memory[] = [];
WebAssembly.Memory = new Proxy(WebAssembly.Memory, {
  construct(target, args) {
    const memory = Reflect.construct(target, args) as WebAssembly.Memory;
    memories.push(memory);
    return memory;
  },
});
const heapBytes = () => Math.max(0, ...memories.map((m) => m.buffer.byteLength));

configureWebRuntime({ wasmPaths: `${location.origin}/ort/` });

export interface RunRequest {
  readonly modelUrl: string;
  readonly device: 'wasm' | 'webgpu';
  readonly tokens: number;
  readonly dtype?: string;
}

export interface RunResult {
  readonly backend: string;
  readonly loadMs: number;
  /** generate() called -> first token: image side (ViT + Q-Former) and the prefill */
  readonly firstTokenMs: number;
  /** the later tokens, one decoding step each */
  readonly stepMs: number[];
  readonly tokens: number[];
  readonly text: string;
  readonly heapBytesAfterLoad: number;
  readonly heapBytesAfterGenerate: number;
  /** measureUserAgentSpecificMemory's total after generating, when the browser gives it */
  readonly userAgentMemoryBytes?: number;
}

const log = (s: string) => console.log(`[page ${(performance.now() / 1000).toFixed(1)} s] ${s}`);

function describe(e: LoadProgress): string | undefined {
  if (e.phase === 'download')
    return e.loaded === 0 || e.loaded === e.total ? `download ${e.file} ${e.loaded}/${e.total}` : undefined;
  if (e.phase === 'load')
    return `session ${e.graph} (${e.done}/${e.total}), wasm heap ${(heapBytes() / 2 ** 20).toFixed(0)} MiB`;
  return undefined;
}

/** A 224x224 test card: colour gradients, so the processor has something to resize. */
function testImage(): ImageData {
  const size = 224;
  const data = new Uint8ClampedArray(size * size * 4);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 4;
      data.set([x, y, (x + y) % 256, 255], i);
    }
  return new ImageData(data, size, size);
}

async function userAgentMemory(): Promise<number | undefined> {
  const perf = performance as Performance & {
    measureUserAgentSpecificMemory?: () => Promise<{ bytes: number }>;
  };
  if (!crossOriginIsolated || !perf.measureUserAgentSpecificMemory) return undefined;
  // the measurement waits for a garbage collection: bounded, it is a figure, not the run
  const timeout = new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000));
  return Promise.race([perf.measureUserAgentSpecificMemory().then((m) => m.bytes), timeout]);
}

/** The text, when the checkpoint's tokenizer covers its vocabulary (random-weight benches may pair a small one). */
function decoded(model: Blip2ForConditionalGeneration, tokens: number[]): string {
  try {
    return model.processor.decode(tokens);
  } catch (e) {
    return `(not decoded: ${(e as Error).message})`;
  }
}

export async function run(req: RunRequest): Promise<RunResult> {
  const t0 = performance.now();
  const model = await Blip2ForConditionalGeneration.fromPretrained(req.modelUrl, {
    device: req.device,
    ...(req.dtype ? { dtype: req.dtype as 'q4' } : {}),
    onProgress: (e) => {
      const s = describe(e);
      if (s) log(s);
    },
    onWarning: (m) => log(`warning: ${m}`),
  });
  const loadMs = performance.now() - t0;
  const heapBytesAfterLoad = heapBytes();
  log(`loaded on ${model.backendName} in ${(loadMs / 1000).toFixed(1)} s`);
  try {
    const processed = await model.processor.process({ images: testImage() });
    if (!processed.pixelValues) throw new Error('the processor returned no pixel values');
    const stamps: number[] = [];
    const t1 = performance.now();
    const out = await model.generate(
      { pixelValues: processed.pixelValues },
      {
        maxNewTokens: req.tokens,
        minNewTokens: req.tokens,
        onToken: (e) => {
          stamps.push(performance.now());
          log(`token ${e.step}: ${e.tokens[0]}`);
        },
      },
    );
    const tokens = out.sequences[0];
    return {
      backend: model.backendName,
      loadMs,
      firstTokenMs: stamps[0] - t1,
      stepMs: stamps.slice(1).map((t, i) => t - stamps[i]),
      tokens,
      text: decoded(model, tokens),
      heapBytesAfterLoad,
      heapBytesAfterGenerate: heapBytes(),
      userAgentMemoryBytes: await userAgentMemory(),
    };
  } finally {
    await model.dispose();
  }
}
