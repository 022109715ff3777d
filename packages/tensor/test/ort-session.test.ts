import { Tensor as CommonTensor, type Tensor as OrtTensor } from 'onnxruntime-common';
import { describe, expect, it } from 'vitest';
import {
  type BuiltGraph,
  type DeviceTensor,
  disposeTensor,
  float32,
  isDeviceTensor,
  type OrtInferenceSession,
  OrtSession,
  toCpu,
} from '../src/index.js';

class TestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const graph: BuiltGraph = {
  name: 'double',
  bytes: new Uint8Array(),
  inputs: [{ name: 'x', dtype: 'float32', dims: ['batch', 2] }],
  outputs: [{ name: 'y', dtype: 'float32', dims: ['batch', 2] }],
  externalData: [],
};

/** A runtime session that doubles `x`, or fails as onnxruntime would. */
function runtime(fail = false) {
  const log = { runs: 0, released: 0, fetches: [] as (readonly string[] | undefined)[] };
  const session: OrtInferenceSession = {
    inputNames: ['x'],
    outputNames: ['y'],
    async run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]) {
      log.runs++;
      log.fetches.push(fetches);
      if (fail) throw new Error('Got invalid dimensions');
      const x = feeds.x.data as Float32Array;
      return {
        y: new CommonTensor(
          'float32',
          x.map((v) => 2 * v),
          feeds.x.dims,
        ),
      };
    },
    async release() {
      log.released++;
    },
  };
  return { session, log };
}

const make = (s: OrtInferenceSession) =>
  new OrtSession(graph, s, {
    Tensor: CommonTensor,
    runtime: 'test-runtime',
    error: (code, message, cause) => new TestError(code, message, { cause }),
  });

describe('OrtSession (the session both onnxruntime backends share)', () => {
  it('converts feeds and outputs, and asks only for the outputs named', async () => {
    const { session, log } = runtime();
    const s = make(session);
    expect([s.name, s.inputNames, s.outputNames]).toEqual(['double', ['x'], ['y']]);
    const { y } = await s.run({ x: float32([1, 2], [1.5, -2]) }, ['y']);
    expect(y).toEqual({ dtype: 'float32', dims: [1, 2], data: Float32Array.from([3, -4]) });
    await s.run({ x: float32([1, 2], [0, 0]) });
    expect(log.fetches).toEqual([['y'], undefined]);
  });

  it('checks feeds against the graph before the runtime sees them', async () => {
    const { session, log } = runtime();
    await expect(make(session).run({ x: float32([1, 3]) })).rejects.toMatchObject({ code: 'E_FEEDS' });
    expect(log.runs).toBe(0);
  });

  it("wraps the runtime's failure in the backend's error, naming the graph, runtime and feed dims", async () => {
    const e = await make(runtime(true).session)
      .run({ x: float32([3, 2]) })
      .catch((err: unknown) => err);
    expect(e).toBeInstanceOf(TestError);
    expect(e).toMatchObject({
      code: 'E_RUN',
      message: 'double: test-runtime failed on x[3,2]: Got invalid dimensions',
    });
    expect((e as Error).cause).toBeInstanceOf(Error);
  });

  it('releases once; a released session refuses to run', async () => {
    const { session, log } = runtime();
    const s = make(session);
    await s.release();
    await s.release();
    expect(log.released).toBe(1);
    await expect(s.run({ x: float32([1, 2]) })).rejects.toMatchObject({ code: 'E_RELEASED' });
    expect(log.runs).toBe(0);
  });
});

/**
 * A runtime that keeps `y` "on the GPU", as onnxruntime-web's WebGPU provider does with
 * `preferredOutputLocation: { y: 'gpu-buffer' }`: the buffer is a plain object holding
 * the numbers, and a fed gpu-buffer tensor is read from it without a CPU copy.
 */
function gpuRuntime() {
  const log = { downloads: 0, disposed: 0, fedBack: [] as OrtTensor[] };
  const gpuTensor = (values: Float32Array, dims: readonly number[]) =>
    CommonTensor.fromGpuBuffer({ values } as never, {
      dataType: 'float32',
      dims,
      download: async () => {
        log.downloads++;
        return values.slice();
      },
      dispose: () => {
        log.disposed++;
      },
    });
  const session: OrtInferenceSession = {
    inputNames: ['x'],
    outputNames: ['y'],
    async run(feeds: Record<string, OrtTensor>) {
      const x = feeds.x;
      let values: Float32Array;
      if (x.location === 'gpu-buffer') {
        log.fedBack.push(x);
        values = (x.gpuBuffer as unknown as { values: Float32Array }).values;
      } else values = x.data as Float32Array;
      return {
        y: gpuTensor(
          values.map((v) => 2 * v),
          x.dims,
        ),
      };
    },
    async release() {},
  };
  return { session, log };
}

describe('OrtSession with outputs kept on a device', () => {
  it('runOnDevice returns device tensors that feed the next run as the same runtime tensor', async () => {
    const { session, log } = gpuRuntime();
    const s = make(session);
    const first = await s.runOnDevice({ x: float32([1, 2], [1, -3]) });
    const y = first.y;
    if (!isDeviceTensor(y)) throw new Error('expected a device tensor');
    expect([y.location, y.dtype, y.dims, y.disposed]).toEqual(['gpu-buffer', 'float32', [1, 2], false]);
    expect(log.downloads).toBe(0);

    const second = await s.runOnDevice({ x: y });
    expect(log.fedBack).toEqual([y.handle]);
    expect(log.downloads).toBe(0);
    const z = second.y;
    if (!isDeviceTensor(z)) throw new Error('expected a device tensor');
    expect(await z.download()).toEqual(float32([1, 2], [4, -12]));
    expect(log.downloads).toBe(1);
    expect(await toCpu(y)).toEqual(float32([1, 2], [2, -6]));

    disposeTensor(y);
    y.dispose();
    expect([y.disposed, log.disposed]).toEqual([true, 1]);
    await expect(s.runOnDevice({ x: y })).rejects.toMatchObject({
      code: 'E_DISPOSED',
      message: "double: input 'x' is a gpu-buffer tensor that was already disposed",
    });
    await expect(y.download()).rejects.toMatchObject({ code: 'E_DISPOSED' });
  });

  it('run brings device outputs back to the CPU and frees their device copy', async () => {
    const { session, log } = gpuRuntime();
    const { y } = await make(session).run({ x: float32([1, 2], [0.5, 4]) });
    expect(y).toEqual(float32([1, 2], [1, 8]));
    expect([log.downloads, log.disposed]).toEqual([1, 1]);
  });

  it('refuses a device tensor that onnxruntime did not make', async () => {
    const { session } = gpuRuntime();
    const foreign: DeviceTensor = {
      dtype: 'float32',
      dims: [1, 2],
      location: 'gpu-buffer',
      handle: {},
      disposed: false,
      download: async () => float32([1, 2]),
      dispose: () => {},
    };
    await expect(make(session).run({ x: foreign })).rejects.toMatchObject({
      code: 'E_FEEDS',
      message: expect.stringContaining('gpu-buffer tensor [1, 2] not made by onnxruntime'),
    });
  });
});
