/**
 * Exact GELU on the tiny-blip2-t5 fixture. The published Flan-T5 BLIP-2 configs store
 * `"feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu"`: the stored field must select
 * torch's exact (erf) GELU, not the tanh approximation `gelu_new` the projection alone implies.
 * The float64 transcription of modeling_t5.py (./t5-reference.ts) is first held to the
 * fixture's transformers tensors with gelu_new, then run with each activation: the graph built
 * from the stored field matches the exact one, and the two activations differ well beyond the
 * tolerance.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeBackend } from '@blip2/backend-node';
import { parseBlip2Config, type T5Config } from '@blip2/configs';
import { openWeightsFromDir } from '@blip2/safetensors/node';
import { float32, int64, maxAbsDiff } from '@blip2/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { buildT5, T5Adapter } from '../src/index.js';
import { readReference, tinyT5 } from './helpers.js';
import { activation, erf, type Mat, type Rows, reference } from './t5-reference.js';

const { dir, blip2, config: fixtureConfig, reference: cases } = tinyT5();
const ref = await readReference(dir);
const checkpoint = await openWeightsFromDir(dir);
afterAll(() => checkpoint.close());

/** The fixture's language-model weights as float64 reference matrices. */
const weights = new Map<string, Mat>();
for (const [name, info] of checkpoint.tensors) {
  if (!name.startsWith('language_model.')) continue;
  const t = await checkpoint.read(name);
  const data = Float32Array.from(t.data as Float32Array);
  weights.set(
    name,
    info.shape.length === 2
      ? { rows: info.shape[0], cols: info.shape[1], data }
      : { rows: 1, cols: data.length, data },
  );
}

/** The config.json the conversion script writes for Flan-T5, on the fixture's sizes. */
const storedGelu = (() => {
  const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  raw.text_config.dense_act_fn = 'gelu';
  return parseBlip2Config(raw, 'tiny-blip2-t5/config.json + dense_act_fn "gelu"').textConfig as T5Config;
})();

/** Case i's encoder input: `shared` rows with the recorded query embeddings at the <image> positions. */
function caseEmbeds(i: number): Rows {
  const shared = weights.get('language_model.shared.weight') as Mat;
  const query = ref(`case${i}/language_projection`);
  const D = shared.cols;
  let q = 0;
  return cases.cases[i].input_ids.map((id) =>
    id === blip2.imageTokenIndex
      ? Array.from(query.data.subarray(D * q, D * ++q))
      : Array.from(shared.data.subarray(D * id, D * (id + 1))),
  );
}

const flat = (rows: Rows) => rows.flat();
const maxDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('exact GELU selected by a stored dense_act_fn', () => {
  it('erf in float64 is exact to 1e-12 at known values', () => {
    // erf(0.5), erf(1), erf(2), erf(3.5) (Abramowitz & Stegun table 7.1, 15 digits)
    expect(Math.abs(erf(0.5) - 0.520499877813047)).toBeLessThan(1e-12);
    expect(Math.abs(erf(1) - 0.842700792949715)).toBeLessThan(1e-12);
    expect(Math.abs(erf(-2) + 0.995322265018953)).toBeLessThan(1e-12);
    expect(Math.abs(erf(3.5) - 0.999999256901628)).toBeLessThan(1e-12);
  });

  it('the parsed config: derived gelu_new by default, gelu when stored', () => {
    expect(fixtureConfig).toMatchObject({
      feedForwardProj: 'gated-gelu',
      denseActFn: 'gelu_new',
      isGatedAct: true,
    });
    expect(storedGelu).toMatchObject({ feedForwardProj: 'gated-gelu', denseActFn: 'gelu', isGatedAct: true });
  });

  it('the graph computes Erf for gelu and Tanh for gelu_new', () => {
    const ops = (c: T5Config) => {
      const text = new TextDecoder('latin1').decode(buildT5(c, checkpoint).encoder.bytes);
      return { erf: text.includes('Erf'), tanh: text.includes('Tanh') };
    };
    expect(ops(storedGelu)).toEqual({ erf: true, tanh: false });
    expect(ops(fixtureConfig)).toEqual({ erf: false, tanh: true });
  });

  for (let i = 0; i < cases.cases.length; i++) {
    it(`case${i}: float64 reference = transformers with gelu_new; the stored gelu graph = the exact reference`, async () => {
      const embeds = caseEmbeds(i);
      const mask = embeds.map(() => 1);
      const dec = cases.cases[i].decoder_input_ids;

      // the transcription against transformers on the fixture as recorded (gelu_new)
      const tanhRef = reference(fixtureConfig, weights, embeds, mask, dec);
      expect(
        maxDiff(flat(tanhRef.encoderOut), [...ref(`case${i}/t5_encoder_last_hidden_state`).data]),
      ).toBeLessThan(1e-4);
      expect(maxDiff(flat(tanhRef.logits), [...ref(`case${i}/logits`).data])).toBeLessThan(1e-4);

      const exactRef = reference(storedGelu, weights, embeds, mask, dec);
      const adapter = await T5Adapter.load(storedGelu, buildT5(storedGelu, checkpoint), createNodeBackend());
      try {
        const S = embeds.length;
        const embedsT = float32([1, S, storedGelu.dModel], flat(embeds));
        const maskT = int64([1, S], mask);
        const { lastHiddenState } = await adapter.encode(embedsT, maskT);
        const { logits } = await adapter.decode(
          int64([1, dec.length], dec),
          await adapter.encoderCache(embedsT, maskT),
        );
        const exactEnc = maxAbsDiff(
          lastHiddenState,
          float32(lastHiddenState.dims, flat(exactRef.encoderOut)),
        );
        const exactLogits = maxAbsDiff(logits, float32(logits.dims, flat(exactRef.logits)));
        const tanhLogits = maxAbsDiff(logits, float32(logits.dims, flat(tanhRef.logits)));
        const apart = maxDiff(flat(exactRef.logits), flat(tanhRef.logits));
        console.log(
          `case${i}: gelu graph vs exact float64 encoder ${exactEnc.toExponential(2)}, logits ${exactLogits.toExponential(2)}; vs tanh ${tanhLogits.toExponential(2)}; exact vs tanh references ${apart.toExponential(2)}`,
        );
        expect(exactEnc).toBeLessThan(1e-4);
        expect(exactLogits).toBeLessThan(1e-4);
        // the two activations are told apart: more than 10x the tolerance away
        expect(apart).toBeGreaterThan(1e-3);
        expect(tanhLogits).toBeGreaterThan(1e-3);
      } finally {
        await adapter.release();
      }
    });
  }

  it('activation() of the reference: gelu and gelu_new differ by up to ~2e-4 per unit', () => {
    const xs = Array.from({ length: 801 }, (_, k) => -8 + k / 50);
    const gap = Math.max(...xs.map((x) => Math.abs(activation('gelu')(x) - activation('gelu_new')(x))));
    expect(gap).toBeGreaterThan(1e-4);
    expect(gap).toBeLessThan(1e-3);
  });
});
