/**
 * A session loaded on first use: graphs only some runs need (the weight-first
 * step of beam search, the device reorder graph) cost nothing until then. A
 * failed load is not kept, so the next use tries again.
 */
import type { Session } from './backend.js';

export class LazySession {
  private loading: Promise<Session> | undefined;

  constructor(private readonly load: () => Promise<Session>) {}

  /** One that is loaded already. */
  static of(session: Session): LazySession {
    const lazy = new LazySession(() => Promise.resolve(session));
    lazy.loading = Promise.resolve(session);
    return lazy;
  }

  /** Whether a `get` has started loading the session (or it was given loaded). */
  get loaded(): boolean {
    return this.loading !== undefined;
  }

  get(): Promise<Session> {
    if (!this.loading) {
      const loading = this.load();
      this.loading = loading;
      loading.catch(() => {
        if (this.loading === loading) this.loading = undefined;
      });
    }
    return this.loading;
  }

  /** Releases the session if it was loaded; a later `get` loads it again. */
  async release(): Promise<void> {
    const loading = this.loading;
    this.loading = undefined;
    if (loading)
      await loading.then(
        (s) => s.release(),
        () => undefined,
      );
  }
}
