/**
 * Page script of browser-real-size.mjs: loads the served checkpoint through
 * `@blip2/sdk/browser`, captions one 224x224 image with a few greedy tokens, and
 * reports timings and the memory the page can see (the wasm heap, and
 * `performance.measureUserAgentSpecificMemory` where the page is cross-origin isolated).
 */
import { createWebBackend } from '@blip2/backend-web';
import { generate, type LanguageModelAdapter } from '@blip2/generation';
import { Blip2ForConditionalGeneration, configureWebRuntime, type LoadProgress } from '@blip2/sdk/browser';
import { type Backend, int64, type Session } from '@blip2/tensor';

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
  /**
   * false: skip the image side and the query-token prompt, and generate from a one-token text
   * prompt through the language model alone (what a decode step costs at real size where the
   * image side cannot finish in the run's bound, as on WebGPU emulated by SwiftShader)
   */
  readonly imageSide?: boolean;
}

/** Wall time of every run of one graph: where the time goes, per part. */
export interface GraphRuns {
  readonly runs: number;
  readonly ms: number;
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
  /** per graph: session runs and their summed wall time (each awaited to its outputs) */
  readonly graphRuns: Record<string, GraphRuns>;
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

/**
 * The web backend with every session's runs timed per graph (logged as they end). A Proxy,
 * so the SDK still finds the backend's own methods (clearWeightCache) on it.
 */
function timed(backend: Backend, graphRuns: Record<string, GraphRuns>): Backend {
  const timeRuns =
    (name: string, fn: Session['runOnDevice']): Session['runOnDevice'] =>
    async (feeds, outputs) => {
      const t = performance.now();
      const out = await fn(feeds, outputs);
      const ms = performance.now() - t;
      const prev = graphRuns[name] ?? { runs: 0, ms: 0 };
      graphRuns[name] = { runs: prev.runs + 1, ms: prev.ms + ms };
      log(`run ${name}: ${(ms / 1000).toFixed(2)} s`);
      return out;
    };
  const load: Backend['load'] = async (graph, options) => {
    const s = await backend.load(graph, options);
    return new Proxy(s, {
      get(target, prop) {
        if (prop === 'run' || prop === 'runOnDevice')
          return timeRuns(graph.name, (target[prop] as Session['runOnDevice']).bind(target));
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  };
  return new Proxy(backend, {
    get(target, prop) {
      if (prop === 'load') return load;
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

export async function run(req: RunRequest): Promise<RunResult> {
  const graphRuns: Record<string, GraphRuns> = {};
  const t0 = performance.now();
  const backend = timed(
    await createWebBackend({
      device: req.device,
      wasmPaths: `${location.origin}/ort/`,
      onWarning: (m) => log(`warning: ${m}`),
    }),
    graphRuns,
  );
  const model = await Blip2ForConditionalGeneration.fromPretrained(req.modelUrl, {
    backend,
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
    const stamps: number[] = [];
    const options = {
      maxNewTokens: req.tokens,
      minNewTokens: req.tokens,
      onToken: (e: { step: number; tokens: readonly number[] }) => {
        stamps.push(performance.now());
        log(`token ${e.step}: ${e.tokens[0]}`);
      },
    };
    let t1: number;
    let out: { sequences: number[][] };
    if (req.imageSide === false) {
      // the bench reaches past the SDK's image-first API to the language model's own generate
      const adapter = (model as unknown as { adapter: LanguageModelAdapter<unknown> }).adapter;
      const bos = (model.config.textConfig as { bosTokenId?: number }).bosTokenId ?? 2;
      const inputsEmbeds = await adapter.embed(int64([1, 1], [bos]));
      t1 = performance.now();
      out = await generate(adapter, { inputsEmbeds, attentionMask: int64([1, 1], [1]) }, options);
    } else {
      const processed = await model.processor.process({ images: testImage() });
      if (!processed.pixelValues) throw new Error('the processor returned no pixel values');
      t1 = performance.now();
      out = await model.generate({ pixelValues: processed.pixelValues }, options);
    }
    const tokens = out.sequences[0];
    return {
      backend: model.backendName,
      loadMs,
      firstTokenMs: stamps[0] - t1,
      stepMs: stamps.slice(1).map((t, i) => t - stamps[i]),
      tokens,
      text: decoded(model, tokens),
      graphRuns,
      heapBytesAfterLoad,
      heapBytesAfterGenerate: heapBytes(),
      userAgentMemoryBytes: await userAgentMemory(),
    };
  } finally {
    await model.dispose();
  }
}
