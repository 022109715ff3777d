import { Blip2Error } from '@blip2/tensor';

/**
 * Every way the T5 module refuses its input, with a stable `code` to branch on. A
 * weight the checkpoint lacks or stores in another shape is @blip2/onnx's
 * GraphBuildError instead (E_MISSING_WEIGHT, E_WEIGHT_SHAPE), as in every model module.
 */
export type T5ErrorCode = 'E_CONFIG' | 'E_ACTIVATION' | 'E_INPUT' | 'E_CACHE' | 'E_SESSION';

export class T5Error extends Blip2Error<T5ErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.T5Error');
  constructor(code: T5ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'T5Error';
  }
}
