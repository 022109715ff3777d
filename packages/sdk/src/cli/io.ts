import { isAbsolute, relative } from 'node:path';
/** Where the commands write: the process's streams, or test doubles. */
export interface Io {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WriteStream;
}

export const processIo: Io = { stdout: process.stdout, stderr: process.stderr };

/** A folder as the text output shows it: relative to the working directory when inside it (no machine paths in logs). */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}
