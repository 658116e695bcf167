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

/**
 * Cells found by their label values, one Map level per label. Label values are usually string
 * constants whose hash V8 has cached, so each level is one cheap lookup; a joined string key would
 * be a fresh string to hash on every event (measured 10x slower).
 */
class CellTrie<C> {
  readonly #root = new Map<string, unknown>();
  readonly #cells: C[] = [];

  get(path: readonly string[], create: () => C): C {
    let level = this.#root;
    const last = path.length - 1;
    for (let i = 0; i < last; i++) {
      let next = level.get(path[i]!) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(path[i]!, next);
      }
      level = next;
    }
    let cell = level.get(path[last]!) as C | undefined;
    if (cell === undefined) {
      cell = create();
      level.set(path[last]!, cell);
      this.#cells.push(cell);
    }
    return cell;
  }

  values(): readonly C[] {
    return this.#cells;
  }

  clear(): void {
    this.#root.clear();
    this.#cells.length = 0;
  }
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
  readonly #cells = new CellTrie<CounterCell>();

  /** `extra` adds values read at scrape time (sources that keep their own totals). */
  constructor(
    public name: string,
    public help: string,
    readonly extra?: (emit: (labels: Labels, value: number) => void) => void,
  ) {}

  /** The cell for these label values (in a fixed order), created with `labels()` on first use. */
  cell(path: readonly string[], labels: () => Labels): CounterCell {
    return this.#cells.get(path, () => ({ labels: labels(), value: 0 }));
  }

  async get(): Promise<MetricSnapshot> {
    const values: MetricValue[] = [];
    for (const c of this.#cells.values()) values.push({ labels: c.labels, value: c.value });
    this.extra?.((labels, value) => {
      if (Number.isFinite(value)) values.push({ labels, value });
    });
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
  readonly #cells = new CellTrie<HistogramCell>();
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

  cell(path: readonly string[], labels: () => Labels): HistogramCell {
    return this.#cells.get(path, () => ({
      labels: labels(),
      counts: new Float64Array(this.#bounds.length + 1),
      sum: 0,
      count: 0,
    }));
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
