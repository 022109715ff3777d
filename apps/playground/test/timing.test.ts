import type { Backend, BuiltGraph, Session } from '@blip2/tensor';
import { describe, expect, it } from 'vitest';
import { describeTimes, TimedBackend } from '../src/timing.js';

/** A backend whose sessions each take `cost[name]` ms of a fake clock per run. */
function fakeBackend(clock: { t: number }, cost: Record<string, number>): Backend {
  return {
    name: 'fake:cpu',
    capabilities: {
      batchedLinears: 'gemm',
      sharedWeights: true,
      deviceOutputs: false,
      computeDtypes: ['float32'],
    },
    async load(graph: BuiltGraph): Promise<Session> {
      const run = async () => {
        clock.t += cost[graph.name];
        return {};
      };
      return {
        name: graph.name,
        inputNames: [],
        outputNames: [],
        run,
        runOnDevice: run,
        release: async () => {},
      };
    },
  };
}

const graph = (name: string) => ({
  name,
  bytes: new Uint8Array(),
  inputs: [],
  outputs: [],
  externalData: [],
});

describe('TimedBackend', () => {
  it('adds up graph time on the image side and in the language model, per action', async () => {
    const clock = { t: 0 };
    const backend = new TimedBackend(
      fakeBackend(clock, { vision_model: 30, qformer: 5, 'opt.step': 2 }),
      () => clock.t,
    );
    expect(backend.name).toBe('fake:cpu');
    const vision = await backend.load(graph('vision_model'));
    const qformer = await backend.load(graph('qformer'));
    const step = await backend.load(graph('opt.step'));
    await vision.run({});
    await qformer.run({});
    for (let i = 0; i < 4; i++) await step.runOnDevice({});
    expect(backend.times).toEqual({ imageSide: 35, languageModel: 8, languageModelRuns: 4 });
    expect(describeTimes(backend.times, 50, 3, backend.name)).toBe(
      'image side (vision encoder + Q-Former): 35 ms · generation (language model, 4 runs, 3 tokens): 8 ms · ' +
        'other (decode, preprocess, search): 7 ms · total 50 ms on fake:cpu',
    );
    backend.reset();
    expect(backend.times).toEqual({ imageSide: 0, languageModel: 0, languageModelRuns: 0 });
  });
});
