export type * from './backend.js';
export * from './device.js';
export * from './errors.js';
export * from './feeds.js';
export { isObject } from './json.js';
export { LazySession } from './lazy-session.js';
export * from './ops.js';
export * from './ort.js';
export * from './tensor.js';
