// The core both KV-cache adapters (OPT, T5) share, checked once here: the batched-step
// choice from backend capabilities, the step session by rows, id and output checks,
// and beam-search cache reorders. The families' own tests run it on their real graphs.
import { namedGraph } from '@blip2/fixtures';
import {
  type AnyTensor,
  type Backend,
  type BackendCapabilities,
  type BuiltGraph,
  type DeviceTensor,
  float32,
  int64,
  type Session,
  type Tensor,
} from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { batchedStepFor, KV_IO, KV_PRESENT, KvAdapterCore } from '../src/index.js';

class CoreError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const CPU: BackendCapabilities = {
  batchedLinears: 'weight-first',
  sharedWeights: true,
  deviceOutputs: false,
  computeDtypes: ['float32'],
};
const WEB: BackendCapabilities = { ...CPU, batchedLinears: 'gemm', sharedWeights: false };

function session(name: string, released: string[]): Session {
  return {
    name,
    inputNames: [],
    outputNames: [],
    run: async () => ({}),
    runOnDevice: async () => ({}),
    release: async () => {
      released.push(name);
    },
  };
}

function recordingBackend(capabilities: BackendCapabilities) {
  const loads: string[] = [];
  const released: string[] = [];
  const backend: Backend = {
    name: 'recording',
    capabilities,
    load: async (graph) => {
      loads.push(graph.name);
      return session(graph.name, released);
    },
  };
  return { backend, loads, released };
}

const graph = (name: string): BuiltGraph => namedGraph(name);
const graphs = { step: graph('x.step'), batched: graph('x.stepBatched'), reorder: graph('x.stepReorder') };
const name = async (f: Promise<{ session: { name: string } }>) => (await f).session.name;

function core(init: Partial<ConstructorParameters<typeof KvAdapterCore>[0]> = {}): KvAdapterCore {
  return new KvAdapterCore({
    family: 'x',
    adapter: 'XAdapter',
    vocabSize: 10,
    numLayers: 2,
    error: (code, message) => new CoreError(code, message),
    step: session('x.step', []),
    ...init,
  });
}

describe('KvAdapterCore', () => {
  it('chooses the batched step from the backend capabilities, an explicit option winning', () => {
    const of = (c: BackendCapabilities) => recordingBackend(c).backend;
    expect(batchedStepFor(of(CPU))).toBe('lazy');
    expect(batchedStepFor(of(WEB))).toBe('never');
    // weight-first kernels but a copy of the weights per session: not worth a second session
    expect(batchedStepFor(of({ ...CPU, sharedWeights: false }))).toBe('never');
    expect(batchedStepFor(of(WEB), { batchedStep: 'eager' })).toBe('eager');
    expect(batchedStepFor(of(CPU), { batchedStep: 'never' })).toBe('never');
  });

  it("loads the batched step on the first step of several rows ('lazy'), once; one row never loads it", async () => {
    const { backend, loads, released } = recordingBackend(CPU);
    const steps = (await KvAdapterCore.loadSessions(backend, {}, graphs, KV_IO.presents(2))).steps;
    expect(loads).toEqual(['x.step']);
    const c = core({ ...steps, backend });
    expect(await name(c.stepFor(1))).toBe('x.step');
    expect(loads).toEqual(['x.step']);
    expect(await name(c.stepFor(5))).toBe('x.stepBatched');
    expect(await name(c.stepFor(3))).toBe('x.stepBatched');
    expect(loads).toEqual(['x.step', 'x.stepBatched']);
    await c.release();
    expect(released.sort()).toEqual(['x.step', 'x.stepBatched']);
  });

  it('leaves a CPU reorder of several rows to the reorder step, fed beam_idx; it serves later identity steps', async () => {
    const { backend, loads } = recordingBackend(CPU);
    const c = core({ ...(await KvAdapterCore.loadSessions(backend, {}, graphs, [])).steps, backend });
    const cpu = [float32([2, 3], [1, 2, 3, 4, 5, 6])];
    expect(c.defersReorder(3, cpu)).toBe(true);
    // one row runs the Gemm step, which has no beam_idx: that reorder is a copy
    expect(c.defersReorder(1, cpu)).toBe(false);
    const { session, feeds } = await c.stepFor(3, [1, 1, 0]);
    expect(session.name).toBe('x.stepReorder');
    expect(feeds[KV_IO.beamIdx]).toEqual(int64([3], [1, 1, 0]));
    // the reorder step is loaded and the plain batched one is not: rows that stay in place run it too
    const identity = await c.stepFor(3);
    expect(identity.session.name).toBe('x.stepReorder');
    expect(identity.feeds[KV_IO.beamIdx]).toEqual(int64([3], [0, 1, 2]));
    expect(loads).toEqual(['x.step', 'x.stepReorder']);
    // composed reorders: rows of rows
    expect(KvAdapterCore.composeRows([2, 0, 2], [1, 1, 0])).toEqual([0, 0, 2]);
    expect(KvAdapterCore.composeRows(undefined, [1, 0])).toEqual([1, 0]);
    // without a reorder graph ('never'), or for a cache on a device, the reorder is a copy
    const web = recordingBackend(WEB);
    const never = core({
      ...(await KvAdapterCore.loadSessions(web.backend, {}, graphs, [])).steps,
      backend: web.backend,
    });
    expect(never.defersReorder(3, cpu)).toBe(false);
    const onDevice = {
      dtype: 'float32',
      dims: [2, 3],
      location: 'gpu-buffer',
    } as unknown as DeviceTensor<'float32'>;
    expect(c.defersReorder(3, [onDevice])).toBe(false);
    await c.release();
    await never.release();
  });

  it("'eager' loads both at once; 'never' (the web default) runs every step on the Gemm step", async () => {
    const eager = recordingBackend(WEB);
    const { steps: e } = await KvAdapterCore.loadSessions(eager.backend, {}, graphs, [], {
      batchedStep: 'eager',
    });
    expect(eager.loads.sort()).toEqual(['x.step', 'x.stepBatched', 'x.stepReorder']);
    expect(await name(core({ ...e, backend: eager.backend }).stepFor(4))).toBe('x.stepBatched');
    const never = recordingBackend(WEB);
    const { steps: n } = await KvAdapterCore.loadSessions(never.backend, {}, graphs, []);
    expect(n.batched).toBeUndefined();
    expect(n.reorder).toBeUndefined();
    expect(await name(core({ ...n, backend: never.backend }).stepFor(4))).toBe('x.step');
    expect(never.loads).toEqual(['x.step']);
  });

  it("loads the family's graphs beside the steps, each keeping on the device only the cache outputs it has", async () => {
    const kept: Record<string, readonly string[]> = {};
    const released: string[] = [];
    const backend: Backend = {
      name: 'recording',
      capabilities: CPU,
      load: async (g, options) => {
        kept[g.name] = options?.keepOnDevice ?? [];
        return session(g.name, released);
      },
    };
    const out = (name: string, ...outputs: string[]) => namedGraph(name, outputs);
    const present = KV_IO.presents(1);
    const { sessions, steps } = await KvAdapterCore.loadSessions(
      backend,
      {
        embed: out('x.embed', 'inputs_embeds'),
        encoder: out('x.encoder', 'last_hidden_state', 'cross.0.key'),
      },
      {
        ...graphs,
        step: out('x.step', 'logits', ...present),
        batched: out('x.stepBatched', 'logits', ...present),
      },
      [...present, 'cross.0.key'],
      { batchedStep: 'eager' },
    );
    expect(Object.keys(sessions)).toEqual(['embed', 'encoder']);
    expect(sessions.encoder.name).toBe('x.encoder');
    expect(kept).toEqual({
      'x.embed': [],
      'x.encoder': ['cross.0.key'],
      'x.step': present,
      'x.stepBatched': present,
      'x.stepReorder': [],
    });
    // one session given as two (a decoder serving prefill and steps) is released once, with the family's
    const c = core({ ...steps, backend, sessions: [sessions.embed, sessions.encoder, steps.step] });
    const forward = c.lazyOf(graph('x.forward'));
    expect(Object.keys(kept)).not.toContain('x.forward');
    await forward?.get();
    await c.release();
    expect(released.sort()).toEqual([
      'x.embed',
      'x.encoder',
      'x.forward',
      'x.step',
      'x.stepBatched',
      'x.stepReorder',
    ]);
    // without a backend a graph cannot load later; without twins every step is the one-row step
    expect(core().lazyOf(graph('x.forward'))).toBeUndefined();
    const plain = await KvAdapterCore.loadSessions(backend, {}, { step: graphs.step }, [], {
      batchedStep: 'eager',
    });
    expect(plain.steps).toEqual({ step: expect.objectContaining({ name: 'x.step' }) });
  });

  it('names the layers it feeds and reads: past_key_values.* in, present.* out, any other names given', async () => {
    const c = core();
    const t = (v: number) => float32([1, 1], [v]);
    const past = { keys: [t(1), t(2)], values: [t(3), t(4)] };
    expect(c.feeds(past)).toEqual({
      'past_key_values.0.key': past.keys[0],
      'past_key_values.0.value': past.values[0],
      'past_key_values.1.key': past.keys[1],
      'past_key_values.1.value': past.values[1],
    });
    const cross = { key: (i: number) => `cross.${i}.key`, value: (i: number) => `cross.${i}.value` };
    expect(Object.keys(c.feeds(past, cross))).toEqual([
      'cross.0.key',
      'cross.0.value',
      'cross.1.key',
      'cross.1.value',
    ]);
    const onDevice = {
      dtype: 'float32',
      dims: [1],
      location: 'gpu-buffer',
    } as unknown as DeviceTensor<'float32'>;
    const out: Record<string, AnyTensor> = {
      'present.0.key': t(5),
      'present.0.value': t(6),
      'present.1.key': onDevice,
      'present.1.value': t(8),
    };
    expect(c.layers(out, 's')).toEqual({ keys: [t(5), onDevice], values: [t(6), t(8)] });
    expect(() => c.cpuLayers(out, 's', KV_PRESENT)).toThrow(
      "session 's' kept 'present.1.key' on the gpu-buffer",
    );
    expect(() => c.layers({}, 's')).toThrow("session 's' returned no 'present.0.key', expected float32");
    // several caches' rows move in one gather, and come back split as they were
    const rows = (v: number) => float32([2, 1], [v, v + 1]);
    const [a, b] = await c.gatherLayers(
      [
        { keys: [rows(0), rows(2)], values: [rows(4), rows(6)] },
        { keys: [rows(8)], values: [rows(10)] },
      ],
      [1, 1],
    );
    const twice = (v: number) => float32([2, 1], [v + 1, v + 1]);
    expect(a).toEqual({ keys: [twice(0), twice(2)], values: [twice(4), twice(6)] });
    expect(b).toEqual({ keys: [twice(8)], values: [twice(10)] });
  });

  it('checks ids: int64 [batch, sequence] inside the vocabulary, naming the position', () => {
    const c = core();
    expect(() => c.checkIds('tokenIds', int64([1, 2], [9, 0]))).not.toThrow();
    expect(() => c.checkIds('tokenIds', int64([3], [1, 2, 3]))).toThrow(
      expect.objectContaining({
        code: 'E_INPUT',
        message: 'tokenIds must be int64 [batch, sequence], got int64 [3]',
      }),
    );
    expect(() => c.checkIds('tokenIds', int64([2, 2], [1, 2, 3, 10]))).toThrow(
      expect.objectContaining({
        code: 'E_INPUT',
        message: 'tokenIds[1, 1] = 10 is outside the vocabulary [0, 10)',
      }),
    );
    expect(() => c.checkIds('tokenIds', int64([1, 1], [-1]))).toThrow(/tokenIds\[0, 0\] = -1/);
  });

  it('checks outputs: float32, and on the CPU where generation reads them', () => {
    const c = core();
    const onDevice = { dtype: 'float32', dims: [1], location: 'gpu-buffer' } as unknown as DeviceTensor;
    const out: Record<string, AnyTensor> = {
      logits: float32([1], [0]),
      ids: int64([1], [0]),
      kept: onDevice,
    };
    expect(c.output(out, 'logits', 's')).toBe(out.logits);
    expect(c.cacheOutput(out, 'kept', 's')).toBe(onDevice);
    expect(() => c.output(out, 'kept', 's')).toThrow(
      expect.objectContaining({
        code: 'E_SESSION',
        message: "session 's' kept 'kept' on the gpu-buffer; it must come back to the CPU",
      }),
    );
    expect(() => c.cacheOutput(out, 'ids', 's')).toThrow(
      "session 's' returned a int64 'ids', expected float32",
    );
    expect(() => c.cacheOutput(out, 'none', 's')).toThrow("session 's' returned no 'none', expected float32");
  });

  it('reorders: identity kept, rows checked, CPU rows gathered, a device cache refused without a backend', async () => {
    const c = core();
    expect(c.keepsRows([0, 1, 2], 3)).toBe(true);
    expect(c.keepsRows([0, 0, 2], 3)).toBe(false);
    expect(c.keepsRows([0, 1], 3)).toBe(false);
    for (const bad of [3, -1, 0.5])
      expect(() => c.keepsRows([0, bad], 3)).toThrow(
        expect.objectContaining({
          code: 'E_CACHE',
          message: `reorderCache: row ${bad} is not a row of the cache (3 rows)`,
        }),
      );
    const kv: Tensor<'float32'> = float32([3, 2], [0, 1, 10, 11, 20, 21]);
    const [moved] = await c.gatherRows([kv], [2, 2, 0]);
    expect(moved).toEqual(float32([3, 2], [20, 21, 20, 21, 0, 1]));
    const onDevice = {
      dtype: 'float32',
      dims: [3, 2],
      location: 'gpu-buffer',
    } as unknown as DeviceTensor<'float32'>;
    await expect(c.gatherRows([kv, onDevice], [0])).rejects.toThrow(
      expect.objectContaining({
        code: 'E_CACHE',
        message: expect.stringContaining('construct it with XAdapter.load'),
      }),
    );
  });
});
