import { describe, expect, it } from 'vitest';
import {
  decodingOptions,
  describeError,
  describeProgress,
  describeWeights,
  LoadMeter,
  PlaygroundError,
} from '../src/format.js';

describe('decodingOptions', () => {
  it('leaves the reference defaults alone unless a control overrides them', () => {
    expect(decodingOptions({ strategy: 'default', numBeams: '5', maxNewTokens: '' })).toEqual({});
    expect(decodingOptions({ strategy: 'greedy', numBeams: '5', maxNewTokens: '' })).toEqual({ numBeams: 1 });
    expect(decodingOptions({ strategy: 'beam', numBeams: '3', maxNewTokens: ' 12 ' })).toEqual({
      numBeams: 3,
      maxNewTokens: 12,
    });
  });

  it('names the control and the value at fault', () => {
    const bad = (controls: Parameters<typeof decodingOptions>[0], message: string) => {
      try {
        decodingOptions(controls);
      } catch (e) {
        expect(e).toBeInstanceOf(PlaygroundError);
        expect((e as PlaygroundError).code).toBe('E_OPTION');
        expect((e as Error).message).toBe(message);
        return;
      }
      throw new Error(`no error for ${JSON.stringify(controls)}`);
    };
    bad(
      { strategy: 'beam', numBeams: '1', maxNewTokens: '' },
      'beams must be a whole number from 2 to 10, got "1"',
    );
    bad(
      { strategy: 'greedy', numBeams: '', maxNewTokens: '2.5' },
      'max new tokens must be a whole number from 1 to 200, got "2.5"',
    );
    bad(
      { strategy: 'sample', numBeams: '', maxNewTokens: '' },
      "decoding strategy must be 'default', 'greedy' or 'beam', got \"sample\"",
    );
  });
});

describe('describeProgress', () => {
  it('words downloads in bytes of the whole model and graphs by phase', () => {
    expect(
      describeProgress({
        phase: 'download',
        file: 'model.safetensors',
        loaded: 1536,
        total: 4 * 1024 * 1024,
        overallLoaded: 1024 * 1024,
        overallTotal: 4 * 1024 * 1024,
      }),
    ).toEqual({ fraction: 0.25, text: 'Downloading model.safetensors: 1.5 KB of 4.0 MB' });
    expect(describeProgress({ phase: 'build', graph: 'vision', done: 1, total: 4 })).toEqual({
      fraction: 0.25,
      text: 'Building graph vision (1 of 4)',
    });
    expect(describeProgress({ phase: 'load', graph: 'qformer', done: 0, total: 0 }).fraction).toBe(0);
  });
});

describe('describeError', () => {
  it('shows the stable code of typed errors, the name of others, never the stack', () => {
    const typed = Object.assign(new Error('https://x/config.json: not found (HTTP 404)'), {
      code: 'E_MISSING_FILE',
    });
    expect(describeError(typed)).toEqual({
      code: 'E_MISSING_FILE',
      message: 'https://x/config.json: not found (HTTP 404)',
    });
    expect(describeError(new TypeError('Failed to fetch'))).toEqual({
      code: 'TypeError',
      message: 'Failed to fetch',
    });
    expect(describeError('boom')).toEqual({ code: 'Error', message: 'boom' });
  });
});

describe('LoadMeter', () => {
  it('fills one bar across runtime, download and graphs, never going back', () => {
    const meter = new LoadMeter(true);
    expect(meter.runtime(14 * 1024 ** 2, 28 * 1024 ** 2)).toEqual({
      fraction: 0.3,
      text: 'Downloading the onnxruntime-web runtime: 14.0 MB of 28.0 MB',
    });
    expect(meter.runtime(28 * 1024 ** 2, 28 * 1024 ** 2).fraction).toBeCloseTo(0.6, 12);
    const download = { phase: 'download', file: 'model.safetensors', loaded: 2, total: 4 } as const;
    expect(meter.model({ ...download, overallLoaded: 2, overallTotal: 4 }).fraction).toBeCloseTo(0.75, 12);
    // build restarts at 0 of its phase: the bar goes to where the graphs' part starts, not back to 0
    expect(meter.model({ phase: 'build', graph: 'vision', done: 0, total: 4 }).fraction).toBeCloseTo(0.9, 12);
    // an event of an earlier stage cannot move it back
    expect(meter.runtime(0, 28).fraction).toBeCloseTo(0.9, 12);
    expect(meter.model({ phase: 'build', graph: 'vision', done: 4, total: 4 }).fraction).toBeCloseTo(
      0.95,
      12,
    );
    expect(meter.model({ phase: 'load', graph: 'vision', done: 0, total: 4 }).fraction).toBeCloseTo(0.95, 12);
    expect(meter.model({ phase: 'load', graph: 'lm', done: 4, total: 4 }).fraction).toBeCloseTo(1, 12);
    expect(meter.done()).toBe(1);
  });

  it('without the runtime to fetch, the model download starts at 0', () => {
    const meter = new LoadMeter(false);
    const event = {
      phase: 'download',
      file: 'a',
      loaded: 1,
      total: 2,
      overallLoaded: 1,
      overallTotal: 2,
    } as const;
    expect(meter.model(event).fraction).toBeCloseTo(0.4, 12);
  });
});

describe('describeWeights', () => {
  it('one format for an export in one dtype, else each module', () => {
    expect(describeWeights({ vision: 'q4', qformer: 'q4', language_model: 'q4' })).toBe('q4');
    expect(describeWeights({ vision: 'q8', qformer: 'fp32', language_model: 'q4' })).toBe(
      'vision q8, qformer fp32, language_model q4',
    );
  });
});
