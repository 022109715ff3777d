/**
 * Node-only helpers (`@blip2/processor/node`): decoding files and encoded bytes through
 * sharp, and loading tokenizers and processors from a checkpoint folder.
 */
export { decodeImageBytes, decodeImageFile } from './decode-node.js';
export { decodeImageNode, loadBlip2Processor, loadTokenizer, readJsonFile } from './load-node.js';
