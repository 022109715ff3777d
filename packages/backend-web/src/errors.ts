import { Blip2Error } from '@blip2/tensor';

/** Every failure of the onnxruntime-web backend, with a stable `code` callers can branch on. */
export type WebBackendErrorCode =
  | 'E_PROVIDER_UNAVAILABLE' // the device asked for cannot run here (the message says why)
  | 'E_WEIGHT_FILES' // a graph's weight files are missing or cannot be mapped together
  | 'E_LOAD' // the runtime refused the graph
  | 'E_RUN' // the runtime failed while running a graph (the message names the feeds' dims)
  | 'E_RELEASED' // a session used after release
  | 'E_KEEP_ON_DEVICE' // outputs asked to stay on a device this session does not run on
  | 'E_FETCH' // a weight file could not be fetched or read
  | 'E_TOO_LARGE'; // weight files larger than 32-bit wasm memory can take

export class WebBackendError extends Blip2Error<WebBackendErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.WebBackendError');
  constructor(code: WebBackendErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'WebBackendError';
  }
}
