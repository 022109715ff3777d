export { buildRowGather, DeviceRowGather } from './device-gather.js';
export * from './graph.js';
export * from './kv-adapter.js';
export * from './kv-slots.js';
export * from './ops.js';
export * from './packed-weights.js';
export { ProtoWriter } from './proto.js';
export * from './quantize.js';
export * from './weight-scope.js';
