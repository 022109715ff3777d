import { Tensor as CommonTensor, type Tensor as OrtTensor } from 'onnxruntime-common';
import { describe, expect, it } from 'vitest';
import { type BuiltGraph, float32, type OrtInferenceSession, OrtSession } from '../src/index.js';

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
