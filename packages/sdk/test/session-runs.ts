import type { Session } from '@blip2/tensor';
import type { Blip2ForConditionalGeneration } from '../src/index.js';

/** Counts every run of the model's sessions from now on, to see that a refusal comes before any. */
export function countSessionRuns(model: Blip2ForConditionalGeneration): () => number {
  let runs = 0;
  const sessions = (model as unknown as { parts: { sessions: Map<string, Session> } }).parts.sessions;
  for (const s of sessions.values()) {
    const run = s.run.bind(s);
    s.run = (...args: Parameters<Session['run']>) => {
      runs++;
      return run(...args);
    };
  }
  return () => runs;
}
