/**
 * Checks a run's feeds against the graph's declared inputs before onnxruntime
 * sees them, so a wrong dtype or shape is reported by name instead of as an
 * error from deep inside the runtime.
 */
import type { GraphIO } from './backend.js';
import { type AnyTensor, isDeviceTensor } from './device.js';
import { TensorError } from './errors.js';

export function checkFeeds(
  graphName: string,
  inputs: readonly GraphIO[],
  feeds: Readonly<Record<string, AnyTensor>>,
): void {
  const declared = new Map(inputs.map((io) => [io.name, io]));
  const missing = inputs.filter((io) => !(io.name in feeds)).map((io) => io.name);
  const extra = Object.keys(feeds).filter((n) => !declared.has(n));
  if (missing.length || extra.length) {
    const parts = [];
    if (missing.length) parts.push(`missing ${missing.join(', ')}`);
    if (extra.length) parts.push(`unexpected ${extra.join(', ')}`);
    throw new TensorError(
      'E_FEEDS',
      `${graphName}: ${parts.join('; ')} (inputs are ${inputs.map((i) => i.name).join(', ')})`,
    );
  }
  const symbols = new Map<string, number>();
  for (const io of inputs) {
    const t = feeds[io.name];
    if (isDeviceTensor(t) && t.disposed) {
      throw new TensorError(
        'E_DISPOSED',
        `${graphName}: input '${io.name}' is a ${t.location} tensor that was already disposed`,
      );
    }
    if (t.dtype !== io.dtype) {
      throw new TensorError(
        'E_FEEDS',
        `${graphName}: input '${io.name}' must be ${io.dtype}, got ${t.dtype}`,
      );
    }
    const bad = () =>
      new TensorError(
        'E_FEEDS',
        `${graphName}: input '${io.name}' has dims [${t.dims.join(', ')}], expected [${io.dims.join(', ')}]`,
      );
    if (t.dims.length !== io.dims.length) throw bad();
    io.dims.forEach((d, i) => {
      if (typeof d === 'number') {
        if (t.dims[i] !== d) throw bad();
      } else {
        // a symbolic dim named twice (e.g. 'batch') must agree across inputs
        const seen = symbols.get(d);
        if (seen !== undefined && seen !== t.dims[i]) {
          throw new TensorError(
            'E_FEEDS',
            `${graphName}: '${d}' is ${seen} in one input but ${t.dims[i]} in '${io.name}'`,
          );
        }
        symbols.set(d, t.dims[i]);
      }
    });
  }
}
