import type { ExpectedDim, GraphBuilder, Value } from './graph.js';
import { linear } from './ops.js';

export interface WeightScopeOptions {
  /**
   * Every `linear` of this scope weight-first (y^T = W x^T, `linear`'s `weightFirst`):
   * the batched step graphs. Scopes made with `at` keep it.
   */
  readonly weightFirst?: boolean;
}

/**
 * A checkpoint's weights under one name prefix, as a torch module's `state_dict`
 * names them: the scope `vision_model.encoder.layers.3.` reads `mlp.fc1.weight` as
 * `vision_model.encoder.layers.3.mlp.fc1.weight`, and `at('mlp.')` is the submodule.
 * The graph builder checks each weight against the shape the config implies and
 * names the full weight when it is missing or of another shape.
 */
export class WeightScope {
  constructor(
    readonly graph: GraphBuilder,
    /** prepended as is: include the trailing '.' ('' is the checkpoint's root) */
    readonly prefix = '',
    private readonly options: WeightScopeOptions = {},
  ) {}

  /** The scope of a submodule: `sub` appended to this prefix (with its trailing '.'). */
  at(sub: string): WeightScope {
    return new WeightScope(this.graph, this.prefix + sub, this.options);
  }

  /** The weight's name in the checkpoint. */
  name(name: string): string {
    return this.prefix + name;
  }

  has(name: string): boolean {
    return this.graph.hasWeight(this.name(name));
  }

  /** The stored dims, checked against `expected` (symbolic dims match any size). */
  shape(name: string, expected: readonly ExpectedDim[]): readonly number[] {
    return this.graph.weightShape(this.name(name), expected);
  }

  /** A weight the config says exists, of the shape it implies. */
  get(name: string, shape: readonly ExpectedDim[]): Value {
    return this.graph.weight(this.name(name), shape);
  }

  /** A weight only some configs have (a bias behind `enable_bias`, say): null when `present` is false. */
  optional(present: boolean, name: string, shape: readonly ExpectedDim[]): Value | null {
    return present ? this.get(name, shape) : null;
  }

  /**
   * torch's `nn.Linear` named `module`: weight `module.weight` [out, in], and
   * `module.bias` [out] when `bias`, in this scope's layout.
   */
  linear(x: Value, module: string, [out, inp]: readonly [number, number], bias = false): Value {
    const weight = this.get(`${module}.weight`, [out, inp]);
    const b = this.optional(bias, `${module}.bias`, [out]);
    return linear(x, weight, b, { weightFirst: this.options.weightFirst ?? false });
  }
}
