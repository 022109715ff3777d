/**
 * A one-line progress bar on stderr for model loading (download bytes, then graph
 * build and session load). Only on a terminal: piped stderr stays clean for logs.
 */
import type { LoadProgress, ProgressCallback } from '../sources/progress.js';

const WIDTH = 24;

function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}

export function progressLine(event: LoadProgress): string {
  const [done, total, label] =
    event.phase === 'download'
      ? [
          event.overallLoaded,
          event.overallTotal,
          `downloading ${event.file} ${bytes(event.overallLoaded)} / ${bytes(event.overallTotal)}`,
        ]
      : [
          event.done,
          event.total,
          `${event.phase === 'build' ? 'building' : 'loading'} ${event.graph} (${event.done}/${event.total})`,
        ];
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(fraction * WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}% ${label}`;
}

export interface ProgressBar {
  readonly onProgress: ProgressCallback | undefined;
  /** erases the bar (before printing results) */
  done(): void;
}

export function progressBar(stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  if (!stream.isTTY) return { onProgress: undefined, done() {} };
  let shown = false;
  return {
    onProgress(event) {
      const columns = stream.columns || 80;
      stream.write(`\r${progressLine(event).slice(0, columns - 1)}\x1b[K`);
      shown = true;
    },
    done() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
