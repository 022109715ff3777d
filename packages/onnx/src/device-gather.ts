/**
 * Beam search reorders the key/value cache every step (`reorderCache`: pick and
 * repeat rows). When the cache lives on a device (WebGPU buffers), doing that on
 * the CPU would download and re-upload every layer's keys and values; instead a
 * tiny graph of one Gather on axis 0 per tensor runs on the same backend, and its
 * outputs stay on the device. CPU tensors keep the CPU path.
 */

import {
  type AnyTensor,
  type Backend,
  type BuiltGraph,
  type DType,
  gather,
  int64,
  isDeviceTensor,
  LazySession,
  type Session,
  type Tensor,
} from '@blip2/tensor';
import { GraphBuilder } from './graph.js';
import { gather as gatherNode } from './ops.js';

/** Gather(x_i, rows, axis 0) for every input; one run moves a whole cache. */
export function buildRowGather(name: string, inputs: readonly { dtype: DType; rank: number }[]): BuiltGraph {
  const g = new GraphBuilder(name);
  const rows = g.input('rows', 'int64', ['rows']);
  const xs = inputs.map(({ dtype, rank }, i) => {
    // each input has its own symbolic dims: layers may differ in length (T5's self vs cross attention)
    const rest = Array.from({ length: rank - 1 }, (_, d) => `x${i}_d${d + 1}`);
    return { x: g.input(`x${i}`, dtype, [`x${i}_d0`, ...rest]), dtype, rest };
  });
  xs.forEach(({ x, dtype, rest }, i) => {
    g.output(gatherNode(x, rows, 0), `y${i}`, dtype, ['rows', ...rest]);
  });
  return g.build();
}

export class DeviceRowGather {
  /** one session per input signature, loaded on first use (never on CPU/wasm backends) */
  private readonly sessions = new Map<string, LazySession>();

  constructor(
    private readonly backend: Backend,
    private readonly name: string,
  ) {}

  /** `rows` of each tensor (axis 0), device tensors on the device, CPU ones on the CPU. */
  async gather<D extends DType>(
    tensors: readonly AnyTensor<D>[],
    rows: readonly number[],
  ): Promise<AnyTensor<D>[]> {
    const out: AnyTensor<D>[] = new Array(tensors.length);
    const onDevice: number[] = [];
    tensors.forEach((t, i) => {
      if (isDeviceTensor(t)) onDevice.push(i);
      else out[i] = gather(t as Tensor<D>, 0, rows);
    });
    if (onDevice.length === 0) return out;
    const picked = onDevice.map((i) => tensors[i]);
    const session = await this.session(picked);
    const feeds: Record<string, AnyTensor> = { rows: int64([rows.length], rows) };
    picked.forEach((t, j) => {
      feeds[`x${j}`] = t;
    });
    const result = await session.runOnDevice(feeds);
    onDevice.forEach((i, j) => {
      out[i] = result[`y${j}`] as AnyTensor<D>;
    });
    return out;
  }

  async release(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map((s) => s.release()));
  }

  private session(tensors: readonly AnyTensor[]): Promise<Session> {
    const signature = tensors.map((t) => ({ dtype: t.dtype, rank: t.dims.length }));
    const key = signature.map((s) => `${s.dtype}/${s.rank}`).join(',');
    let session = this.sessions.get(key);
    if (!session) {
      const graph = buildRowGather(`${this.name}.reorder`, signature);
      session = new LazySession(() =>
        this.backend.load(graph, { keepOnDevice: graph.outputs.map((io) => io.name) }),
      );
      this.sessions.set(key, session);
    }
    return session.get();
  }
}
