/**
 * The seedable random source for sampling: xoshiro128** (Blackman & Vigna, 2018)
 * with its 128-bit state filled by splitmix32 from the seed. Chosen because it is
 * small, fast with 32-bit integer math (Math.imul), passes BigCrush, and gives the
 * same stream on every JS engine, so a seed reproduces the same tokens in Node and
 * in browsers. It is not torch's generator: a seed here does not reproduce
 * torch.multinomial draws.
 */
export interface Rng {
  /** A uniform float in [0, 1) with 53 random bits. */
  next(): number;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Xoshiro128 implements Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `seed`: any safe integer; both its low and high 32 bits matter. */
  constructor(seed: number) {
    const lo = splitmix32(seed >>> 0);
    const hi = splitmix32(Math.floor(seed / 2 ** 32) >>> 0);
    this.a = lo() ^ hi();
    this.b = lo();
    this.c = lo() ^ hi();
    this.d = lo();
    // xoshiro's only bad state is all zeros
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  next(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A generator for `seed`, or a randomly seeded one (Web Crypto, never Math.random). */
export function createRng(seed?: number): Xoshiro128 {
  if (seed !== undefined) return new Xoshiro128(seed);
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  return new Xoshiro128(words[0] + (words[1] & 0x1fffff) * 2 ** 32);
}
