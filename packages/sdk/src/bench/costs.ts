/**
 * What a figure's graphs multiply and read, counted from the graphs themselves (the
 * ModelProto bytes the model module built), not from a family's layer formulas: any
 * registered language-model family gets its figures. A product is a `linear` as the
 * builder writes it (Gemm, a weight-first MatMul, MatMulNBits, DynamicQuantizeMatMul)
 * over a weight initializer; the bytes are those of every checkpoint tensor the graph
 * maps (its external initializers; the few constants written into the graph are left
 * out), a Gather's table counted by the rows it picks.
 */
import { type GraphInitializer, type GraphNode, onnxType, readGraph } from '@blip2/onnx';
import type { Backend, BuiltGraph, Session } from '@blip2/tensor';

/** One `linear`: [rows, k] x [k, n] over the initializer `weight` (a packed weight: its data tensor). */
export interface Product {
  readonly weight: string;
  readonly k: number;
  readonly n: number;
}

export interface GraphCosts {
  readonly products: readonly Product[];
  /** bytes every run reads whole (weights, biases, norms, packed blocks and their scales) */
  readonly wholeBytes: number;
  /** the same tensors in float32 (packed weights at their logical [n, k] size, their scales none) */
  readonly wholeFloat32Bytes: number;
  /** bytes of one row of each table a Gather reads (a token embedding, a position table) */
  readonly gatheredRowBytes: number;
  /** per position per row: the float32 keys and values of every layer the graph takes as its past */
  readonly cacheBytesPerPosition: number;
}

const FLOAT = onnxType('float32');
const FLOAT16 = onnxType('float16');
const BFLOAT16 = onnxType('bfloat16');

/** Ops that only change how a weight is viewed before a product: the product reads the weight itself. */
const WEIGHT_VIEWS = new Set(['Cast', 'DequantizeLinear']);

/** The graph's costs (./run.ts sums them over the graphs a figure ran). */
export function graphCosts(graph: BuiltGraph): GraphCosts {
  const contents = readGraph(graph.bytes);
  const consumers = new Map<string, GraphNode[]>();
  const producer = new Map<string, GraphNode>();
  for (const node of contents.nodes) {
    for (const i of node.inputs) consumers.set(i, [...(consumers.get(i) ?? []), node]);
    for (const o of node.outputs) producer.set(o, node);
  }
  /** The initializer a product operand is, seen through casts and dequantization. */
  const weightOf = (value: string | undefined): GraphInitializer | undefined => {
    if (value === undefined || value === '') return undefined;
    const init = contents.initializers.get(value);
    if (init) return init;
    const p = producer.get(value);
    return p && WEIGHT_VIEWS.has(p.op) ? weightOf(p.inputs[0]) : undefined;
  };
  const products = contents.nodes.flatMap((n) => product(n, weightOf));
  const packedParts = new Set(
    contents.nodes.filter((n) => n.op === 'MatMulNBits').flatMap((n) => n.inputs.slice(1)),
  );
  const logical = new Map(products.map((p) => [p.weight, p.k * p.n * 4]));

  let wholeBytes = 0;
  let wholeFloat32Bytes = 0;
  let gatheredRowBytes = 0;
  for (const init of contents.initializers.values()) {
    if (!init.external) continue;
    let uses = consumers.get(init.name) ?? [];
    let value = init.name;
    let bytes = init.byteLength;
    // a half weight only widened for float32 kernels is folded into a float32 copy at session
    // creation: the run reads the copy, through whatever takes the Cast's output
    const half = init.dataType === FLOAT16 || init.dataType === BFLOAT16;
    if (half && uses.length === 1 && uses[0].op === 'Cast' && uses[0].ints.to === FLOAT) {
      value = uses[0].outputs[0];
      uses = consumers.get(value) ?? [];
      bytes *= 2;
    }
    if (uses.length > 0 && uses.every((n) => n.op === 'Gather' && n.inputs[0] === value)) {
      gatheredRowBytes += bytes / (init.dims[0] ?? 1);
      continue;
    }
    wholeBytes += bytes;
    wholeFloat32Bytes += logical.get(init.name) ?? (packedParts.has(init.name) ? 0 : floatWidth(init, bytes));
  }
  return {
    products,
    wholeBytes,
    wholeFloat32Bytes,
    gatheredRowBytes,
    cacheBytesPerPosition: cachePerPosition(graph),
  };
}

/** bytes of `init` as float32 (int8 weights of a DequantizeLinear fallback stay as they are: rare). */
function floatWidth(init: GraphInitializer, bytes: number): number {
  return init.dataType === FLOAT16 || init.dataType === BFLOAT16 ? init.byteLength * 2 : bytes;
}

function product(
  node: GraphNode,
  weightOf: (value: string | undefined) => GraphInitializer | undefined,
): Product[] {
  const [a, b] = node.inputs;
  switch (node.op) {
    case 'Gemm': {
      const w = weightOf(b);
      if (!w) return [];
      const [d0, d1] = w.dims;
      return [{ weight: w.name, k: node.ints.transB ? d1 : d0, n: node.ints.transB ? d0 : d1 }];
    }
    case 'MatMul': {
      const right = weightOf(b);
      if (right) return [{ weight: right.name, k: right.dims[0], n: right.dims[1] }];
      // weight-first: [out, in] @ [in, rows]
      const left = weightOf(a);
      return left ? [{ weight: left.name, k: left.dims[1], n: left.dims[0] }] : [];
    }
    case 'DynamicQuantizeMatMul':
    case 'MatMulInteger': {
      const w = weightOf(b);
      return w ? [{ weight: w.name, k: w.dims[0], n: w.dims[1] }] : [];
    }
    case 'MatMulNBits':
      return [{ weight: b, k: node.ints.K, n: node.ints.N }];
    default:
      return [];
  }
}

/** float32 bytes per position per row of the graph's `past_key_values.*` inputs (their fixed dims). */
function cachePerPosition(graph: BuiltGraph): number {
  return graph.inputs
    .filter((io) => io.name.startsWith('past_key_values.') && io.dtype === 'float32')
    .reduce((a, io) => a + 4 * io.dims.reduce<number>((x, d) => (typeof d === 'number' ? x * d : x), 1), 0);
}

/** The costs of the graphs one figure ran, each graph counted once (a step reads its weights once). */
export function sumCosts(costs: readonly GraphCosts[]): GraphCosts {
  return {
    products: costs.flatMap((c) => c.products),
    wholeBytes: costs.reduce((a, c) => a + c.wholeBytes, 0),
    wholeFloat32Bytes: costs.reduce((a, c) => a + c.wholeFloat32Bytes, 0),
    gatheredRowBytes: costs.reduce((a, c) => a + c.gatheredRowBytes, 0),
    cacheBytesPerPosition: costs.reduce((a, c) => a + c.cacheBytesPerPosition, 0),
  };
}

/** Bytes a run of `rows` rows reads: every whole tensor once, a row of each gathered table per row. */
export function bytesRead(costs: GraphCosts, rows: number): number {
  return costs.wholeBytes + rows * costs.gatheredRowBytes;
}

/** Multiply-adds x 2 of the products at `rows` rows; `rowsOf` overrides the rows of some (the LM head). */
export function productFlop(
  costs: GraphCosts,
  rows: number,
  rowsOf: (p: Product) => number = () => rows,
): number {
  return costs.products.reduce((a, p) => a + 2 * rowsOf(p) * p.k * p.n, 0);
}

export interface PrefillWork {
  /** multiply-adds x 2 of the products and the attention */
  readonly flop: number;
  readonly products: number;
  /** rows the LM head multiplies: 1 where the logits are the last position's only */
  readonly headRows: number;
  /** the largest product but the head (an MLP matrix): the shape whose rate limits the prefill */
  readonly main: Product;
}

/**
 * What a prefill of `length` positions through `graphs` computes: every product at every
 * position but the LM head (the `vocab`-wide product), at the positions its logits
 * output has; plus attention's scores and values, 2 x 2 x length^2 x (heads x head dim)
 * per layer, where heads x head dim over the layers is what the step's cache holds per
 * position (`cacheBytesPerPosition`: keys and values, 4 bytes each).
 */
export function prefillWork(
  graphs: readonly BuiltGraph[],
  cacheBytesPerPosition: number,
  length: number,
  vocab: number,
): PrefillWork {
  const costs = sumCosts(graphs.map(graphCosts));
  const logits = graphs.flatMap((g) => g.outputs).find((o) => o.name === 'logits');
  const headRows = logits?.dims[1] === 1 ? 1 : length;
  const isHead = (p: Product) => p.n === vocab;
  const attention = (length ** 2 * cacheBytesPerPosition) / 2;
  const main = costs.products
    .filter((p) => !isHead(p))
    .reduce<Product | undefined>((a, p) => (a === undefined || p.k * p.n > a.k * a.n ? p : a), undefined);
  if (!main) throw new Error(`prefillWork: ${graphs.map((g) => g.name).join(', ')} multiply no weight`);
  return {
    flop: productFlop(costs, length, (p) => (isHead(p) ? headRows : length)) + attention,
    products: costs.products.length,
    headRows,
    main,
  };
}

/**
 * `inner` with every session it loads reporting its runs: which graphs a figure ran is
 * then known, not assumed (a step may run an embedding graph and a step graph, a beam
 * step a graph loaded on its first use).
 */
export function recordingBackend(inner: Backend): {
  readonly backend: Backend;
  /** the graphs whose sessions ran during `f`, each once, in the order they first ran */
  graphsRunBy(f: () => Promise<unknown>): Promise<BuiltGraph[]>;
} {
  let ran: Map<string, BuiltGraph> | undefined;
  const backend = new Proxy(inner, {
    get(target, prop) {
      if (prop !== 'load') {
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      }
      return async (graph: BuiltGraph, options?: Parameters<Backend['load']>[1]): Promise<Session> => {
        const session = await target.load(graph, options);
        const note = () => ran?.set(graph.name, ran.get(graph.name) ?? graph);
        return new Proxy(session, {
          get(s, key) {
            const v = Reflect.get(s, key, s);
            if (typeof v !== 'function') return v;
            if (key === 'run' || key === 'runOnDevice')
              return (...args: unknown[]) => {
                note();
                return (v as (...a: unknown[]) => unknown).apply(s, args);
              };
            return v.bind(s);
          },
        });
      };
    },
  });
  return {
    backend,
    async graphsRunBy(f) {
      const outer = ran;
      ran = new Map();
      try {
        await f();
        return [...ran.values()];
      } finally {
        ran = outer;
      }
    },
  };
}
