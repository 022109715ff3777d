/**
 * BLIP-2 puts the query embeddings where the processor wrote `<image>` tokens
 * (transformers' `inputs_embeds[special_image_mask] = language_model_inputs`):
 * the k-th `<image>` position of a row takes the k-th query embedding of that row.
 */
import { type Tensor, tensor } from '@blip2/tensor';
import { T5Error } from './errors.js';

export function mergeQueryEmbeds(
  inputsEmbeds: Tensor<'float32'>,
  inputIds: Tensor<'int64'>,
  queryEmbeds: Tensor<'float32'>,
  imageTokenId: number,
): Tensor<'float32'> {
  const [B, T, D] = inputsEmbeds.dims;
  const [qb, Q, qd] = queryEmbeds.dims;
  if (
    inputsEmbeds.dims.length !== 3 ||
    inputIds.dims.length !== 2 ||
    inputIds.dims[0] !== B ||
    inputIds.dims[1] !== T
  ) {
    throw new T5Error(
      'E_INPUT',
      `mergeQueryEmbeds: inputIds [${inputIds.dims}] must be [B, T] of inputsEmbeds [${inputsEmbeds.dims}]`,
    );
  }
  if (queryEmbeds.dims.length !== 3 || qb !== B || qd !== D) {
    throw new T5Error(
      'E_INPUT',
      `mergeQueryEmbeds: queryEmbeds [${queryEmbeds.dims}] must be [${B}, queries, ${D}]`,
    );
  }
  const out = inputsEmbeds.data.slice();
  for (let b = 0; b < B; b++) {
    let k = 0;
    for (let t = 0; t < T; t++) {
      if (inputIds.data[b * T + t] !== BigInt(imageTokenId)) continue;
      if (k < Q) out.set(queryEmbeds.data.subarray((b * Q + k) * D, (b * Q + k + 1) * D), (b * T + t) * D);
      k++;
    }
    if (k !== Q) {
      throw new T5Error(
        'E_INPUT',
        `mergeQueryEmbeds: row ${b} of inputIds has ${k} <image> tokens (id ${imageTokenId}), expected one per query embedding (${Q})`,
      );
    }
  }
  return tensor('float32', [B, T, D], out);
}
