/**
 * SentencePiece's precompiled normalization map (`Precompiled` in tokenizer.json, the
 * first normalizer of the published T5/Flan-T5 files): a Darts double-array trie over
 * UTF-8 byte strings whose values point into a blob of NUL-terminated replacements.
 * Applied per grapheme cluster (whole cluster first when short, then code point by code
 * point), as the reference's `spm_precompiled` does.
 */
import { ProcessorError } from '../errors.js';
import type { NormalizedString } from './normalized.js';
import type { Normalizer } from './normalizers.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { ignoreBOM: true }); // a replacement may begin with U+FEFF

function base64ToBytes(b64: string): Uint8Array {
  if (typeof atob === 'function') {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  throw new ProcessorError('E_TOKENIZER_JSON', 'Precompiled: no base64 decoder (atob) in this runtime');
}

export class Precompiled implements Normalizer {
  private readonly units: Uint32Array;
  private readonly blob: Uint8Array;

  constructor(charsmap: Uint8Array, where = 'Precompiled') {
    if (charsmap.length < 4)
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: charsmap of ${charsmap.length} bytes is too short`,
      );
    const view = new DataView(charsmap.buffer, charsmap.byteOffset, charsmap.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize % 4 !== 0 || 4 + trieSize > charsmap.length) {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: trie size ${trieSize} does not fit the ${charsmap.length}-byte charsmap`,
      );
    }
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + i * 4, true);
    this.blob = charsmap.subarray(4 + trieSize);
    // the reference decodes the whole blob up front and refuses the charsmap if it is not
    // UTF-8; decoding lazily would turn bad bytes into U+FFFD replacements instead
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(this.blob);
    } catch {
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: the replacement strings after the ${trieSize}-byte trie are not valid UTF-8`,
      );
    }
  }

  static fromBase64(b64: unknown, where: string): Precompiled {
    if (typeof b64 !== 'string')
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: "precompiled_charsmap" must be a base64 string`,
      );
    return new Precompiled(base64ToBytes(b64), where);
  }

  /** Values of every key that is a prefix of `key` (Darts commonPrefixSearch), shortest first. */
  private commonPrefixSearch(key: Uint8Array): number[] {
    const u = this.units;
    const results: number[] = [];
    if (u.length === 0) return results;
    const offset = (unit: number) => (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
    let pos = offset(u[0]);
    for (const c of key) {
      if (c === 0) break;
      pos ^= c;
      if (pos >= u.length) return results;
      const unit = u[pos];
      if ((unit & ((1 << 31) | 0xff)) >>> 0 !== c) return results;
      pos ^= offset(unit);
      if ((unit >>> 8) & 1) results.push(u[pos] & 0x7fffffff);
    }
    return results;
  }

  /** The replacement for `chunk`, or null. Like the reference, the first (shortest) hit wins. */
  transform(chunk: string): string | null {
    const hits = this.commonPrefixSearch(encoder.encode(chunk));
    if (hits.length === 0) return null;
    const start = hits[0];
    let end = start;
    while (end < this.blob.length && this.blob[end] !== 0) end++;
    return decoder.decode(this.blob.subarray(start, end));
  }

  normalize(s: NormalizedString): void {
    const dest: [string, number][] = [];
    let modified = false;
    const replace = (oldPart: string, newPart: string) => {
      const oldCount = Array.from(oldPart).length;
      const added = Array.from(newPart);
      const diff = added.length - oldCount;
      for (const c of added) dest.push([c, 0]);
      if (diff > 0) for (let i = dest.length - diff; i < dest.length; i++) dest[i][1] = 1;
      else if (diff < 0 && dest.length > 0) dest[dest.length - 1][1] += diff;
    };
    const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
    for (const { segment } of segmenter.segment(s.text)) {
      if (encoder.encode(segment).length < 6) {
        const norm = this.transform(segment);
        if (norm !== null) {
          modified = true;
          replace(segment, norm);
          continue;
        }
      }
      for (const c of segment) {
        const norm = this.transform(c);
        if (norm !== null) {
          modified = true;
          replace(c, norm);
        } else dest.push([c, 0]);
      }
    }
    if (modified) s.transform(0, s.length, dest, 0);
  }
}
