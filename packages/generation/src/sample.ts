/**
 * Greedy search and multinomial sampling, transformers' `_sample`: one token per
 * row and step from the processed scores; rows that hit EOS keep going with the pad
 * id until every row is done or the maximum length is reached.
 */
import { argmax } from '@blip2/tensor';
import { applyProcessors } from './logits-process.js';
import { createRng } from './rng.js';
import { isEos, type SearchContext, type SearchResult, sampleRow } from './search.js';

export async function greedyOrSample(ctx: SearchContext): Promise<SearchResult> {
  const { runner, options: o, processors } = ctx;
  const copies = o.numReturnSequences;
  if (copies > 1) {
    // each input row sampled `copies` times: the prefilled cache is shared, not recomputed
    const rows: number[] = [];
    for (let b = 0; b < ctx.prompts.length; b++) for (let c = 0; c < copies; c++) rows.push(b);
    await runner.reorder(rows, true);
  }
  const sequences = ctx.prompts.flatMap((p) => Array.from({ length: copies }, () => [...p]));
  const rows = sequences.length;
  const unfinished = new Uint8Array(rows).fill(1);
  const rng = o.doSample ? createRng(o.seed) : undefined;
  const padFinished = o.eosTokenIds.length > 0;
  const v = runner.vocabSize;

  for (let step = 0; ; step++) {
    const next = new Array<number>(rows);
    for (let r = 0; r < rows; r++) {
      if (padFinished && !unfinished[r]) {
        next[r] = o.padTokenId as number;
        continue;
      }
      const scores = runner.scores.subarray(r * v, (r + 1) * v);
      applyProcessors(processors, sequences[r], scores);
      // torch.argmax: the first best on ties, a NaN over any number
      next[r] = rng ? sampleRow(scores, rng) : argmax(scores);
    }
    let open = 0;
    for (let r = 0; r < rows; r++) {
      sequences[r].push(next[r]);
      if (sequences[r].length >= o.maxLength || isEos(o, next[r])) unfinished[r] = 0;
      open += unfinished[r];
    }
    ctx.emit({ step, tokens: next });
    if (open === 0) break;
    await runner.step(next);
  }
  return { sequences };
}
