/**
 * A progress bar for long runs, hand-written and TTY-aware: on a terminal it redraws one line in
 * place; anywhere else (CI logs, pipes) it prints a plain line at each phase and every 25%.
 */

export interface ProgressStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export class ProgressBar {
  readonly #out: ProgressStream;
  readonly #tty: boolean;
  #label = '';
  #lastQuarter = -1;
  #drawn = false;

  constructor(out: ProgressStream = process.stderr) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  /** Shows `done` of `total` for `label` (a new label starts a new phase). */
  update(done: number, total: number, label: string): void {
    const share = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
    if (this.#tty) {
      const width = Math.max(10, Math.min(40, (this.#out.columns ?? 80) - label.length - 20));
      const full = Math.round(share * width);
      const bar = `${'#'.repeat(full)}${'.'.repeat(width - full)}`;
      this.#out.write(`\r\x1b[2K[${bar}] ${String(Math.round(share * 100)).padStart(3)}% ${label}`);
      this.#drawn = true;
      return;
    }
    const quarter = Math.floor(share * 4);
    if (label !== this.#label) {
      this.#label = label;
      this.#lastQuarter = quarter;
      this.#out.write(`${label}: ${done}/${total}\n`);
    } else if (quarter > this.#lastQuarter) {
      this.#lastQuarter = quarter;
      this.#out.write(`${label}: ${done}/${total} (${quarter * 25}%)\n`);
    }
    this.#label = label;
  }

  /** Ends the bar (clears the line on a terminal). */
  done(): void {
    if (this.#tty && this.#drawn) this.#out.write('\r\x1b[2K');
    this.#drawn = false;
    this.#label = '';
    this.#lastQuarter = -1;
  }
}
