/**
 * A minimal protobuf writer for the parts of onnx.proto a graph needs.
 * Field numbers are onnx.proto's (onnx/onnx, IR version 8); only writing is
 * needed, so a few dozen lines replace a protobuf runtime and its schema.
 */

export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(256);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.buf = new Uint8Array(Math.max(256, n, this.buf.length * 2));
    this.pos = 0;
  }

  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.pos++] = Number(x);
  }

  private smallVarint(v: number): void {
    if (v < 0 || v > 0x7fffffff) {
      this.varint(v);
      return;
    }
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
  }

  private tag(field: number, wire: number): void {
    this.smallVarint((field << 3) | wire);
  }

  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).setFloat32(0, v, true);
    this.pos += 4;
    return this;
  }

  bytes(field: number, v: Uint8Array): this {
    this.tag(field, 2);
    this.smallVarint(v.length);
    if (v.length > 4096) {
      // large payloads (embedded initializers) are referenced, not copied twice
      this.chunks.push(this.buf.subarray(0, this.pos), v);
      this.buf = new Uint8Array(256);
      this.pos = 0;
    } else {
      this.ensure(v.length);
      this.buf.set(v, this.pos);
      this.pos += v.length;
    }
    return this;
  }

  string(field: number, v: string): this {
    return this.bytes(field, new TextEncoder().encode(v));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const w = new ProtoWriter();
    build(w);
    return this.bytes(field, w.finish());
  }

  /** packed repeated int64 */
  packedInts(field: number, vs: readonly (number | bigint)[]): this {
    const w = new ProtoWriter();
    for (const v of vs) w.varint(v);
    return this.bytes(field, w.finish());
  }

  finish(): Uint8Array {
    const parts = [...this.chunks, this.buf.subarray(0, this.pos)];
    const total = parts.reduce((s, p) => s + p.length, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}
