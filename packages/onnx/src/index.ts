export * from './graph.js';
export * from './ops.js';
export { ProtoWriter } from './proto.js';
