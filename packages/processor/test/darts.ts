/**
 * A small builder for SentencePiece `precompiled_charsmap` blobs, so the tests can feed
 * both our `Precompiled` and the reference (`tokenizers` -> `spm_precompiled`) charsmaps
 * whose contents we choose.
 *
 * Layout (what `spm_precompiled::parse` reads): a little-endian u32 byte size of the trie,
 * the trie as little-endian u32 units, then a blob of NUL-terminated UTF-8 replacements.
 * The trie is a Darts-clone double array over the keys' UTF-8 bytes; its values are byte
 * offsets into the blob.
 *
 * Darts-clone unit layout (darts.h, `DoubleArrayUnit` / `DoubleArrayBuilderUnit`):
 * - bits 0..7   label: the byte that leads into this unit (a value unit sets bit 31 too,
 *               so no byte ever matches it)
 * - bit 8       has_leaf: the node is the end of a key; its value sits at `base ^ 0`
 * - bit 9       the offset below is stored shifted right by 8 (for offsets >= 2^21)
 * - bits 10..31 offset: `node_pos ^ base`, where the children of the node live at
 *               `base ^ label`
 * - a value unit is `value | 1 << 31` (31-bit value).
 *
 * Unlike darts-clone we build from a plain trie (no DAWG suffix sharing); the reader
 * cannot tell the difference. Every base is used by one node only, and the array is
 * padded to whole 256-unit blocks, so `base ^ byte` is always inside it: the Rust reader
 * indexes the array unchecked and would panic otherwise.
 */

const encoder = new TextEncoder();

const HAS_LEAF = 1 << 8;
const OFFSET_SHIFTED = 1 << 9;
const VALUE_FLAG = 0x80000000;

interface TrieNode {
  children: Map<number, TrieNode>;
  value: number | undefined;
}

export interface DoubleArrayOptions {
  /**
   * Lowest base the builder may use. A base of 2^21 or more forces the shifted offset
   * encoding (bit 9), which tiny tries otherwise never exercise.
   */
  firstBase?: number;
}

/** `units[pos]` gets `off` encoded as darts-clone's `set_offset` does, or null if it cannot be. */
function encodeOffset(off: number): number | null {
  if (off < 1 << 21) return off << 10;
  if ((off & 0xff) === 0 && off < 1 << 29) return ((off >>> 8) << 10) | OFFSET_SHIFTED;
  return null;
}

/** A Darts-clone double array mapping each byte-string key to its (31-bit) value. */
export function buildDoubleArray(
  entries: readonly (readonly [Uint8Array, number])[],
  options: DoubleArrayOptions = {},
): Uint32Array {
  const root: TrieNode = { children: new Map(), value: undefined };
  for (const [key, value] of entries) {
    if (key.length === 0) throw new Error('darts: empty key');
    if (key.includes(0)) throw new Error('darts: a key must not contain a NUL byte');
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** 31)
      throw new Error(`darts: value ${value} does not fit 31 bits`);
    let node = root;
    for (const b of key) {
      let next = node.children.get(b);
      if (next === undefined) {
        next = { children: new Map(), value: undefined };
        node.children.set(b, next);
      }
      node = next;
    }
    if (node.value !== undefined) throw new Error(`darts: duplicate key ${Array.from(key).join(',')}`);
    node.value = value;
  }

  const units = new Map<number, number>();
  const usedPositions = new Set<number>([0]); // unit 0 holds the root
  const usedBases = new Set<number>();
  const firstBase = options.firstBase ?? 1;
  let maxBase = 0;

  const place = (node: TrieNode, pos: number) => {
    // A node with a value has a leaf child under label 0 that holds the value.
    const labels = [...node.children.keys()].sort((a, b) => a - b);
    if (node.value !== undefined) labels.unshift(0);
    if (labels.length === 0) return;
    let base = firstBase;
    for (; ; base++) {
      if (usedBases.has(base)) continue;
      if (encodeOffset(pos ^ base) === null) continue;
      if (labels.every((l) => !usedPositions.has(base ^ l))) break;
    }
    usedBases.add(base);
    maxBase = Math.max(maxBase, base);
    for (const l of labels) usedPositions.add(base ^ l);
    let unit = (units.get(pos) ?? 0) | (encodeOffset(pos ^ base) as number);
    if (node.value !== undefined) {
      unit |= HAS_LEAF;
      units.set(base, (node.value | VALUE_FLAG) >>> 0);
    }
    units.set(pos, unit >>> 0);
    for (const l of node.children.keys()) units.set(base ^ l, l);
    for (const [l, child] of node.children) place(child, base ^ l);
  };
  place(root, 0);

  const out = new Uint32Array((Math.floor(maxBase / 256) + 1) * 256);
  for (const [pos, unit] of units) out[pos] = unit;
  return out;
}

/**
 * A `precompiled_charsmap` for `rules` (key -> replacement; keys are any non-empty
 * strings, replacements may be empty). Equal replacements share one blob entry.
 */
export function buildCharsmap(
  rules: readonly (readonly [string, string])[],
  options: DoubleArrayOptions = {},
): Uint8Array {
  const blobParts: Uint8Array[] = [];
  const offsetOf = new Map<string, number>();
  let blobLength = 0;
  const entries: [Uint8Array, number][] = [];
  for (const [key, replacement] of rules) {
    let offset = offsetOf.get(replacement);
    if (offset === undefined) {
      offset = blobLength;
      offsetOf.set(replacement, offset);
      const bytes = encoder.encode(`${replacement}\0`);
      blobParts.push(bytes);
      blobLength += bytes.length;
    }
    entries.push([encoder.encode(key), offset]);
  }
  const units = buildDoubleArray(entries, options);
  const out = new Uint8Array(4 + units.length * 4 + blobLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, units.length * 4, true);
  for (let i = 0; i < units.length; i++) view.setUint32(4 + i * 4, units[i], true);
  let at = 4 + units.length * 4;
  for (const part of blobParts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** What a Darts `commonPrefixSearch` of `key` returns: values of keys that prefix it, shortest first. */
export function referencePrefixValues(rules: readonly (readonly [string, string])[], text: string): string[] {
  const bytes = encoder.encode(text);
  const hits: [number, string][] = [];
  for (const [key, replacement] of rules) {
    const k = encoder.encode(key);
    if (k.length <= bytes.length && k.every((b, i) => bytes[i] === b)) hits.push([k.length, replacement]);
  }
  return hits.sort((a, b) => a[0] - b[0]).map(([, r]) => r);
}
