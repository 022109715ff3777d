import { createNodeBackend } from '@blip2/backend-node';
import {
  gatherSlots,
  KV_IO,
  maskFilled,
  maskWithCapacity,
  ownRows,
  ownSlot,
  withCapacity,
  writeSlots,
} from '@blip2/onnx';
import { type AnyTensor, concat, gather, int64, maxAbsDiff, type Tensor } from '@blip2/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPT_IO, type OptGraphs } from '../src/index.js';
import { ids, openTiny, type Tiny } from './tiny.js';

let tiny: Tiny;
let graphs: OptGraphs;
beforeAll(async () => {
  tiny = await openTiny();
  graphs = tiny.graphs;
});
afterAll(async () => {
  await tiny.close();
});

describe('beam caches kept in place: pastRows', () => {
  it('a reorder composes: row b of the reordered cache has the history of row rows[b]', () => {
    // two rows of 4 slots, then a step that wrote slot 2 of each row's own buffer row
    let pastRows = ownSlot(ownRows(2, 4), 2);
    expect([...pastRows.data]).toEqual([0n, 0n, 0n, 0n, 1n, 1n, 1n, 1n]);
    // expand to 3 beams (two continue row 1), then a step into slot 3
    pastRows = ownSlot(gather(pastRows, 0, [1, 0, 1]), 3);
    expect([...pastRows.data]).toEqual([1n, 1n, 1n, 0n, 0n, 0n, 0n, 1n, 1n, 1n, 1n, 2n]);
    // beam 0 continues beam 2, beam 1 beam 2 too, beam 2 beam 0: beam 1's line is gone
    pastRows = gather(pastRows, 0, [2, 2, 0]);
    expect([...pastRows.data]).toEqual([1n, 1n, 1n, 2n, 1n, 1n, 1n, 2n, 1n, 1n, 1n, 0n]);
  });
});

describe('the beam step graph (stepBeams): beams append in place, the cache never moves', () => {
  it('takes one token per row, past_rows, and buffers of any number of rows; outputs the new keys/values', () => {
    expect(graphs.stepBeams.name).toBe('opt.step_beams');
    const names = (io: readonly { name: string; dims: readonly (string | number)[] }[]) =>
      io.map((x) => `${x.name}[${x.dims}]`);
    const h = tiny.config.numAttentionHeads;
    const hd = tiny.config.hiddenSize / h;
    expect(names(graphs.stepBeams.inputs).slice(0, 4)).toEqual([
      'input_ids[batch,1]',
      'attention_mask[batch,total_sequence]',
      'past_rows[batch,past_sequence]',
      `past_key_values.0.key[past_batch,${h},past_sequence,${hd}]`,
    ]);
    expect(names(graphs.stepBeams.outputs).slice(0, 2)).toEqual([
      `logits[batch,1,${tiny.config.vocabSize}]`,
      `appended.0.key[batch,${h},1,${hd}]`,
    ]);
  });

  it('gives what the batched step gives on the cache gathered in JavaScript, over several reorders', async () => {
    const backend = createNodeBackend();
    const batched = await backend.load(graphs.stepBatched);
    const beams = await backend.load(graphs.stepBeams);
    const layers = tiny.config.numHiddenLayers;
    // case0's prompt in two rows, row 1 left padded by two
    const prompt = tiny.json.cases[0].input_ids;
    const t = prompt.length;
    const mask0 = int64([2, t], [...new Array(t).fill(1), 0, 0, ...new Array(t - 2).fill(1)]);
    const prefill = await tiny.adapter.prefill(
      concat([await tiny.adapter.embed(ids([prompt])), await tiny.adapter.embed(ids([prompt]))], 0),
      mask0,
    );
    // the reference: every reorder gathers the whole cache, every step outputs it grown
    let keys = prefill.cache.keys as Tensor<'float32'>[];
    let values = prefill.cache.values as Tensor<'float32'>[];
    let mask = mask0;
    // in place: 4 buffer rows (the beams), the prompt's 2 copied once, room for every step
    const capacity = t + 8;
    const bufK = keys.map((k) => withCapacity(k, t, capacity, 4));
    const bufV = values.map((v) => withCapacity(v, t, capacity, 4));
    let pastRows = ownRows(2, capacity);
    let slotMask = maskWithCapacity(mask0, t, capacity);
    let filled = t;
    // expansion, a repeated parent with row 2 dropped, every beam from two parents, one parent for three
    const orders = [
      [0, 0, 1, 1],
      [1, 1, 0, 3],
      [3, 0, 0, 2],
      [2, 2, 2, 1],
      [0, 1, 2, 3],
    ];
    const tokens = [
      [5, 17, 400, 9],
      [3, 3, 946, 12],
      [400, 8, 5, 77],
      [2, 2, 2, 2],
      [6, 7, 8, 9],
    ];
    let worst = 0;
    for (let s = 0; s < orders.length; s++) {
      const rows = orders[s];
      const tokenIds = ids(tokens[s].map((x) => [x]));
      const one = int64([4, 1], [1, 1, 1, 1]);
      mask = gather(mask, 0, rows);
      const reference: Record<string, AnyTensor> = {
        [OPT_IO.step.inputIds]: tokenIds,
        [OPT_IO.step.attentionMask]: concat([mask, one], 1),
      };
      pastRows = gather(pastRows, 0, rows);
      slotMask = gather(slotMask, 0, rows);
      const inPlace: Record<string, AnyTensor> = {
        [OPT_IO.stepBeams.inputIds]: tokenIds,
        [OPT_IO.stepBeams.attentionMask]: concat([slotMask, one], 1),
        [OPT_IO.stepBeams.pastRows]: pastRows,
      };
      for (let i = 0; i < layers; i++) {
        reference[KV_IO.pastKey(i)] = gather(keys[i], 0, rows);
        reference[KV_IO.pastValue(i)] = gather(values[i], 0, rows);
        inPlace[KV_IO.pastKey(i)] = bufK[i];
        inPlace[KV_IO.pastValue(i)] = bufV[i];
      }
      const want = await batched.run(reference);
      const got = await beams.run(inPlace);
      const d = maxAbsDiff(got.logits as Tensor<'float32'>, want.logits as Tensor<'float32'>);
      expect(d, `logits after reorder ${s}`).toBeLessThanOrEqual(1e-5);
      worst = Math.max(worst, d);
      keys = Array.from({ length: layers }, (_, i) => want[KV_IO.presentKey(i)] as Tensor<'float32'>);
      values = Array.from({ length: layers }, (_, i) => want[KV_IO.presentValue(i)] as Tensor<'float32'>);
      mask = concat([mask, one], 1);
      for (let i = 0; i < layers; i++) {
        writeSlots(bufK[i], filled, got[KV_IO.appendedKey(i)] as Tensor<'float32'>);
        writeSlots(bufV[i], filled, got[KV_IO.appendedValue(i)] as Tensor<'float32'>);
      }
      pastRows = ownSlot(pastRows, filled);
      slotMask = maskFilled(slotMask, filled, 1);
      filled++;
      // the buffers, read through pastRows, hold the reference's grown cache
      for (let i = 0; i < layers; i++) {
        const k = maxAbsDiff(gatherSlots(bufK[i], pastRows, filled), keys[i]);
        const v = maxAbsDiff(gatherSlots(bufV[i], pastRows, filled), values[i]);
        expect(Math.max(k, v), `layer ${i} cache after step ${s}`).toBeLessThanOrEqual(1e-5);
      }
    }
    console.log(
      `stepBeams vs stepBatched over ${orders.length} reorders: max |logits diff| ${worst.toExponential(2)}`,
    );
    await Promise.all([batched.release(), beams.release()]);
  });
});
