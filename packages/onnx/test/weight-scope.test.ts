// WeightScope: the one prefix helper the model packages read their checkpoints through.
// The numbers of `linear` are checked in linear.test.ts and by every model's parity test;
// here: the names it reads, the errors it gives, and the layout a scope passes on.

import { shapeOnlyWeights } from '@blip2/fixtures';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, WeightScope } from '../src/index.js';

const layer = 'vision_model.encoder.layers.3.';
const weights = shapeOnlyWeights(
  {
    [`${layer}mlp.fc1.weight`]: [6, 4],
    [`${layer}mlp.fc1.bias`]: [6],
    [`${layer}mlp.fc2.weight`]: [4, 6],
  },
  'F32',
);

function ops(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1');
}

describe('WeightScope', () => {
  it('prepends its prefix, and `at` descends into a submodule', () => {
    const g = new GraphBuilder('t', { weights });
    const mlp = new WeightScope(g, 'vision_model.').at('encoder.layers.3.').at('mlp.');
    expect(mlp.prefix).toBe(`${layer}mlp.`);
    expect(mlp.name('fc1.weight')).toBe(`${layer}mlp.fc1.weight`);
    expect(mlp.has('fc1.bias')).toBe(true);
    expect(mlp.has('fc2.bias')).toBe(false);
    expect(mlp.shape('fc1.weight', ['out', 4])).toEqual([6, 4]);
    expect(mlp.optional(false, 'fc2.bias', [4])).toBeNull();
  });

  it('names the full weight when one is missing or of another shape', () => {
    const mlp = new WeightScope(new GraphBuilder('t', { weights }), `${layer}mlp.`);
    const x = mlp.graph.input('x', 'float32', ['batch', 4]);
    const h = mlp.linear(x, 'fc1', [6, 4], true);
    expect(() => mlp.linear(h, 'fc2', [4, 6], true)).toThrow(
      expect.objectContaining({ code: 'E_MISSING_WEIGHT', weight: `${layer}mlp.fc2.bias` }),
    );
    expect(() => mlp.get('fc1.weight', [6, 5])).toThrow(
      expect.objectContaining({ code: 'E_WEIGHT_SHAPE', weight: `${layer}mlp.fc1.weight` }),
    );
  });

  it('multiplies with Gemm, or weight-first in every submodule of a weightFirst scope', () => {
    for (const weightFirst of [false, true]) {
      const g = new GraphBuilder('t', { weights });
      const mlp = new WeightScope(g, 'vision_model.', { weightFirst }).at('encoder.layers.3.mlp.');
      const x = g.input('x', 'float32', ['batch', 4]);
      g.output(mlp.linear(mlp.linear(x, 'fc1', [6, 4], true), 'fc2', [4, 6]), 'y', 'float32', ['batch', 4]);
      const text = ops(g.build().bytes);
      expect(text.includes('Gemm')).toBe(!weightFirst);
      expect(text.includes('MatMul')).toBe(weightFirst);
    }
  });
});
