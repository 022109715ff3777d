import { Blip2Error } from '@blip2/tensor';

/** Every failure of the onnxruntime-node backend, with a stable `code` callers can branch on. */
export type NodeBackendErrorCode =
  | 'E_PROVIDER_UNAVAILABLE' // the device asked for cannot run here (the message says why)
  | 'E_WEIGHT_FILES' // a graph's weight files are missing or cannot be mapped together
  | 'E_LOAD' // the runtime refused the graph
  | 'E_RUN' // the runtime failed while running a graph (the message names the feeds' dims)
  | 'E_RELEASED' // a session used after release
  | 'E_KEEP_ON_DEVICE'; // outputs asked to stay on a device this session does not run on

export class NodeBackendError extends Blip2Error<NodeBackendErrorCode> {
  static override readonly marker: symbol = Symbol.for('blip2.error.NodeBackendError');
  constructor(code: NodeBackendErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'NodeBackendError';
  }
}
