import { describe, expect, it } from 'vitest';
import { LazySession, type Session } from '../src/index.js';

function fakeSession(log: string[]): Session {
  return {
    name: 'fake',
    inputNames: [],
    outputNames: [],
    run: async () => ({}),
    runOnDevice: async () => ({}),
    release: async () => {
      log.push('release');
    },
  } as unknown as Session;
}

describe('LazySession', () => {
  it('loads once on first use, retries after a failed load, releases what it loaded', async () => {
    const log: string[] = [];
    let attempts = 0;
    const lazy = new LazySession(async () => {
      attempts++;
      if (attempts === 1) throw new Error('backend busy');
      return fakeSession(log);
    });
    expect(attempts).toBe(0);
    await expect(lazy.get()).rejects.toThrow('backend busy');
    const s = await lazy.get();
    expect(await lazy.get()).toBe(s);
    expect(attempts).toBe(2);
    await lazy.release();
    expect(log).toEqual(['release']);
    await lazy.get();
    expect(attempts).toBe(3);
  });

  it('wraps a session that is loaded already', async () => {
    const log: string[] = [];
    const s = fakeSession(log);
    const lazy = LazySession.of(s);
    expect(await lazy.get()).toBe(s);
    await lazy.release();
    expect(log).toEqual(['release']);
  });
});
