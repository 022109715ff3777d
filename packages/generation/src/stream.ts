/**
 * Streaming: the tokens `generate` chooses, as an async iterator. Greedy search and
 * sampling yield each step as it happens (one token per output row; rows already
 * finished yield the pad id). Beam search cannot know its answer before it ends, so
 * it yields the returned sequences' tokens step by step once the search is over:
 * in every mode, the yielded tokens of a row are exactly its `sequences` row
 * (after the decoder start token, for encoder-decoder models).
 */
import type { LanguageModelAdapter } from './adapter.js';
import { type GenerationInputs, type GenerationOutput, generate, planGeneration } from './generate.js';
import type { GenerationOptions, TokenEvent } from './options.js';

export interface GenerationStream extends AsyncIterable<TokenEvent> {
  /** The full result, as `generate` returns it (rejects as the iterator throws). */
  readonly result: Promise<GenerationOutput>;
}

/**
 * Starts generating and returns the stream of its tokens. Leaving the iteration
 * early (break, return) aborts the generation. Bad options throw here, synchronously,
 * before anything runs.
 */
export function streamGenerate<Cache>(
  adapter: LanguageModelAdapter<Cache>,
  inputs: GenerationInputs,
  options: GenerationOptions = {},
): GenerationStream {
  planGeneration(adapter as LanguageModelAdapter<unknown>, inputs, options);
  const controller = new AbortController();
  const outer = options.signal;
  const forward = () => controller.abort(outer?.reason);
  outer?.addEventListener('abort', forward, { once: true });

  const queue: TokenEvent[] = [];
  let finished = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };

  const result = generate(adapter, inputs, {
    ...options,
    signal: controller.signal,
    onToken: (event) => {
      options.onToken?.(event);
      queue.push(event);
      notify();
    },
  }).then(
    (out) => {
      finished = true;
      notify();
      return out;
    },
    (error: unknown) => {
      finished = true;
      failure = { error };
      notify();
      throw error;
    },
  );
  // the iterator reports failures; keep an unobserved `result` from crashing the process
  result.catch(() => {});
  const cleanup = () => outer?.removeEventListener('abort', forward);
  result.then(cleanup, cleanup);

  return {
    result,
    [Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
      return {
        async next(): Promise<IteratorResult<TokenEvent>> {
          for (;;) {
            const event = queue.shift();
            if (event) return { value: event, done: false };
            if (failure) throw failure.error;
            if (finished) return { value: undefined, done: true };
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
        },
        async return(): Promise<IteratorResult<TokenEvent>> {
          if (!finished) controller.abort(new Error('stream closed by the consumer'));
          await result.catch(() => {});
          return { value: undefined, done: true };
        },
      };
    },
  };
}
