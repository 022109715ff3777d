/**
 * A string being normalized, with each current code point aligned to the range of the
 * original text it came from: Hugging Face tokenizers' `NormalizedString`, the thing that
 * makes offsets survive NFKC, space collapsing, byte-level mapping and prefix insertion.
 * Everything is counted in code points (Python's `str` indices), not UTF-16 units.
 */
import { pushAll, spliceAll } from './arrays.js';
export class NormalizedString {
  /** current text, one code point per entry */
  chars: string[];
  /** original [start, end) of each current code point */
  starts: number[];
  ends: number[];

  constructor(chars: string[], starts: number[], ends: number[]) {
    this.chars = chars;
    this.starts = starts;
    this.ends = ends;
  }

  /** A fresh string whose code points start at `offset` in the original text. */
  static from(text: string, offset = 0): NormalizedString {
    const chars = Array.from(text);
    return new NormalizedString(
      chars,
      chars.map((_, i) => offset + i),
      chars.map((_, i) => offset + i + 1),
    );
  }

  get text(): string {
    return this.chars.join('');
  }

  get length(): number {
    return this.chars.length;
  }

  slice(start: number, end: number): NormalizedString {
    return new NormalizedString(
      this.chars.slice(start, end),
      this.starts.slice(start, end),
      this.ends.slice(start, end),
    );
  }

  /** Original range covered by current code points [start, end). */
  originalRange(start: number, end: number): [number, number] {
    if (end <= start) {
      // an empty range sits where the next (or previous) code point starts
      const at = start < this.length ? this.starts[start] : this.length > 0 ? this.ends[this.length - 1] : 0;
      return [at, at];
    }
    return [this.starts[start], this.ends[end - 1]];
  }

  /**
   * Replace current code points [start, end) by `dest`, where each entry is a code point
   * and its change: 0 = replaces one old code point (keeps its alignment), +1 = inserted
   * (takes the alignment of the code point before it), -n = replaces one and removes n
   * more. `removedFirst` old code points are dropped before the first entry. This is
   * `NormalizedString::transform_range`, whose alignment rules the reference offsets follow.
   */
  transform(
    start: number,
    end: number,
    dest: readonly (readonly [string, number])[],
    removedFirst: number,
  ): void {
    const { chars, starts, ends } = this.aligned(start, dest, removedFirst);
    const removed = end - start;
    spliceAll(this.chars, start, removed, chars);
    spliceAll(this.starts, start, removed, starts);
    spliceAll(this.ends, start, removed, ends);
  }

  /** The code points and alignments `transform(start, ..., dest, removedFirst)` puts in place. */
  private aligned(
    start: number,
    dest: readonly (readonly [string, number])[],
    removedFirst: number,
  ): { chars: string[]; starts: number[]; ends: number[] } {
    const chars: string[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    let offset = start + removedFirst;
    for (const [c, change] of dest) {
      let s: number;
      let e: number;
      if (change > 0) {
        if (offset < 1) {
          s = 0;
          e = 0;
        } else {
          s = this.starts[offset - 1];
          e = this.ends[offset - 1];
        }
      } else {
        s = this.starts[offset];
        e = this.ends[offset];
        offset += 1;
        if (change < 0) offset += -change;
      }
      chars.push(c);
      starts.push(s);
      ends.push(e);
    }
    return { chars, starts, ends };
  }

  /** Replace every match of `pattern` by `content` (NormalizedString::replace). */
  replace(pattern: RegExp | string, content: string): void {
    const matches = findMatches(this.chars, pattern).filter((m) => m[2]);
    if (matches.length === 0) return;
    const insert = Array.from(content, (c) => [c, 1] as const);
    // one pass, left to right, into new arrays: a transform per match would copy the whole
    // string each time (quadratic in a long prompt). Each match reads only alignments left of
    // its end, which the matches before it have not changed, so this equals right-to-left transforms.
    const chars: string[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    let cursor = 0;
    for (const [s, e] of matches) {
      for (let k = cursor; k < s; k++) {
        chars.push(this.chars[k]);
        starts.push(this.starts[k]);
        ends.push(this.ends[k]);
      }
      const r = this.aligned(s, insert, e - s);
      pushAll(chars, r.chars);
      pushAll(starts, r.starts);
      pushAll(ends, r.ends);
      cursor = e;
    }
    for (let k = cursor; k < this.chars.length; k++) {
      chars.push(this.chars[k]);
      starts.push(this.starts[k]);
      ends.push(this.ends[k]);
    }
    this.chars = chars;
    this.starts = starts;
    this.ends = ends;
  }

  prepend(s: string): void {
    if (this.length === 0) return;
    const dest: [string, number][] = Array.from(s).map((c, i) => [c, i === 0 ? 0 : 1]);
    dest.push([this.chars[0], 1]);
    this.transform(0, 1, dest, 0);
  }

  /** Map every code point through `f` (one code point in, one out), keeping alignments. */
  mapChars(f: (c: string) => string): void {
    this.chars = this.chars.map(f);
  }

  /** Split into pieces by `pattern` with one of the reference's delimiter behaviors. */
  split(
    pattern: RegExp | string | ((c: string) => boolean),
    behavior: SplitBehavior,
    invert = false,
  ): NormalizedString[] {
    let matches =
      typeof pattern === 'function' ? charMatches(this.chars, pattern) : findMatches(this.chars, pattern);
    if (invert) matches = matches.map(([s, e, m]) => [s, e, !m] as [number, number, boolean]);
    const ranges: [number, number][] = [];
    switch (behavior) {
      case 'Removed':
        for (const [s, e, m] of matches) if (!m) ranges.push([s, e]);
        break;
      case 'Isolated':
        for (const [s, e] of matches) ranges.push([s, e]);
        break;
      case 'MergedWithPrevious': {
        // a delimiter joins the piece before it
        let prevMatch = false;
        for (const [s, e, m] of matches) {
          if (m && !prevMatch && ranges.length > 0) ranges[ranges.length - 1][1] = e;
          else ranges.push([s, e]);
          prevMatch = m;
        }
        break;
      }
      case 'MergedWithNext': {
        // a delimiter joins the piece after it: walk backwards, as the reference does
        let nextMatch = false;
        for (let i = matches.length - 1; i >= 0; i--) {
          const [s, e, m] = matches[i];
          if (m && !nextMatch && ranges.length > 0) ranges[ranges.length - 1][0] = s;
          else ranges.push([s, e]);
          nextMatch = m;
        }
        ranges.reverse();
        break;
      }
      case 'Contiguous': {
        let prevMatch = false;
        for (const [s, e, m] of matches) {
          if (m === prevMatch && ranges.length > 0) ranges[ranges.length - 1][1] = e;
          else ranges.push([s, e]);
          prevMatch = m;
        }
        break;
      }
    }
    return ranges.filter(([s, e]) => e > s).map(([s, e]) => this.slice(s, e));
  }
}

export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';

/**
 * Matches of `pattern` over code points as [start, end, isMatch] ranges covering the
 * whole string (non-matching gaps included), in code point indices.
 */
export function findMatches(chars: readonly string[], pattern: RegExp | string): [number, number, boolean][] {
  const text = chars.join('');
  // UTF-16 index -> code point index
  const cp = new Int32Array(text.length + 1);
  for (let i = 0, u = 0; i < chars.length; i++) {
    for (let k = 0; k < chars[i].length; k++) cp[u + k] = i;
    u += chars[i].length;
    cp[u] = i + 1;
  }
  const out: [number, number, boolean][] = [];
  let last = 0;
  const push = (s: number, e: number) => {
    if (s > last) out.push([last, s, false]);
    out.push([s, e, true]);
    last = e;
  };
  if (typeof pattern === 'string') {
    if (pattern.length > 0) {
      let from = 0;
      for (;;) {
        const i = text.indexOf(pattern, from);
        if (i < 0) break;
        push(cp[i], cp[i + pattern.length]);
        from = i + pattern.length;
      }
    }
  } else {
    const re = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m[0].length === 0) {
        re.lastIndex += 1;
        continue;
      }
      push(cp[m.index], cp[m.index + m[0].length]);
    }
  }
  if (chars.length > last) out.push([last, chars.length, false]);
  return out;
}

function charMatches(chars: readonly string[], f: (c: string) => boolean): [number, number, boolean][] {
  return chars.map((c, i) => [i, i + 1, f(c)]);
}
