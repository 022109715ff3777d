import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';

/** Writes a file so that readers see the old content or the new, never half of it. */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** The official results layout, one answer per line so that files diff well. */
export function formatResults(results: readonly { question_id: number; answer: string }[]): string {
  if (results.length === 0) return '[]\n';
  const lines = results.map((r) => JSON.stringify({ question_id: r.question_id, answer: r.answer }));
  return `[\n${lines.join(',\n')}\n]\n`;
}
