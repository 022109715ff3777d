// A checkpoint with a NaN (or Infinity) weight: the part whose output it poisons is found
// from that output (a scan of every weight at load would read a whole 15 GB checkpoint),
// then its weights are read to name the tensor. The model never answers "" as if that were
// its answer. Each case breaks one weight of a copy of a tiny fixture.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from '@blip2/fixtures';
import { serializeSafetensors, type TensorBytes } from '@blip2/safetensors';
import { afterAll, describe, expect, it } from 'vitest';
import { Blip2ForConditionalGeneration, SdkError } from '../src/index.js';

const IMAGE = join(fixtures.images, 'small_47x31.png');
const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A copy of `fixture` whose weight `name` holds `value` at element `index`. */
function poisoned(fixture: string, name: string, value: number, index = 3): string {
  const dir = mkdtempSync(join(tmpdir(), 'blip2-nan-'));
  made.push(dir);
  cpSync(fixture, dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const tensors: Record<string, TensorBytes> = {};
  for (const [key, info] of Object.entries<{ dtype: string; shape: number[]; data_offsets: number[] }>(
    header,
  )) {
    if (key === '__metadata__') continue;
    const data = new Uint8Array(bytes.subarray(8 + n + info.data_offsets[0], 8 + n + info.data_offsets[1]));
    if (key === name) new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)[index] = value;
    tensors[key] = { dtype: info.dtype as TensorBytes['dtype'], shape: info.shape, data };
  }
  expect(Object.keys(tensors)).toContain(name);
  writeFileSync(file, serializeSafetensors(tensors));
  return dir;
}

async function refusal(dir: string, run: (m: Blip2ForConditionalGeneration) => Promise<unknown>) {
  const model = await Blip2ForConditionalGeneration.fromPretrained(dir, { onWarning: () => {} });
  try {
    const e = await run(model).then(
      (answer) => ({ answer }),
      (err: unknown) => err,
    );
    expect(e, 'answered').toBeInstanceOf(SdkError);
    return e as SdkError;
  } finally {
    await model.dispose();
  }
}

const CASES = [
  [
    'OPT',
    fixtures.tinyOpt,
    'language_model.model.decoder.layers.0.fc1.weight',
    Number.NaN,
    'language model',
    'logits',
  ],
  [
    'OPT',
    fixtures.tinyOpt,
    'vision_model.embeddings.patch_embedding.weight',
    Number.POSITIVE_INFINITY,
    'vision encoder',
    'last hidden state',
  ],
  ['OPT', fixtures.tinyOpt, 'query_tokens', Number.NaN, 'Q-Former', 'query embeddings'],
  [
    'T5',
    fixtures.tinyT5,
    'language_model.encoder.block.0.layer.1.DenseReluDense.wo.weight',
    Number.NaN,
    'language model',
    'logits',
  ],
  [
    'T5',
    fixtures.tinyT5,
    'language_projection.weight',
    Number.NEGATIVE_INFINITY,
    'Q-Former',
    'query embeddings',
  ],
] as const;

describe('NaN and Infinity weights are refused, naming the tensor', () => {
  for (const [family, fixture, name, value, part, what] of CASES) {
    it(`${family}: ${value} in ${name}`, async () => {
      const dir = poisoned(fixture, name, value);
      const e = await refusal(dir, (m) => m.ask(IMAGE, 'what is it?', { maxNewTokens: 3 }));
      expect(e.code).toBe('E_NAN');
      expect(e.message).toBe(
        `the ${part}'s ${what} holds NaN or Infinity: weight ${name} holds ${value} at element 3; no answer is returned`,
      );
    });
  }

  it('caption and stream refuse too; the unbroken fixture still captions', async () => {
    const dir = poisoned(fixtures.tinyOpt, 'language_model.model.decoder.layers.0.fc1.weight', Number.NaN);
    expect((await refusal(dir, (m) => m.caption(IMAGE))).code).toBe('E_NAN');
    const streamed = await refusal(dir, async (m) => {
      for await (const _piece of m.stream(IMAGE)) {
        // a NaN model must not yield a single piece
        throw new Error('streamed a piece');
      }
    });
    expect(streamed.code).toBe('E_NAN');
    const good = await Blip2ForConditionalGeneration.fromPretrained(fixtures.tinyOpt);
    expect(typeof (await good.caption(IMAGE, { maxNewTokens: 3 }))).toBe('string');
    await good.dispose();
  });
});
