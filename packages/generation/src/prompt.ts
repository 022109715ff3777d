/**
 * Putting the Q-Former's query embeddings into the prompt. BLIP-2 checkpoints
 * whose processor inserts `<image>` tokens get them written at those positions
 * (the reference's `inputs_embeds[special_image_mask] = language_model_inputs`);
 * older snapshots without image tokens get them prepended, with the attention
 * mask extended by ones (transformers 4.3x before image tokens, and LAVIS).
 */
import { concat, type Tensor, tensor } from '@blip2/tensor';
import { GenerationError } from './errors.js';

function expectFloat3(name: string, t: Tensor): asserts t is Tensor<'float32'> {
  if (t.dtype !== 'float32' || t.dims.length !== 3) {
    throw new GenerationError(
      'E_INPUT',
      `${name} must be float32 [batch, sequence, hidden], got ${t.dtype} [${t.dims}]`,
    );
  }
}

function expectInt2(name: string, t: Tensor): asserts t is Tensor<'int64'> {
  if (t.dtype !== 'int64' || t.dims.length !== 2) {
    throw new GenerationError(
      'E_INPUT',
      `${name} must be int64 [batch, sequence], got ${t.dtype} [${t.dims}]`,
    );
  }
}

/**
 * Text embeddings [B, T, D] with the rows at `imageTokenId` positions of
 * `inputIds` [B, T] replaced, in order, by `queryEmbeds` [B, Q, D]. Every row
 * must hold exactly Q image tokens (what Blip2Processor writes).
 */
export function mergeQueryEmbeds(
  textEmbeds: Tensor<'float32'>,
  inputIds: Tensor<'int64'>,
  queryEmbeds: Tensor<'float32'>,
  imageTokenId: number,
): Tensor<'float32'> {
  expectFloat3('textEmbeds', textEmbeds);
  expectInt2('inputIds', inputIds);
  expectFloat3('queryEmbeds', queryEmbeds);
  const [b, t, d] = textEmbeds.dims;
  const [qb, q, qd] = queryEmbeds.dims;
  if (inputIds.dims[0] !== b || inputIds.dims[1] !== t) {
    throw new GenerationError(
      'E_INPUT',
      `inputIds [${inputIds.dims}] do not match textEmbeds [${textEmbeds.dims}]`,
    );
  }
  if (qb !== b || qd !== d) {
    throw new GenerationError(
      'E_INPUT',
      `queryEmbeds [${queryEmbeds.dims}] do not match textEmbeds [${textEmbeds.dims}] (batch and hidden size)`,
    );
  }
  const out = textEmbeds.data.slice();
  const id = BigInt(imageTokenId);
  for (let row = 0; row < b; row++) {
    let k = 0;
    for (let pos = 0; pos < t; pos++) {
      if (inputIds.data[row * t + pos] !== id) continue;
      if (k < q)
        out.set(queryEmbeds.data.subarray((row * q + k) * d, (row * q + k + 1) * d), (row * t + pos) * d);
      k++;
    }
    if (k !== q) {
      throw new GenerationError(
        'E_IMAGE_TOKENS',
        `inputIds row ${row} holds ${k} image tokens (id ${imageTokenId}) but there are ${q} query embeddings per image`,
      );
    }
  }
  return tensor('float32', [b, t, d], out);
}

/**
 * For checkpoints without an image token: `concat([query, text])` on the
 * sequence axis, and the attention mask with Q ones in front.
 */
export function prependQueryEmbeds(
  queryEmbeds: Tensor<'float32'>,
  textEmbeds: Tensor<'float32'>,
  attentionMask: Tensor<'int64'>,
): { inputsEmbeds: Tensor<'float32'>; attentionMask: Tensor<'int64'> } {
  expectFloat3('queryEmbeds', queryEmbeds);
  expectFloat3('textEmbeds', textEmbeds);
  expectInt2('attentionMask', attentionMask);
  const [b, t, d] = textEmbeds.dims;
  const [qb, q, qd] = queryEmbeds.dims;
  if (qb !== b || qd !== d) {
    throw new GenerationError(
      'E_INPUT',
      `queryEmbeds [${queryEmbeds.dims}] do not match textEmbeds [${textEmbeds.dims}] (batch and hidden size)`,
    );
  }
  if (attentionMask.dims[0] !== b || attentionMask.dims[1] !== t) {
    throw new GenerationError(
      'E_INPUT',
      `attentionMask [${attentionMask.dims}] does not match textEmbeds [${textEmbeds.dims}]`,
    );
  }
  const ones = tensor('int64', [b, q], new BigInt64Array(b * q).fill(1n));
  return {
    inputsEmbeds: concat([queryEmbeds, textEmbeds], 1),
    attentionMask: concat([ones, attentionMask], 1),
  };
}
