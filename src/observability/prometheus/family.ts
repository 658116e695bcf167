/**
 * Metric families that prom-client's Registry formats like its own (`registerMetric` accepts any
 * object with `name`, `help`, `type` and `get()`), but that count per request in plain numbers:
 * one Map lookup and one addition, where prom-client's `inc(labels)` hashes the label object on
 * every call. Gauges read their values at scrape time from a collect callback.
 */

export type Labels = Record<string, string>;

interface MetricValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: MetricValue[];
  aggregator: 'sum' | 'average' | 'max' | 'omit';
}

/** What a prom-client Registry needs from a metric. */
export interface RegisteredMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum' | 'average' | 'max' | 'omit';
  get(): Promise<MetricSnapshot>;
  reset(): void;
}

/** A counter cell one code path increments directly. */
export interface CounterCell {
  labels: Labels;
  value: number;
}

/** Counts kept per label set; `cell(key, labels)` is looked up once per event. */
export class CounterFamily implements RegisteredMetric {
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  readonly #cells = new Map<string, CounterCell>();

  constructor(
    public name: string,
    public help: string,
  ) {}

  /** The cell for `key` (a string that identifies `labels`), created with `labels()` on first use. */
  cell(key: string, labels: () => Labels): CounterCell {
    let c = this.#cells.get(key);
    if (c === undefined) {
      c = { labels: labels(), value: 0 };
      this.#cells.set(key, c);
    }
    return c;
  }

  async get(): Promise<MetricSnapshot> {
    const values: MetricValue[] = [];
    for (const c of this.#cells.values()) values.push({ labels: c.labels, value: c.value });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#cells.clear();
  }
}

export interface HistogramCell {
  readonly labels: Labels;
  /** Per-bucket counts, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export class HistogramFamily implements RegisteredMetric {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #cells = new Map<string, HistogramCell>();
  readonly #bounds: readonly number[];
  readonly #le: readonly string[];

  constructor(
    public name: string,
    public help: string,
    buckets: readonly number[],
  ) {
    this.#bounds = buckets;
    this.#le = [...buckets.map((b) => String(b)), '+Inf'];
  }

  cell(key: string, labels: () => Labels): HistogramCell {
    let c = this.#cells.get(key);
    if (c === undefined) {
      c = { labels: labels(), counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
      this.#cells.set(key, c);
    }
    return c;
  }

  observe(cell: HistogramCell, value: number): void {
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    cell.counts[i]!++;
    cell.sum += value;
    cell.count++;
  }

  async get(): Promise<MetricSnapshot> {
    const values: MetricValue[] = [];
    for (const c of this.#cells.values()) {
      let acc = 0;
      for (let i = 0; i < this.#le.length; i++) {
        acc += c.counts[i]!;
        values.push({
          labels: { ...c.labels, le: this.#le[i]! },
          value: acc,
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({ labels: c.labels, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: c.labels, value: c.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#cells.clear();
  }
}

/** A family whose values are all read at scrape time. */
export class CollectedFamily implements RegisteredMetric {
  constructor(
    public name: string,
    public help: string,
    readonly type: 'gauge' | 'counter',
    readonly collect: (emit: (labels: Labels, value: number) => void) => void,
    readonly aggregator: 'sum' | 'average' | 'max' | 'omit' = type === 'counter' ? 'sum' : 'average',
  ) {}

  async get(): Promise<MetricSnapshot> {
    const values: MetricValue[] = [];
    this.collect((labels, value) => {
      if (Number.isNaN(value)) return;
      values.push({ labels, value });
    });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    // Nothing is stored: every scrape reads the sources afresh.
  }
}
