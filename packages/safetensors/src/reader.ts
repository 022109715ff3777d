/** Random access to the bytes of one file, wherever it lives. */
import { SafetensorsError } from './errors.js';

export interface ByteReader {
  /** absolute path (Node) or URL: what a backend loads */
  readonly uri: string;
  size(): Promise<number>;
  /** exactly `length` bytes from `offset`, or a typed error */
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** A reader over bytes already in memory (tests, fetched files, browser File contents). */
export class MemoryByteReader implements ByteReader {
  constructor(
    readonly uri: string,
    private readonly bytes: Uint8Array,
  ) {}
  async size(): Promise<number> {
    return this.bytes.length;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.bytes.length) {
      throw new SafetensorsError(
        'E_IO',
        this.uri,
        `read of ${length} bytes at ${offset} is outside the ${this.bytes.length}-byte file`,
      );
    }
    return this.bytes.subarray(offset, offset + length);
  }
}
