import { describe, expect, it } from 'vitest';
import { decodingOptions, describeError, describeProgress, PlaygroundError } from '../src/format.js';

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
        expect((e as PlaygroundError).code).toBe('E_OPTIONS');
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
