export { buildRowGather, DeviceRowGather } from './device-gather.js';
export * from './graph.js';
export * from './ops.js';
export { ProtoWriter } from './proto.js';
