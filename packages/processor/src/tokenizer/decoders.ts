/**
 * The `decoder` section of tokenizer.json: turns tokens back into text. Each decoder
 * maps the token list to a new list (the reference's `decode_chain`); the result is
 * concatenated at the end.
 */
import { ProcessorError } from '../errors.js';
import { patternOf } from './normalizers.js';
import { CHAR_TO_BYTE, metaspacePrependScheme, type PrependScheme } from './pre-tokenizers.js';

export interface Decoder {
  decodeChain(tokens: string[]): string[];
}

type Json = Record<string, unknown>;
const encoder = new TextEncoder();
// lossy: invalid sequences become U+FFFD, as from_utf8_lossy; a leading U+FEFF is text to the
// Rust tokenizers, not a byte-order mark (TextDecoder would strip it)
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

export class ByteLevelDecoder implements Decoder {
  decodeChain(tokens: string[]): string[] {
    const bytes: number[] = [];
    for (const t of tokens) {
      const chars = Array.from(t);
      if (chars.every((c) => CHAR_TO_BYTE.has(c)))
        for (const c of chars) bytes.push(CHAR_TO_BYTE.get(c) as number);
      else bytes.push(...encoder.encode(t)); // e.g. an added token outside the byte alphabet
    }
    return [utf8.decode(new Uint8Array(bytes))];
  }
}

export class MetaspaceDecoder implements Decoder {
  constructor(
    readonly replacement: string,
    readonly prependScheme: PrependScheme,
  ) {}
  decodeChain(tokens: string[]): string[] {
    return tokens.map((t, i) => {
      let out = '';
      for (const c of t) {
        if (c === this.replacement) out += i === 0 && this.prependScheme !== 'never' ? '' : ' ';
        else out += c;
      }
      return out;
    });
  }
}

export class ReplaceDecoder implements Decoder {
  constructor(
    readonly pattern: RegExp | string,
    readonly content: string,
  ) {}
  decodeChain(tokens: string[]): string[] {
    return tokens.map((t) =>
      typeof this.pattern === 'string'
        ? t.split(this.pattern).join(this.content)
        : t.replace(this.pattern, () => this.content),
    );
  }
}

export class FuseDecoder implements Decoder {
  decodeChain(tokens: string[]): string[] {
    return [tokens.join('')];
  }
}

export class StripDecoder implements Decoder {
  constructor(
    readonly content: string,
    readonly start: number,
    readonly stop: number,
  ) {}
  decodeChain(tokens: string[]): string[] {
    return tokens.map((t) => {
      const chars = Array.from(t);
      let s = 0;
      while (s < this.start && chars[s] === this.content) s++;
      let e = chars.length;
      while (e > s && chars.length - e < this.stop && chars[e - 1] === this.content) e--;
      return chars.slice(s, e).join('');
    });
  }
}

/** `<0xAB>` tokens (SentencePiece byte fallback) gathered back into UTF-8. */
export class ByteFallbackDecoder implements Decoder {
  decodeChain(tokens: string[]): string[] {
    const out: string[] = [];
    let pending: number[] = [];
    const flush = () => {
      if (pending.length === 0) return;
      const text = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(
        new Uint8Array(pending),
      );
      // invalid runs become one U+FFFD per byte in the reference
      out.push(text.includes('\uFFFD') ? '\uFFFD'.repeat(pending.length) : text);
      pending = [];
    };
    for (const t of tokens) {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
      if (m) pending.push(Number.parseInt(m[1], 16));
      else {
        flush();
        out.push(t);
      }
    }
    flush();
    return out;
  }
}

export class SequenceDecoder implements Decoder {
  constructor(readonly decoders: readonly Decoder[]) {}
  decodeChain(tokens: string[]): string[] {
    return this.decoders.reduce((acc, d) => d.decodeChain(acc), tokens);
  }
}

export function decoderFromJson(j: unknown, where = 'tokenizer.json decoder'): Decoder | null {
  if (j === null || j === undefined) return null;
  const o = j as Json;
  switch (o.type) {
    case 'ByteLevel':
      return new ByteLevelDecoder();
    case 'Metaspace':
      return new MetaspaceDecoder(String(o.replacement ?? '▁'), metaspacePrependScheme(o));
    case 'Replace':
      return new ReplaceDecoder(patternOf(o.pattern, `${where} Replace`), String(o.content ?? ''));
    case 'Fuse':
      return new FuseDecoder();
    case 'Strip':
      return new StripDecoder(String(o.content ?? ' '), Number(o.start ?? 0), Number(o.stop ?? 0));
    case 'ByteFallback':
      return new ByteFallbackDecoder();
    case 'Sequence': {
      if (!Array.isArray(o.decoders))
        throw new ProcessorError('E_TOKENIZER_JSON', `${where}: Sequence without "decoders" array`);
      return new SequenceDecoder(
        o.decoders
          .map((d, i) => decoderFromJson(d, `${where}[${i}]`))
          .filter((d): d is Decoder => d !== null),
      );
    }
    default:
      throw new ProcessorError(
        'E_TOKENIZER_JSON',
        `${where}: decoder type ${JSON.stringify(o.type)} is not supported`,
      );
  }
}
