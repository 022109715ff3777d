/**
 * Reading back what a built graph holds: its nodes (op, inputs, outputs, integer
 * attributes) and its initializers (name, dims, element type, bytes), from the
 * ModelProto bytes GraphBuilder writes. The reader knows only those fields of
 * onnx.proto (numbers as in ./proto.ts' writer); it is how a tool counts what a
 * graph multiplies and reads without a protobuf runtime.
 */

export interface GraphNode {
  readonly op: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** the INT attributes (K, N, transB, ...) */
  readonly ints: Readonly<Record<string, number>>;
}

export interface GraphInitializer {
  readonly name: string;
  readonly dims: readonly number[];
  /** TensorProto.DataType */
  readonly dataType: number;
  /** bytes of its data (dims x element size), external or embedded */
  readonly byteLength: number;
  /** its data lies in a weights file (a checkpoint tensor mapped in place), not in the graph */
  readonly external: boolean;
}

export interface GraphContents {
  readonly name: string;
  readonly nodes: readonly GraphNode[];
  readonly initializers: ReadonlyMap<string, GraphInitializer>;
}

// onnx.proto TensorProto.DataType -> bytes per element (the types graphs here hold)
const ELEMENT_BYTES: Readonly<Record<number, number>> = {
  1: 4, // float
  2: 1, // uint8
  3: 1, // int8
  5: 2, // int16
  6: 4, // int32
  7: 8, // int64
  9: 1, // bool
  10: 2, // float16
  16: 2, // bfloat16
};

/** One field of a message: its number, and its varint or its bytes. */
type Field = { readonly field: number; readonly int: number; readonly bytes?: Uint8Array };

function* fields(buf: Uint8Array): Generator<Field> {
  let pos = 0;
  const varint = (): number => {
    let x = 0;
    let scale = 1;
    for (;;) {
      const b = buf[pos++];
      x += (b & 0x7f) * scale;
      if (b < 0x80) return x;
      scale *= 128;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) yield { field, int: varint() };
    else if (wire === 2) {
      const n = varint();
      yield { field, int: n, bytes: buf.subarray(pos, pos + n) };
      pos += n;
    } else if (wire === 5) pos += 4;
    else if (wire === 1) pos += 8;
    else throw new Error(`readGraph: wire type ${wire} at byte ${pos}`);
  }
}

const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

function node(buf: Uint8Array): GraphNode {
  const inputs: string[] = [];
  const outputs: string[] = [];
  const ints: Record<string, number> = {};
  let op = '';
  let domain = '';
  for (const f of fields(buf)) {
    if (f.field === 1) inputs.push(text(f.bytes));
    else if (f.field === 2) outputs.push(text(f.bytes));
    else if (f.field === 4) op = text(f.bytes);
    else if (f.field === 7) domain = text(f.bytes);
    else if (f.field === 5 && f.bytes) {
      let name = '';
      let value: number | undefined;
      for (const a of fields(f.bytes)) {
        if (a.field === 1) name = text(a.bytes);
        else if (a.field === 3 && a.bytes === undefined) value = a.int;
      }
      if (value !== undefined) ints[name] = value;
    }
  }
  return { op, domain, inputs, outputs, ints };
}

function initializer(buf: Uint8Array): GraphInitializer {
  const dims: number[] = [];
  let dataType = 0;
  let name = '';
  let external = false;
  for (const f of fields(buf)) {
    if (f.field === 14) external = f.int === 1;
    else if (f.field === 1) {
      if (f.bytes) for (const d of fields(packedAsFields(f.bytes))) dims.push(d.int);
      else dims.push(f.int);
    } else if (f.field === 2) dataType = f.int;
    else if (f.field === 8) name = text(f.bytes);
  }
  const count = dims.reduce((a, d) => a * d, 1);
  return { name, dims, dataType, byteLength: count * (ELEMENT_BYTES[dataType] ?? 0), external };
}

/** Packed repeated varints, re-tagged as field-1 varints so `fields` can read them. */
function packedAsFields(packed: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < packed.length; ) {
    out.push(0x08);
    for (;;) {
      const b = packed[i++];
      out.push(b);
      if (b < 0x80) break;
    }
  }
  return Uint8Array.from(out);
}

/** The nodes and initializers of a ModelProto (`BuiltGraph.bytes`). */
export function readGraph(bytes: Uint8Array): GraphContents {
  let name = '';
  const nodes: GraphNode[] = [];
  const initializers = new Map<string, GraphInitializer>();
  for (const m of fields(bytes)) {
    if (m.field !== 7 || !m.bytes) continue;
    for (const g of fields(m.bytes)) {
      if (g.field === 1 && g.bytes) nodes.push(node(g.bytes));
      else if (g.field === 2) name = text(g.bytes);
      else if (g.field === 5 && g.bytes) {
        const init = initializer(g.bytes);
        initializers.set(init.name, init);
      }
    }
  }
  return { name, nodes, initializers };
}
