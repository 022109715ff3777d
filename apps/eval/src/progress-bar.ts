/** A one-line progress bar (questions/s, ETA) for a terminal; silent when stderr is a pipe or file. */

export interface BarStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

export class ProgressBar {
  private readonly start = Date.now();
  private lastDraw = 0;
  private done = 0;

  constructor(
    private readonly total: number,
    /** Answers already on disk from an earlier run: counted as done, not in the speed. */
    private readonly resumed: number,
    private readonly stream: BarStream = process.stderr,
  ) {
    this.done = resumed;
  }

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  advance(n: number): void {
    this.done += n;
    const now = Date.now();
    if (now - this.lastDraw >= 100 || this.done >= this.total) {
      this.lastDraw = now;
      this.draw(now);
    }
  }

  finish(): void {
    if (this.enabled) this.stream.write('\n');
  }

  /** The text of the bar (exposed for tests). */
  render(now = Date.now()): string {
    const seconds = (now - this.start) / 1000;
    const fresh = this.done - this.resumed;
    const rate = seconds > 0 ? fresh / seconds : 0;
    const left = this.total - this.done;
    const eta = rate > 0 ? formatDuration(left / rate) : '--:--';
    const frac = this.total === 0 ? 1 : this.done / this.total;
    const width = 24;
    const filled = Math.round(frac * width);
    return (
      `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.done}/${this.total} ` +
      `${(frac * 100).toFixed(1)}% ${rate.toFixed(2)} q/s ETA ${eta}`
    );
  }

  private draw(now: number): void {
    if (this.enabled) this.stream.write(`\r${this.render(now)}`);
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}
