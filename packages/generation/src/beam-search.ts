/**
 * Beam search as transformers 5 vectorizes it (`_beam_search`,
 * `_get_top_k_continuations`, `_get_running_beams_for_next_iteration`,
 * `_update_finished_beams`, `_check_early_stop_heuristic`), with the same float32
 * score arithmetic so that near-ties fall the same way:
 *
 * - scores are log-softmax of the logits, then the processors, plus the beam's
 *   running score; the first beam starts at 0 and the others at -1e9 so the first
 *   step expands one beam only;
 * - each step keeps K = max(2, 1 + #EOS) x numBeams candidates over beams x vocab:
 *   enough that numBeams of them are still running when the best ones end in EOS;
 * - a candidate that ends in EOS or reaches the maximum length is finished; if it is
 *   among the first numBeams candidates it competes for the numBeams finished slots
 *   with score sumLogprobs / generatedLength ** lengthPenalty, where the generated
 *   length excludes the prompt and includes the EOS;
 * - the best numBeams unfinished candidates run on; the search ends when no running
 *   beam can beat the worst finished one (the `earlyStopping` heuristics), when every
 *   slot finished and earlyStopping is true, or when every candidate hit a stop.
 *
 * Per step the work is O(beams x vocab) over typed arrays plus O(beams x length) to
 * copy the chosen sequences.
 */
import { logSoftmax, topk } from '@blip2/tensor';
import { GenerationError } from './errors.js';
import { applyProcessors } from './logits-process.js';
import { createRng, type Rng } from './rng.js';
import { isEos, type SearchContext, type SearchResult } from './search.js';

/** transformers' "very bad score": masks dead beams and unfinished candidates. */
const BAD = -1e9;
const f32 = Math.fround;

export async function beamSearch(ctx: SearchContext): Promise<SearchResult> {
  const { runner, options: o, processors } = ctx;
  const batch = ctx.prompts.length;
  const beams = o.numBeams;
  const vocab = runner.vocabSize;
  const keep = Math.max(2, 1 + o.eosTokenIds.length) * beams;
  if (keep > beams * vocab) {
    throw new GenerationError(
      'E_NUM_BEAMS',
      `beam search keeps ${keep} candidates but only ${beams * vocab} exist (vocab ${vocab})`,
    );
  }
  const promptLength = o.promptLength;
  const rng = o.doSample ? createRng(o.seed) : undefined;

  // every beam of row b starts from row b's prefill: the image side is shared
  const expand: number[] = [];
  for (let b = 0; b < batch; b++) for (let n = 0; n < beams; n++) expand.push(b);
  await runner.reorder(expand, true);

  let running = expand.map((b) => [...ctx.prompts[b]]);
  let runningScores = new Float32Array(batch * beams);
  for (let b = 0; b < batch; b++) runningScores.fill(BAD, b * beams + 1, (b + 1) * beams);
  // finished hypotheses, best first per row; placeholders until something finishes
  let finished = running.map((s) => [...s]);
  let finishedScores = new Float32Array(batch * beams).fill(BAD);
  let isFinished = new Uint8Array(batch * beams);
  const heuristicOpen = new Uint8Array(batch).fill(1);

  const candScores = new Float32Array(keep);
  const candIndex = new Int32Array(keep);
  const candHits = new Uint8Array(keep);
  const masked = new Float32Array(keep);
  const pickValues = new Float32Array(beams);
  const pickIndex = new Int32Array(beams);
  const pick = { values: pickValues, indices: pickIndex };
  const merged = new Float32Array(beams + keep);
  const sampleScratch = rng ? new Float64Array(beams * vocab) : undefined;

  for (let curLen = promptLength; ; curLen++) {
    const scores = runner.scores;
    for (let row = 0; row < batch * beams; row++) {
      const rowScores = scores.subarray(row * vocab, (row + 1) * vocab);
      logSoftmax(rowScores, rowScores);
      applyProcessors(processors, running[row], rowScores);
      const add = runningScores[row];
      for (let i = 0; i < vocab; i++) rowScores[i] = rowScores[i] + add;
    }

    const nextRunning: number[][] = [];
    const nextScores = new Float32Array(batch * beams);
    const beamRows: number[] = [];
    const nextFinished: number[][] = [];
    const nextFinishedScores = new Float32Array(batch * beams);
    const nextIsFinished = new Uint8Array(batch * beams);
    let allHit = true;
    const lengthScale = f32((curLen + 1 - promptLength) ** o.lengthPenalty);

    for (let b = 0; b < batch; b++) {
      // c. the K best (or K sampled) continuations over this row's beams x vocab
      const flat = scores.subarray(b * beams * vocab, (b + 1) * beams * vocab);
      if (rng) sampleWithoutReplacement(flat, keep, rng, sampleScratch!, candScores, candIndex);
      else topk(flat, keep, { values: candScores, indices: candIndex });
      const candBeam = (k: number) => b * beams + Math.floor(candIndex[k] / vocab);
      const candToken = (k: number) => candIndex[k] % vocab;
      const candSequence = (k: number) => [...running[candBeam(k)], candToken(k)];

      // d. which candidates stop here (EOS, or the maximum length)
      for (let k = 0; k < keep; k++) {
        candHits[k] = curLen + 1 >= o.maxLength || isEos(o, candToken(k)) ? 1 : 0;
        if (!candHits[k]) allHit = false;
      }

      // e. the best unfinished candidates run on
      for (let k = 0; k < keep; k++) masked[k] = f32(candScores[k] + candHits[k] * BAD);
      topk(masked, beams, pick);
      for (let j = 0; j < beams; j++) {
        const k = pickIndex[j];
        nextRunning.push(candSequence(k));
        nextScores[b * beams + j] = pickValues[j];
        beamRows.push(candBeam(k));
      }

      // f. finished candidates among the first `beams` compete with the finished slots
      let rowFull = o.earlyStopping === true;
      for (let n = 0; n < beams; n++) if (!isFinished[b * beams + n]) rowFull = false;
      merged.set(finishedScores.subarray(b * beams, (b + 1) * beams));
      for (let k = 0; k < keep; k++) {
        const justFinished = candHits[k] === 1 && k < beams;
        let s = f32(candScores[k] / lengthScale);
        if (rowFull) s = f32(s + BAD);
        if (!heuristicOpen[b]) s = f32(s + BAD);
        if (!justFinished) s = f32(s + BAD);
        merged[beams + k] = s;
      }
      topk(merged, beams, pick);
      for (let j = 0; j < beams; j++) {
        const m = pickIndex[j];
        const slot = b * beams + j;
        nextFinishedScores[slot] = pickValues[j];
        if (m < beams) {
          nextFinished.push(finished[b * beams + m]);
          nextIsFinished[slot] = isFinished[b * beams + m];
        } else {
          const k = m - beams;
          nextFinished.push(candSequence(k));
          nextIsFinished[slot] = candHits[k] === 1 && k < beams ? 1 : 0;
        }
      }
    }
    running = nextRunning;
    runningScores = nextScores;
    finished = nextFinished;
    finishedScores = nextFinishedScores;
    isFinished = nextIsFinished;

    // g. can any running beam still beat the worst finished hypothesis?
    const generated = curLen + 1 - promptLength;
    const bestLength =
      o.earlyStopping === 'never' && o.lengthPenalty > 0 ? o.maxLength - promptLength : generated;
    const bestScale = f32(bestLength ** o.lengthPenalty);
    let anyOpen = false;
    let allFinished = true;
    for (let b = 0; b < batch; b++) {
      let worst = Number.POSITIVE_INFINITY;
      for (let n = 0; n < beams; n++) worst = Math.min(worst, finishedScores[b * beams + n]);
      const bestPossible = f32(runningScores[b * beams] / bestScale);
      let improvable = false;
      for (let n = 0; n < beams; n++) {
        if (!isFinished[b * beams + n]) allFinished = false;
        if (bestPossible > (isFinished[b * beams + n] ? worst : BAD)) improvable = true;
      }
      if (!improvable) heuristicOpen[b] = 0;
      if (heuristicOpen[b]) anyOpen = true;
    }
    const done = !anyOpen || (allFinished && o.earlyStopping === true) || allHit;
    if (done) break;
    await runner.reorder(beamRows, false);
    await runner.step(running.map((s) => s[s.length - 1]));
  }

  return collect(ctx, finished, finishedScores);
}

/** The best `numReturnSequences` finished hypotheses per row, padded to the longest. */
function collect(ctx: SearchContext, finished: number[][], finishedScores: Float32Array): SearchResult {
  const o = ctx.options;
  const beams = o.numBeams;
  const picked: number[][] = [];
  const sequencesScores: number[] = [];
  for (let b = 0; b < ctx.prompts.length; b++) {
    for (let i = 0; i < o.numReturnSequences; i++) {
      picked.push(finished[b * beams + i]);
      sequencesScores.push(finishedScores[b * beams + i]);
    }
  }
  // transformers fills unused positions with `pad_token_id or eos_token_id[0]` (so a pad id 0 gives EOS)
  const fill = o.eosTokenIds.length > 0 ? o.padTokenId || o.eosTokenIds[0] : -1;
  const length = picked.reduce((m, s) => Math.max(m, s.length), 0);
  const sequences = picked.map((s) => {
    const out = [...s];
    while (out.length < length) out.push(fill);
    return out;
  });
  // beams are only final now: stream the returned sequences token by token
  for (let step = 0; o.promptLength + step < length; step++) {
    ctx.emit({ step, tokens: sequences.map((s) => s[o.promptLength + step]) });
  }
  return { sequences, sequencesScores };
}

/** `k` draws without replacement from softmax(values) (torch.multinomial(..., replacement=False)), in draw order. */
function sampleWithoutReplacement(
  values: Float32Array,
  k: number,
  rng: Rng,
  weights: Float64Array,
  outValues: Float32Array,
  outIndex: Int32Array,
): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    weights[i] = Math.exp(values[i] - max);
    total += weights[i];
  }
  for (let j = 0; j < k; j++) {
    if (!(total > 0))
      throw new GenerationError(
        'E_NO_CANDIDATES',
        `beam sampling ran out of tokens with any probability after ${j} draws`,
      );
    const target = rng.next() * total;
    let cumulative = 0;
    let chosen = -1;
    for (let i = 0; i < values.length; i++) {
      if (weights[i] === 0) continue;
      cumulative += weights[i];
      chosen = i;
      if (target < cumulative) break;
    }
    outValues[j] = values[chosen];
    outIndex[j] = chosen;
    total -= weights[chosen];
    weights[chosen] = 0;
  }
}
