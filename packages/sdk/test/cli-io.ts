/** A CLI `Io` that keeps what a command writes, for tests that run `main`. */
import type { main } from '../src/cli/main.js';

export function capture() {
  let out = '';
  let err = '';
  const io = {
    stdout: {
      write(s: string) {
        out += s;
        return true;
      },
    },
    stderr: {
      write(s: string) {
        err += s;
        return true;
      },
    },
  } as unknown as Parameters<typeof main>[1];
  return { io, out: () => out, err: () => err };
}
