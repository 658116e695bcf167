/**
 * A latency histogram with logarithmic buckets: each bucket is 1% wider than the one before, so
 * any percentile it reports is within 1% above the true value, whatever the range (10 µs to hours),
 * in a few kilobytes. Buckets are sparse, so a histogram travels over IPC as a small object and
 * histograms from several seconds or processes merge by adding counts.
 */

const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Values at or below this (in ms) share bucket 0. */
const MIN_MS = 0.01;

/** A histogram as plain data: bucket index → count. */
export interface HistogramData {
  readonly counts: Readonly<Record<string, number>>;
  readonly count: number;
  readonly maxMs: number;
}

export class LatencyHistogram {
  readonly #counts = new Map<number, number>();
  #count = 0;
  #max = 0;

  static from(data: HistogramData): LatencyHistogram {
    const h = new LatencyHistogram();
    h.merge(data);
    return h;
  }

  /** Records one latency in ms (negative or NaN values are recorded as 0). */
  record(ms: number): void {
    const v = Math.max(ms, 0);
    const i = v <= MIN_MS ? 0 : Math.ceil(Math.log(v / MIN_MS) / LOG_GROWTH);
    this.#counts.set(i, (this.#counts.get(i) ?? 0) + 1);
    this.#count++;
    if (v > this.#max) this.#max = v;
  }

  merge(other: LatencyHistogram | HistogramData): void {
    const data = other instanceof LatencyHistogram ? other.toJSON() : other;
    for (const [k, c] of Object.entries(data.counts)) {
      const i = Number(k);
      this.#counts.set(i, (this.#counts.get(i) ?? 0) + c);
    }
    this.#count += data.count;
    if (data.maxMs > this.#max) this.#max = data.maxMs;
  }

  get count(): number {
    return this.#count;
  }

  get maxMs(): number {
    return this.#max;
  }

  /**
   * The `p`-th percentile (0 < p <= 100) in ms: the upper edge of the bucket that holds it, capped at
   * the largest value recorded. NaN when empty.
   */
  percentile(p: number): number {
    if (this.#count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    const keys = [...this.#counts.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const k of keys) {
      seen += this.#counts.get(k)!;
      if (seen >= rank) return Math.min(this.#max, MIN_MS * GROWTH ** k);
    }
    return this.#max;
  }

  toJSON(): HistogramData {
    const counts: Record<string, number> = {};
    for (const [k, c] of this.#counts) counts[k] = c;
    return { counts, count: this.#count, maxMs: this.#max };
  }
}
