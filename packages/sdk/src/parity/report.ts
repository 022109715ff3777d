/**
 * What a parity run reports, and the tolerances that decide it. The tolerances are
 * the fixtures' own (tooling/fixtures/README.md): float tensors 1e-4 (fp32 vs fp32
 * lands near 1e-6, so 1e-4 leaves room for summation order only), pixel values
 * 1e-6 (PIL's bicubic is reproduced exactly), token ids and strings exactly.
 */
import type { Tensor } from '@blip2/tensor';

export const TENSOR_TOLERANCE = 1e-4;
export const PIXEL_TOLERANCE = 1e-6;
export const SCORE_TOLERANCE = 1e-4;

export type FixtureKind = 'model' | 'tokenizer' | 'images';

/** One float tensor against the reference tensor of the same name. */
export interface TensorCheck {
  /** 'case0', 'batch', or an image name */
  readonly case: string;
  readonly name: string;
  /** Infinity when the shapes differ (see `problem`) or a value is NaN */
  readonly maxAbsDiff: number;
  readonly tolerance: number;
  readonly ok: boolean;
  readonly problem?: string;
}

/** One generate record of reference.json replayed. */
export interface GenerateCheck {
  readonly name: string;
  /** token ids equal, every row */
  readonly match: boolean;
  readonly expected: number[][];
  readonly got: number[][];
  /** beam search: largest |sequences_scores - ours| */
  readonly scoreDiff?: number;
  readonly ok: boolean;
}

/** A value that must be reproduced exactly (token ids, tokens, offsets, strings, decoded pixels). */
export interface ExactCheck {
  readonly case: string;
  readonly name: string;
  readonly match: boolean;
  /** only when they differ, to keep reports short */
  readonly expected?: unknown;
  readonly got?: unknown;
}

export interface ParityReport {
  /** every check within its tolerance */
  readonly ok: boolean;
  readonly kind: FixtureKind;
  readonly dir: string;
  /** e.g. 'node:cpu', 'web:wasm'; 'none' for folders that run no graph */
  readonly backend: string;
  /** the largest difference over the float tensors (0 when there are none) */
  readonly maxAbsDiff: number;
  readonly tensors: readonly TensorCheck[];
  readonly generate: readonly GenerateCheck[];
  readonly exact: readonly ExactCheck[];
  /** notes that are not failures (e.g. unused weights) */
  readonly warnings: readonly string[];
  readonly seconds: number;
}

/** Collects checks while a fixture folder is replayed. */
export class ReportBuilder {
  readonly tensors: TensorCheck[] = [];
  readonly generate: GenerateCheck[] = [];
  readonly exact: ExactCheck[] = [];
  readonly warnings: string[] = [];
  private readonly started = performance.now();

  constructor(
    readonly kind: FixtureKind,
    readonly dir: string,
  ) {}

  /**
   * `got` against `expected`; our leading batch dimension of 1 is ignored when the
   * reference has one dimension less, because the fixtures drop it.
   */
  tensor(caseName: string, name: string, got: Tensor, expected: Tensor, tolerance = TENSOR_TOLERANCE): void {
    const b = expected.dims;
    const a = got.dims.length === b.length + 1 && got.dims[0] === 1 ? got.dims.slice(1) : got.dims;
    if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
      this.tensors.push({
        case: caseName,
        name,
        maxAbsDiff: Number.POSITIVE_INFINITY,
        tolerance,
        ok: false,
        problem: `shape [${got.dims}] vs reference [${expected.dims}]`,
      });
      return;
    }
    let m = 0;
    for (let i = 0; i < got.data.length; i++) {
      const d = Math.abs(Number(got.data[i]) - Number(expected.data[i]));
      if (Number.isNaN(d)) {
        m = Number.POSITIVE_INFINITY;
        break;
      }
      if (d > m) m = d;
    }
    this.tensors.push({ case: caseName, name, maxAbsDiff: m, tolerance, ok: m <= tolerance });
  }

  equal(caseName: string, name: string, got: unknown, expected: unknown): void {
    const match = JSON.stringify(got) === JSON.stringify(expected);
    this.exact.push(match ? { case: caseName, name, match } : { case: caseName, name, match, expected, got });
  }

  finish(backend: string): ParityReport {
    const floats = this.tensors.map((t) => t.maxAbsDiff);
    return {
      ok:
        this.tensors.every((t) => t.ok) &&
        this.generate.every((g) => g.ok) &&
        this.exact.every((e) => e.match) &&
        this.tensors.length + this.generate.length + this.exact.length > 0,
      kind: this.kind,
      dir: this.dir,
      backend,
      maxAbsDiff: floats.length ? Math.max(...floats) : 0,
      tensors: this.tensors,
      generate: this.generate,
      exact: this.exact,
      warnings: this.warnings,
      seconds: (performance.now() - this.started) / 1000,
    };
  }
}
