/**
 * Page script of browser-kv.test.ts: the tiny OPT fixture through `@blip2/sdk/browser`
 * on a WebGPU backend wrapped so that every session run is counted: how many feeds and
 * outputs were GPU buffers, and whether every GPU buffer the generation made was freed.
 * The same wrapper can withhold `keepOnDevice` from the backend, which gives the
 * "cache back to the CPU every step" baseline for the timing.
 */
import { createWebBackend } from '@blip2/backend-web';
import { generationOptionsFromConfig } from '@blip2/generation';
import { Blip2ForConditionalGeneration } from '@blip2/sdk/browser';
import {
  type AnyTensor,
  type Backend,
  type BackendCapabilities,
  type BuiltGraph,
  type DeviceTensor,
  float32,
  int64,
  isDeviceTensor,
  type LoadOptions,
  type Session,
} from '@blip2/tensor';
import type { PlainTensor } from './page.js';

export interface SessionStats {
  /** outputs the adapter asked the backend to keep on the device */
  keepOnDevice: string[];
  runs: number;
  /** feeds that were GPU buffers (a cache fed back without a copy) */
  deviceFeeds: number;
  /** outputs that came back as GPU buffers, by output name */
  deviceOutputs: Record<string, number>;
  /** outputs that came back to the CPU, by output name */
  cpuOutputs: Record<string, number>;
  /** wall time of every run, ms (feeds uploaded and outputs read back included) */
  ms: number[];
  /** the runs of one new token (decoding steps; the rest are prompts), their device feeds and times */
  stepRuns: number;
  stepDeviceFeeds: number;
  stepMs: number[];
}

export interface KvRequest {
  readonly modelUrl: string;
  readonly pixelValues: PlainTensor;
  readonly inputIds: number[];
  readonly generations: Record<string, Record<string, unknown>>;
  /** false: the backend is not told to keep anything on the device (the baseline) */
  readonly keepOnDevice: boolean;
  /** time greedy decoding of this many and of 2 new tokens, `repeats` times each */
  readonly timing?: { readonly newTokens: number; readonly repeats: number };
}

export interface KvResult {
  readonly backend: string;
  readonly generated: Record<string, number[][]>;
  /** by session (graph) name */
  readonly sessions: Record<string, SessionStats>;
  /** GPU buffers the runs returned, and how many of them were still alive after the generations */
  readonly deviceTensors: number;
  readonly leaked: number;
  /** median milliseconds per generated token (greedy, batch 1), from the difference of two lengths */
  readonly msPerToken?: number;
  /** every repeat's milliseconds per token, in order */
  readonly msPerTokenSamples?: number[];
}

/** Forwards to `inner`, counting where every feed and output of every run lives. */
class CountingBackend implements Backend {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  readonly sessions: Record<string, SessionStats> = {};
  readonly deviceTensors: DeviceTensor[] = [];

  constructor(
    private readonly inner: Backend,
    private readonly keep: boolean,
  ) {
    this.name = inner.name;
    this.capabilities = { ...inner.capabilities, deviceOutputs: inner.capabilities.deviceOutputs && keep };
  }

  async load(graph: BuiltGraph, options: LoadOptions = {}): Promise<Session> {
    const forwarded: LoadOptions = this.keep ? options : options.signal ? { signal: options.signal } : {};
    const session = await this.inner.load(graph, forwarded);
    // a graph loaded twice under one name (the reorder graph, once per input signature) adds to the same counts
    const stats: SessionStats = this.sessions[graph.name] ?? {
      keepOnDevice: [...(forwarded.keepOnDevice ?? [])],
      runs: 0,
      deviceFeeds: 0,
      deviceOutputs: {},
      cpuOutputs: {},
      ms: [],
      stepRuns: 0,
      stepDeviceFeeds: 0,
      stepMs: [],
    };
    this.sessions[graph.name] = stats;
    // OPT's decoder graph runs prompts and steps: a step is a run of one new token
    const isStep = (feeds: Readonly<Record<string, AnyTensor>>) =>
      (feeds.input_ids ?? feeds.inputs_embeds)?.dims[1] === 1;
    const countFeeds = (feeds: Readonly<Record<string, AnyTensor>>) => {
      const onDevice = Object.values(feeds).filter(isDeviceTensor).length;
      stats.runs++;
      stats.deviceFeeds += onDevice;
      if (isStep(feeds)) {
        stats.stepRuns++;
        stats.stepDeviceFeeds += onDevice;
      }
    };
    const timed = (feeds: Readonly<Record<string, AnyTensor>>, ms: number) => {
      stats.ms.push(ms);
      if (isStep(feeds)) stats.stepMs.push(ms);
    };
    const countOutput = (name: string, t: AnyTensor) => {
      const where = isDeviceTensor(t) ? stats.deviceOutputs : stats.cpuOutputs;
      where[name] = (where[name] ?? 0) + 1;
      if (isDeviceTensor(t)) this.deviceTensors.push(t);
    };
    return {
      name: session.name,
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      run: async (feeds, outputs) => {
        countFeeds(feeds);
        const start = performance.now();
        const out = await session.run(feeds, outputs);
        timed(feeds, performance.now() - start);
        for (const [k, t] of Object.entries(out)) countOutput(k, t);
        return out;
      },
      runOnDevice: async (feeds, outputs) => {
        countFeeds(feeds);
        const start = performance.now();
        const out = await session.runOnDevice(feeds, outputs);
        timed(feeds, performance.now() - start);
        for (const [k, t] of Object.entries(out)) countOutput(k, t);
        return out;
      },
      release: () => session.release(),
    };
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function runKv(req: KvRequest): Promise<KvResult> {
  const backend = new CountingBackend(
    await createWebBackend({ device: 'webgpu', wasmPaths: `${location.origin}/ort/` }),
    req.keepOnDevice,
  );
  const model = await Blip2ForConditionalGeneration.fromPretrained(req.modelUrl, { backend });
  try {
    const pixelValues = float32(req.pixelValues.dims, req.pixelValues.data);
    const inputIds = int64([1, req.inputIds.length], req.inputIds);
    const generated: Record<string, number[][]> = {};
    for (const [name, kwargs] of Object.entries(req.generations)) {
      const out = await model.generate({ pixelValues, inputIds }, generationOptionsFromConfig(kwargs, name));
      generated[name] = out.sequences;
    }
    const leaked = backend.deviceTensors.filter((t) => !t.disposed).length;

    let msPerToken: number | undefined;
    const msPerTokenSamples: number[] = [];
    if (req.timing) {
      const { newTokens, repeats } = req.timing;
      const time = async (n: number) => {
        const options = generationOptionsFromConfig({
          max_new_tokens: n,
          min_new_tokens: n,
          do_sample: false,
        });
        const start = performance.now();
        await model.generate({ pixelValues, inputIds }, options);
        return performance.now() - start;
      };
      await time(newTokens); // warm-up: shader compilation, buffer pools
      for (let i = 0; i < repeats; i++) {
        const long = await time(newTokens);
        const short = await time(2);
        msPerTokenSamples.push((long - short) / (newTokens - 2));
      }
      msPerToken = median(msPerTokenSamples);
    }
    return {
      backend: backend.name,
      generated,
      sessions: backend.sessions,
      deviceTensors: backend.deviceTensors.length,
      leaked,
      ...(msPerToken !== undefined ? { msPerToken, msPerTokenSamples } : {}),
    };
  } finally {
    await model.dispose();
  }
}

(globalThis as unknown as { runKv: typeof runKv }).runKv = runKv;
