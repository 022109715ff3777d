/**
 * The graph builder: values, nodes, inputs/outputs and initializers, serialized
 * to an ONNX ModelProto. Model modules never touch protobuf; they compose the
 * op helpers of ./ops.ts, which read like the forward pass they encode.
 *
 * Weights are ONNX external data pointing at byte ranges of the checkpoint's own
 * .safetensors files: nothing is copied or converted on disk.
 */
import {
  Blip2Error,
  type BuiltGraph,
  type DType,
  type ExternalDataFile,
  type GraphIO,
  type Tensor,
} from '@blip2/tensor';
import { ProtoWriter } from './proto.js';

/** The one place opset and IR version are chosen: LayerNormalization needs opset 17; ORT >= 1.14 reads IR 8. */
export const OPSET = 17;
export const IR_VERSION = 8;
export const MS_DOMAIN = 'com.microsoft';
const MS_OPSET = 1;

/** What went wrong while building a graph, as a stable string a caller can branch on. */
export type GraphBuildErrorCode =
  /** the checkpoint has no weight of that name */
  | 'E_MISSING_WEIGHT'
  /** a weight's stored shape disagrees with the shape the config implies */
  | 'E_WEIGHT_SHAPE'
  /** a weight is stored in a dtype the builder cannot read */
  | 'E_DTYPE'
  /** a weight was asked of a graph built without a checkpoint */
  | 'E_NO_WEIGHTS'
  /** two weight files of one graph share a name, or a uri has no file name */
  | 'E_WEIGHT_FILES'
  | 'E_DUPLICATE_NAME'
  | 'E_FOREIGN_VALUE'
  | 'E_UNKNOWN_OP'
  | 'E_ARITY'
  | 'E_NO_GRAPH'
  | 'E_SHAPE_UNKNOWN'
  | 'E_ATTR'
  | 'E_NO_OUTPUTS'
  /** a packed (quantized) weight's tensors are absent, mis-shaped or of the wrong dtype */
  | 'E_PACKED_WEIGHT';

export class GraphBuildError extends Blip2Error<GraphBuildErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.GraphBuildError');
  /** the full checkpoint name of the weight at fault, when there is one */
  readonly weight?: string;
  constructor(code: GraphBuildErrorCode, message: string, weight?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'GraphBuildError';
    if (weight !== undefined) this.weight = weight;
  }
}

/**
 * One dim of the shape a config implies for a weight: a size, or a name for a size
 * the config leaves open (e.g. `'text_hidden_size'`), which matches any size and is
 * shown by that name in errors.
 */
export type ExpectedDim = number | string;

function shapeText(dims: readonly ExpectedDim[]): string {
  return `[${dims.join(',')}]`;
}

/** safetensors dtype names, as @blip2/safetensors reports them */
export type StoredDType = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';

/**
 * A linear weight stored packed (./quantize.ts' layouts) rather than as floats: the
 * checkpoint tensors that hold it. Its own entry keeps the logical [out, in] shape.
 */
export interface PackedWeight {
  readonly format: 'q4' | 'q4f16' | 'q8';
  /** q4 / q4f16: the block along K */
  readonly blockSize?: number;
  /** q4: uint8 [N, n_blocks, block_size / 2]; q8: int8 (stored U8) [K, N] */
  readonly data: string;
  /** q4: [N, n_blocks] (F32, or F16 for q4f16); q8: F32 [N] */
  readonly scales: string;
  /** q4: uint8 [N, ceil(n_blocks / 2)] */
  readonly zeroPoints?: string;
}

/** One weight's entry: where its bytes are, or (`packed`) which tensors hold it. */
export interface WeightInfo {
  readonly name: string;
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  readonly file: string;
  readonly offset: number;
  readonly byteLength: number;
  readonly packed?: PackedWeight;
}

/** What the builder needs of a checkpoint: @blip2/safetensors' WeightIndex satisfies it. */
export interface WeightLookup {
  has(name: string): boolean;
  get(name: string): WeightInfo;
  fileOf(info: { readonly file: string }): {
    readonly name: string;
    readonly uri: string;
    readonly size?: number;
  };
  /**
   * Told how the graphs use each weight: 'linear' when it is the weight of a `linear`
   * (and nothing else of that op), 'other' for any other use (a Gather, a LayerNorm, a
   * bias). Which weights can be quantized is read from this (quantize.ts).
   */
  noteUse?(name: string, role: 'linear' | 'other'): void;
  /** The graphs will run where float16 kernels exist: see GraphBuilderOptions.float16Compute. */
  readonly float16Compute?: boolean;
  /** Contrib ops the backend cannot run: see GraphBuilderOptions.lackingOps. */
  readonly lackingOps?: readonly string[];
}

// onnx.proto TensorProto.DataType
const ONNX_TYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  bfloat16: 16,
};
const ONNX_INT8 = 3;
const STORED_TO_DTYPE: Record<StoredDType, DType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  U8: 'uint8',
  BOOL: 'bool',
};

export function onnxType(dtype: DType): number {
  return ONNX_TYPE[dtype];
}

export type AttrValue =
  | number
  | string
  | readonly number[]
  | readonly string[]
  | Tensor
  | { float: number }
  | { floats: readonly number[] };

/** Inputs allowed per op of the default domain: [min, max]. Catches a forgotten operand at build time, not in ORT. */
const ARITY: Record<string, [number, number]> = {
  Add: [2, 2],
  Sub: [2, 2],
  Mul: [2, 2],
  Div: [2, 2],
  Pow: [2, 2],
  MatMul: [2, 2],
  Gemm: [2, 3],
  Sqrt: [1, 1],
  Reciprocal: [1, 1],
  DequantizeLinear: [2, 3],
  // q4 activations padded to whole blocks (quantize.ts' q4PaddedK); opset 17: data, pads, constant_value
  Pad: [2, 3],
  // rotary position embeddings (LLaMA-like families) take sin and cos of position x frequency
  Sin: [1, 1],
  Cos: [1, 1],
  Erf: [1, 1],
  Tanh: [1, 1],
  Relu: [1, 1],
  Neg: [1, 1],
  Exp: [1, 1],
  Log: [1, 1],
  Abs: [1, 1],
  Sigmoid: [1, 1],
  Not: [1, 1],
  Identity: [1, 1],
  Shape: [1, 1],
  Softmax: [1, 1],
  Cast: [1, 1],
  Reshape: [2, 2],
  Transpose: [1, 1],
  Concat: [1, 1e9],
  Gather: [2, 2],
  Unsqueeze: [2, 2],
  Squeeze: [1, 2],
  Slice: [3, 5],
  LayerNormalization: [2, 3],
  Conv: [2, 3],
  Where: [3, 3],
  Equal: [2, 2],
  Less: [2, 2],
  Greater: [2, 2],
  LessOrEqual: [2, 2],
  GreaterOrEqual: [2, 2],
  Min: [1, 1e9],
  Max: [1, 1e9],
  CumSum: [2, 2],
  Expand: [2, 2],
  Range: [3, 3],
  ReduceMean: [1, 2],
  ReduceSum: [1, 2],
  // opset 17: axes is an attribute (an input from opset 18)
  ReduceMax: [1, 1],
  Floor: [1, 1],
  ConstantOfShape: [1, 1],
  Trilu: [1, 2],
  And: [2, 2],
  Or: [2, 2],
  Clip: [1, 3],
};

export class Value {
  constructor(
    readonly graph: GraphBuilder,
    readonly name: string,
  ) {}
}

interface NodeRec {
  type: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  name: string;
}

interface InitRec {
  name: string;
  dtype: DType;
  /** the ONNX element type when it is not `dtype`'s (int8 packed weights, stored as U8 bytes) */
  onnxType?: number;
  dims: readonly number[];
  raw?: Uint8Array;
  external?: { location: string; offset: number; length: number };
}

export interface GraphBuilderOptions {
  /** Checkpoint weights used in place. */
  readonly weights?: WeightLookup;
  /**
   * The provider has float16 kernels (WebGPU with shader-f16, CUDA): `linear` over a
   * float16 weight multiplies in float16, reading the weight in place, instead of
   * widening it to a float32 copy.
   */
  readonly float16Compute?: boolean;
  /**
   * Contrib ops the backend lacks (`capabilities[op] === false`): `linear` then takes
   * the packed format's other form (quantize.ts' PACKED_OPS).
   */
  readonly lackingOps?: readonly string[];
}

/** A `linear` weight as `linear` may multiply by it, beyond a float32 value. */
export type LinearWeight =
  | { readonly kind: 'float'; readonly value: Value }
  | { readonly kind: 'float16'; readonly value: Value; readonly dims: readonly number[] }
  | {
      readonly kind: 'packed';
      readonly format: PackedWeight['format'];
      readonly dims: readonly number[];
      readonly blockSize: number;
      readonly data: Value;
      readonly scales: Value;
      readonly zeroPoints: Value | null;
    };

export class GraphBuilder {
  private nodes: NodeRec[] = [];
  private inits = new Map<string, InitRec>();
  private inputsIO: GraphIO[] = [];
  private outputsIO: GraphIO[] = [];
  private files = new Map<string, ExternalDataFile>();
  private names = new Set<string>();
  private counter = 0;
  private scopes: string[] = [];
  private weightValues = new Map<string, Value>();
  private constCache = new Map<string, Value>();
  private usesMs = false;
  /** value name -> checkpoint weight it is (the weight itself, or its widening Cast) */
  private weightOfValue = new Map<string, string>();
  /** the logical values of packed weights: only `linear` may consume them */
  private packedValues = new Map<string, LinearWeight & { kind: 'packed' }>();
  /** float16 weights widened by a Cast: the raw float16 value, for float16 compute */
  private halfValues = new Map<string, { value: Value; dims: readonly number[] }>();
  /** the weight `linear` is consuming right now: its use is 'linear', not 'other' */
  private linearWeightName: string | undefined;

  constructor(
    readonly name: string,
    private readonly options: GraphBuilderOptions = {},
  ) {}

  /** Whether `linear` may multiply in float16 (the provider has float16 kernels). */
  get float16Compute(): boolean {
    return this.options.float16Compute ?? this.options.weights?.float16Compute ?? false;
  }

  /** Whether the backend lacks contrib op `op` (PACKED_OPS names the form used instead). */
  lacks(op: string): boolean {
    return (this.options.lackingOps ?? this.options.weights?.lackingOps ?? []).includes(op);
  }

  /**
   * How `linear` can multiply by `weight`: packed (quantized) tensors, the float16
   * weight in place when the provider computes in float16, or the float32 value.
   */
  linearWeight(weight: Value): LinearWeight {
    const packed = this.packedValues.get(weight.name);
    if (packed) return packed;
    const half = this.halfValues.get(weight.name);
    if (half && this.float16Compute) return { kind: 'float16', ...half };
    return { kind: 'float', value: weight };
  }

  /** Runs `fn`, the nodes of one `linear`: there `weight`'s use counts as a linear use. */
  asLinear<T>(weight: Value, fn: () => T): T {
    const name = this.weightOfValue.get(weight.name);
    if (name !== undefined) this.options.weights?.noteUse?.(name, 'linear');
    const outer = this.linearWeightName;
    this.linearWeightName = name;
    try {
      return fn();
    } finally {
      this.linearWeightName = outer;
    }
  }

  /** Names nodes made inside `fn` with a prefix (e.g. 'layers.3'), so ORT's errors and profiles point at the layer. */
  scope<T>(prefix: string, fn: () => T): T {
    this.scopes.push(prefix);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private fresh(hint: string): string {
    const base = [...this.scopes, hint].join('/');
    let name = `${base}_${this.counter++}`;
    while (this.names.has(name)) name = `${base}_${this.counter++}`;
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name))
      throw new GraphBuildError('E_DUPLICATE_NAME', `${this.name}: name '${name}' is already used`);
    this.names.add(name);
    return name;
  }

  private own(v: Value | null, where: string): string {
    if (v === null) return '';
    if (!(v instanceof Value) || v.graph !== this) {
      throw new GraphBuildError(
        'E_FOREIGN_VALUE',
        `${this.name}: ${where} got a value that is not from this graph`,
      );
    }
    const packed = this.packedValues.get(v.name);
    if (packed) {
      throw new GraphBuildError(
        'E_PACKED_WEIGHT',
        `${this.name}: weight '${v.name}' is stored packed (${packed.format}) and only a linear layer can use it; ${where} needs its floats`,
        v.name,
      );
    }
    const weight = this.weightOfValue.get(v.name);
    if (weight !== undefined && weight !== this.linearWeightName)
      this.options.weights?.noteUse?.(weight, 'other');
    return v.name;
  }

  input(name: string, dtype: DType, dims: readonly (number | string)[]): Value {
    this.inputsIO.push({ name: this.claim(name), dtype, dims });
    return new Value(this, name);
  }

  /** Marks `v` as a graph output called `name` (through Identity when it already has another name). */
  output(v: Value, name: string, dtype: DType, dims: readonly (number | string)[]): void {
    let src = this.own(v, `output '${name}'`);
    if (src !== name) {
      this.claim(name);
      this.nodes.push({
        type: 'Identity',
        domain: '',
        inputs: [src],
        outputs: [name],
        attrs: {},
        name: `${name}/Identity`,
      });
      src = name;
    }
    this.outputsIO.push({ name, dtype, dims });
  }

  /** One node; returns its outputs. `null` inputs are ONNX's omitted optional inputs. */
  op(
    type: string,
    inputs: readonly (Value | null)[],
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; outputs?: number } = {},
  ): Value[] {
    const domain = opts.domain ?? '';
    if (domain === '') {
      const arity = ARITY[type];
      if (!arity)
        throw new GraphBuildError('E_UNKNOWN_OP', `${this.name}: op '${type}' is not in the builder's table`);
      if (inputs.length < arity[0] || inputs.length > arity[1]) {
        throw new GraphBuildError(
          'E_ARITY',
          `${this.name}: ${type} takes ${arity[0]}..${arity[1]} inputs, got ${inputs.length}`,
        );
      }
    } else if (domain === MS_DOMAIN) this.usesMs = true;
    const ins = inputs.map((v, i) => this.own(v, `${type} input ${i}`));
    const outs = Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(type));
    this.nodes.push({ type, domain, inputs: ins, outputs: outs, attrs, name: `${outs[0]}/node` });
    return outs.map((n) => new Value(this, n));
  }

  /** op() with one output */
  op1(
    type: string,
    inputs: readonly (Value | null)[],
    attrs: Record<string, AttrValue> = {},
    domain?: string,
  ): Value {
    return this.op(type, inputs, attrs, { domain })[0];
  }

  /** An initializer embedded in the graph (small constants: shapes, scalars). Identical constants are shared. */
  constant(t: Tensor, hint = 'const'): Value {
    const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
    const key = `${t.dtype}|${t.dims.join(',')}|${raw.length <= 64 ? raw.join(',') : ''}`;
    if (raw.length <= 64) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const name = this.fresh(hint);
    this.inits.set(name, { name, dtype: t.dtype, dims: [...t.dims], raw });
    const v = new Value(this, name);
    if (raw.length <= 64) this.constCache.set(key, v);
    return v;
  }

  /**
   * Static dims of a weight or constant value (what `linear` needs to flatten its
   * input); throws for activations, whose shapes only ORT infers.
   */
  shapeOfValue(v: Value): readonly number[] {
    const packed = this.packedValues.get(v.name);
    if (packed) return packed.dims;
    let name = v.name;
    // a half-precision weight is reached through its Cast
    const cast = this.nodes.find((n) => n.outputs[0] === name && n.type === 'Cast');
    if (cast) name = cast.inputs[0];
    const init = this.inits.get(name);
    if (!init)
      throw new GraphBuildError(
        'E_SHAPE_UNKNOWN',
        `${this.name}: '${v.name}' is not a weight or constant, its shape is not known at build time`,
      );
    return init.dims;
  }

  /** Whether the checkpoint has a weight (optional biases, tied heads). */
  hasWeight(name: string): boolean {
    return this.options.weights?.has(name) ?? false;
  }

  /**
   * Stored dims of a checkpoint weight, checked against `expected` (the shape the
   * config implies) when given. The one place a weight is looked up by name, so every
   * module reports an absent or mis-shaped weight the same way: E_MISSING_WEIGHT or
   * E_WEIGHT_SHAPE, naming the weight (`error.weight`) and both shapes.
   */
  weightShape(name: string, expected?: readonly ExpectedDim[]): readonly number[] {
    const weights = this.lookup();
    if (!weights.has(name)) {
      const shape = expected ? ` (expected shape ${shapeText(expected)})` : '';
      throw new GraphBuildError(
        'E_MISSING_WEIGHT',
        `${this.name}: checkpoint has no weight '${name}'${shape}`,
        name,
      );
    }
    const stored = weights.get(name).shape;
    if (
      expected &&
      (stored.length !== expected.length || expected.some((d, i) => typeof d === 'number' && d !== stored[i]))
    ) {
      throw new GraphBuildError(
        'E_WEIGHT_SHAPE',
        `${this.name}: weight '${name}' has shape ${shapeText(stored)}, the config implies ${shapeText(expected)}`,
        name,
      );
    }
    return stored;
  }

  private lookup(): WeightLookup {
    if (!this.options.weights)
      throw new GraphBuildError('E_NO_WEIGHTS', `${this.name}: the graph was built without weights`);
    return this.options.weights;
  }

  /**
   * A checkpoint weight as float32: an external-data initializer at the tensor's byte
   * range, mapped in place for float32; a half-precision weight goes through a Cast,
   * which onnxruntime folds into a float32 copy in memory at session creation (the
   * file stays untouched, but that weight is not mapped). `expected` is checked as `weightShape` does.
   */
  weight(name: string, expected?: readonly ExpectedDim[]): Value {
    this.weightShape(name, expected);
    const hit = this.weightValues.get(name);
    if (hit) return hit;
    const info = this.lookup().get(name);
    if (info.packed) return this.packedWeight(info, info.packed);
    const init = this.externalInit(info);
    let v = new Value(this, name);
    if (init.dtype === 'float16' || init.dtype === 'bfloat16') {
      const raw = v;
      v = this.op1('Cast', [v], { to: ONNX_TYPE.float32 });
      if (init.dtype === 'float16') this.halfValues.set(v.name, { value: raw, dims: info.shape });
    }
    // registered after the widening Cast, whose read of the weight is no use of its own
    this.weightOfValue.set(name, name);
    this.weightOfValue.set(v.name, name);
    this.weightValues.set(name, v);
    return v;
  }

  /**
   * A packed weight: initializers for its tensors (checked against the logical
   * [N, K] shape, so a corrupted export is named here, not deep in onnxruntime), and a
   * logical value only `linear` may consume.
   */
  private packedWeight(info: WeightInfo, packed: PackedWeight): Value {
    const { name } = info;
    const [n, k] = info.shape;
    const lookup = this.lookup();
    const tensor = (
      role: string,
      tensorName: string,
      dtypes: readonly StoredDType[],
      dims: readonly number[],
    ) => {
      if (!lookup.has(tensorName)) {
        throw new GraphBuildError(
          'E_PACKED_WEIGHT',
          `${this.name}: packed weight '${name}' (${packed.format}) has no ${role} tensor '${tensorName}'`,
          name,
        );
      }
      const t = lookup.get(tensorName);
      const sizeOk =
        t.byteLength ===
        dims.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : t.dtype === 'F16' ? 2 : 1);
      if (!dtypes.includes(t.dtype) || t.shape.join(',') !== dims.join(',') || !sizeOk) {
        throw new GraphBuildError(
          'E_PACKED_WEIGHT',
          `${this.name}: ${role} tensor '${tensorName}' of packed weight '${name}' is ${t.dtype} [${t.shape}] (${t.byteLength} bytes); ${packed.format} [${n},${k}] needs ${dtypes.join('|')} [${dims}]`,
          name,
        );
      }
      const init = this.externalInit(t);
      return new Value(this, init.name);
    };
    let rec: LinearWeight & { kind: 'packed' };
    if (packed.format === 'q8') {
      const data = tensor('data', packed.data, ['U8'], [k, n]);
      this.inits.get(data.name)!.onnxType = ONNX_INT8;
      rec = {
        kind: 'packed',
        format: 'q8',
        dims: info.shape,
        blockSize: 0,
        data,
        scales: tensor('scales', packed.scales, ['F32'], [n]),
        zeroPoints: null,
      };
    } else {
      const blockSize = packed.blockSize ?? 0;
      if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) {
        throw new GraphBuildError(
          'E_PACKED_WEIGHT',
          `${this.name}: packed weight '${name}' has block_size ${packed.blockSize}; MatMulNBits needs a power of two >= 16`,
          name,
        );
      }
      const nb = Math.ceil(k / blockSize);
      const scaleType: StoredDType = packed.format === 'q4f16' ? 'F16' : 'F32';
      const zeroPoints = packed.zeroPoints
        ? tensor('zero_points', packed.zeroPoints, ['U8'], [n, Math.ceil(nb / 2)])
        : null;
      // onnxruntime-web's WebGPU kernel reads the zero points as 32-bit words and reshapes their
      // dims to words from the last axis: [N, 22] (ViT-g's K = 1408) cannot be, while the same
      // bytes as MatMulNBits' spec form [N * 22] can (when a multiple of 4, as every BLIP-2 width is)
      const zpBytes = n * Math.ceil(nb / 2);
      if (zeroPoints && zpBytes % 4 === 0) this.inits.get(zeroPoints.name)!.dims = [zpBytes];
      rec = {
        kind: 'packed',
        format: packed.format,
        dims: info.shape,
        blockSize,
        data: tensor('data', packed.data, ['U8'], [n, nb, blockSize / 2]),
        scales: tensor('scales', packed.scales, [scaleType], [n, nb]),
        zeroPoints,
      };
    }
    this.options.weights?.noteUse?.(name, 'linear');
    const v = new Value(this, this.claim(name));
    this.packedValues.set(v.name, rec);
    this.weightValues.set(name, v);
    return v;
  }

  /** An external-data initializer over a checkpoint tensor's byte range, named as the tensor. */
  private externalInit(info: WeightInfo): InitRec {
    const { name } = info;
    const file = this.lookup().fileOf(info);
    // The location is the real file's own name: a hub cache's model.safetensors is a
    // symlink to blobs/<hash>, and onnxruntime resolves locations beside the real file.
    const location = baseName(file.uri);
    const known = this.files.get(location);
    if (known && known.uri !== file.uri) {
      throw new GraphBuildError(
        'E_WEIGHT_FILES',
        `${this.name}: two weight files share the name '${location}': ${known.uri} and ${file.uri}`,
      );
    }
    if (!known) this.files.set(location, { location, uri: file.uri, size: file.size });
    const dtype = STORED_TO_DTYPE[info.dtype];
    if (!dtype)
      throw new GraphBuildError(
        'E_DTYPE',
        `${this.name}: weight '${name}' has unsupported dtype ${info.dtype}`,
        name,
      );
    this.claim(name);
    const init: InitRec = {
      name,
      dtype,
      dims: info.shape,
      external: { location, offset: info.offset, length: info.byteLength },
    };
    this.inits.set(name, init);
    return init;
  }

  build(): BuiltGraph {
    if (this.outputsIO.length === 0)
      throw new GraphBuildError('E_NO_OUTPUTS', `${this.name}: graph has no outputs`);
    const { nodes, inits } = this.live();
    const m = new ProtoWriter();
    m.int(1, IR_VERSION);
    m.string(2, 'blip2-ts');
    m.message(8, (o) => o.string(1, '').int(2, OPSET));
    if (this.usesMs) m.message(8, (o) => o.string(1, MS_DOMAIN).int(2, MS_OPSET));
    m.message(7, (g) => {
      for (const n of nodes) g.message(1, (w) => writeNode(w, n));
      g.string(2, this.name);
      for (const init of inits) g.message(5, (w) => writeInit(w, init));
      for (const io of this.inputsIO) g.message(11, (w) => writeValueInfo(w, io));
      for (const io of this.outputsIO) g.message(12, (w) => writeValueInfo(w, io));
    });
    const locations = new Set(inits.map((i) => i.external?.location));
    return {
      name: this.name,
      bytes: m.finish(),
      inputs: [...this.inputsIO],
      outputs: [...this.outputsIO],
      externalData: [...this.files.values()].filter((f) => locations.has(f.location)),
    };
  }

  /**
   * The nodes the outputs depend on, and their initializers. A weight some `linear`
   * multiplied in float16 or packed leaves its float32 Cast unused; that Cast, and the
   * checkpoint bytes behind it, must not be loaded (onnxruntime would widen them anyway).
   */
  private live(): { nodes: NodeRec[]; inits: InitRec[] } {
    const producer = new Map<string, NodeRec>();
    for (const n of this.nodes) for (const o of n.outputs) producer.set(o, n);
    const needed = new Set<string>();
    const keep = new Set<NodeRec>();
    const stack = this.outputsIO.map((o) => o.name);
    while (stack.length) {
      const name = stack.pop()!;
      if (needed.has(name)) continue;
      needed.add(name);
      const n = producer.get(name);
      if (n && !keep.has(n)) {
        keep.add(n);
        for (const i of n.inputs) if (i) stack.push(i);
      }
    }
    return {
      nodes: this.nodes.filter((n) => keep.has(n)),
      inits: [...this.inits.values()].filter((i) => needed.has(i.name)),
    };
  }
}

function writeNode(w: ProtoWriter, n: NodeRec): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.type);
  for (const [name, value] of Object.entries(n.attrs)) w.message(5, (a) => writeAttr(a, name, value));
  if (n.domain) w.string(7, n.domain);
}

// AttributeProto.AttributeType
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 };

function writeAttr(a: ProtoWriter, name: string, v: AttrValue): void {
  a.string(1, name);
  if (typeof v === 'number') {
    if (!Number.isInteger(v))
      throw new GraphBuildError('E_ATTR', `attribute ${name}: use { float: ${v} } for floats`);
    a.int(3, v).int(20, ATTR.INT);
  } else if (typeof v === 'string') a.string(4, v).int(20, ATTR.STRING);
  else if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') {
      for (const s of v as string[]) a.string(9, s);
      a.int(20, ATTR.STRINGS);
    } else {
      for (const i of v as number[]) a.int(8, i);
      a.int(20, ATTR.INTS);
    }
  } else if ('float' in v) a.float(2, v.float).int(20, ATTR.FLOAT);
  else if ('floats' in v) {
    for (const f of v.floats) a.float(7, f);
    a.int(20, ATTR.FLOATS);
  } else {
    const t = v as Tensor;
    a.message(5, (w) =>
      writeInit(w, {
        name: '',
        dtype: t.dtype,
        dims: t.dims,
        raw: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      }),
    );
    a.int(20, ATTR.TENSOR);
  }
}

function writeInit(w: ProtoWriter, t: InitRec): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.onnxType ?? ONNX_TYPE[t.dtype]);
  if (t.name) w.string(8, t.name);
  if (t.raw) w.bytes(9, t.raw);
  if (t.external) {
    const { location, offset, length } = t.external;
    w.message(13, (e) => e.string(1, 'location').string(2, location));
    w.message(13, (e) => e.string(1, 'offset').string(2, String(offset)));
    w.message(13, (e) => e.string(1, 'length').string(2, String(length)));
    w.int(14, 1); // data_location = EXTERNAL
  }
}

function writeValueInfo(w: ProtoWriter, io: GraphIO): void {
  w.string(1, io.name);
  w.message(2, (type) =>
    type.message(1, (tt) => {
      tt.int(1, ONNX_TYPE[io.dtype]);
      tt.message(2, (shape) => {
        for (const d of io.dims)
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

/** Last path segment of a file path or URL (query and fragment dropped). */
export function baseName(uri: string): string {
  const path = uri.replace(/[?#].*$/, '');
  const seg = path.split(/[\\/]/).filter(Boolean).pop() ?? '';
  if (!seg || seg === '..' || seg === '.')
    throw new GraphBuildError('E_WEIGHT_FILES', `no file name in '${uri}'`);
  return decodeURIComponent(seg);
}
