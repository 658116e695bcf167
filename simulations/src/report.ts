/**
 * What a simulation reports: a summary (the numbers you compare) and a time series in 1 s
 * buckets (what you chart), with a table for the terminal and JSON/CSV/SVG files on disk.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mode, PriorityClass } from './scenario.js';

/** One second of the run. Counts are requests in that second; latencies in ms. */
export interface SeriesPoint {
  /** Start of the bucket, in seconds from the start of the run. */
  readonly t: number;
  /** Requests that arrived (first attempts and retries). */
  readonly offered: number;
  /** First attempts only: the demand the traffic model asked for. */
  readonly offeredFirst: number;
  readonly admitted: number;
  /** Answered successfully within the client's timeout. */
  readonly goodput: number;
  /** Answered successfully after the client had given up (work for nobody). */
  readonly late: number;
  /** Refused because the process was overloaded (503). */
  readonly shed: number;
  /** Refused by a quota (429: static limit, per-tenant limit). */
  readonly limited: number;
  /** Failed because the downstream pool's queue was full. */
  readonly failed: number;
  /** p50 and p99 of admitted requests answered in this second (null when none). */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** The factor in force at the end of the second (null for modes without one). */
  readonly factor: number | null;
  /** The governor's raw and smoothed pressure at its last tick (shadow governor in none/static). */
  readonly pressure: number;
  readonly smoothedPressure: number;
  /** The dominant signal at its last tick, or null when no signal has pressure. */
  readonly dominant: string | null;
  /** Longest wait of a loop item that started in this second, or of the oldest still queued at its end, in ms. */
  readonly maxWaitMs: number;
  /** Requests received and not yet answered, at the end of the second. */
  readonly inFlight: number;
}

/** One overload episode: a run of seconds where the traffic model asks for more than capacity. */
export interface Episode {
  readonly startSec: number;
  readonly endSec: number;
  /** Mean first-attempt demand during the episode, per second. */
  readonly demandPerSec: number;
  /** Mean arrivals (with retries) during the episode, per second. */
  readonly offeredPerSec: number;
  readonly goodputPerSec: number;
  /** goodputPerSec / capacity. */
  readonly goodputShare: number;
  /** The worst 1 s p99 of admitted requests answered during the episode, in ms (null when none). */
  readonly p99Ms: number | null;
  /** From the start of the episode to the first factor below 1, in ms (null: never, or no factor). */
  readonly engageMs: number | null;
  /**
   * From the end of the episode to the end of the first second with the factor back at 1 and no
   * loop wait above `report.recoveryWaitMs`, in ms, at 1 s resolution (null: not within the run).
   */
  readonly recoverMs: number | null;
  /**
   * Shedding on/off switches from the start to `settleSec` after the end (or the next episode), at
   * 1 s resolution: a second "sheds" when it refused anything. 2 is clean: on once, off once.
   */
  readonly switches: number;
  /**
   * The same at 100 ms resolution (a 100 ms slice "sheds" when it refused anything), as the live
   * benchmarks count them. Optional for reports built elsewhere.
   */
  readonly switches100Ms?: number;
  /**
   * The end of the last 100 ms slice with a refusal after the episode ended, in ms after its end,
   * within its switches window (null: none). Optional for reports built elsewhere.
   */
  readonly lastRefusalAfterEndMs?: number | null;
  /** The p99 of every request answered during the episode, in ms (null: none). Optional likewise. */
  readonly p99AllMs?: number | null;
  /**
   * The p50 of the 2xx and of the refusals (429 and 503) answered during the episode, from their
   * send time, in ms (null: none): refusals should be no slower than admissions. Optional likewise.
   */
  readonly p50Ms?: number | null;
  readonly refusedP50Ms?: number | null;
  /**
   * The same for the factor crossing 1 (exact times). Null without a factor; the simulator always
   * sets it (optional for reports built elsewhere, such as live runs).
   */
  readonly factorSwitches?: number | null;
}

export interface TenantResult {
  readonly tenant: string;
  /** First attempts sent. */
  readonly demand: number;
  readonly goodput: number;
  /** Max-min fair share of capacity × duration, given every tenant's demand. */
  readonly fairShare: number;
  /**
   * Requests (attempts) sent during the overloaded seconds (demand above capacity), and of those
   * the ones answered in time: `overloadGoodput / overloadSent` is the share of what the tenant
   * sent during the overload that it got served. Optional for reports built elsewhere.
   */
  readonly overloadSent?: number;
  readonly overloadGoodput?: number;
}

export interface SimSummary {
  readonly scenario: string;
  readonly mode: Mode;
  /** A name for the run in tables and charts when it is not just the mode (e.g. "spillway (tuned)"). */
  readonly label?: string;
  readonly seed: number;
  readonly durationSec: number;
  readonly capacityPerSec: number;
  /** Arrivals, first attempts and retries. */
  readonly offered: number;
  readonly firstAttempts: number;
  readonly retries: number;
  readonly offeredPerSec: number;
  readonly admitted: number;
  readonly goodput: number;
  readonly goodputPerSec: number;
  /** goodputPerSec / capacityPerSec. */
  readonly goodputShareOfCapacity: number;
  /** goodput / firstAttempts: the share of demand that was served in time. */
  readonly goodputShareOfDemand: number;
  readonly late: number;
  readonly failed: number;
  /** Still in flight when the run ended. */
  readonly unfinished: number;
  /** Of admitted requests answered, in ms. */
  readonly latencyMs: {
    /** Mean latency (the simulator always sets it; optional for reports built elsewhere, such as live runs). */
    readonly mean?: number | null;
    readonly p50: number | null;
    readonly p99: number | null;
    readonly max: number | null;
  };
  /** Of refusals (429 and 503) answered, from send to the refusal, in ms (simulator only). */
  readonly refusedLatencyMs?: { readonly p50: number | null; readonly p99: number | null };
  /** Requests whose client left while they waited in the concurrency stage (refunded, simulator only). */
  readonly canceled?: number;
  readonly shed: number;
  /** shed / offered. */
  readonly shedShare: number;
  /**
   * On/off switches of "refused anything" in 100 ms slices over the whole run, as the live
   * benchmarks count them. Optional for reports built elsewhere.
   */
  readonly switches100Ms?: number;
  /** Per class: shed / arrivals of that class (null when the class sent nothing). */
  readonly shedShareByPriority: Readonly<Record<PriorityClass, number | null>>;
  readonly limited: number;
  /** limited / offered. */
  readonly limitedShare: number;
  /** Factor direction changes (cut after rise or rise after cut) per minute of run. Null without a factor. */
  readonly factorDirectionChangesPerMin: number | null;
  readonly minFactor: number | null;
  readonly episodes: readonly Episode[];
  /**
   * Jain's index over tenants of goodput / max-min fair share: 1 is perfectly fair. Null with
   * fewer than 2 tenants or no goodput.
   */
  readonly jainIndex: number | null;
  /**
   * Jain's index of goodput / demand (first attempts) per tenant. Blind to a tenant taking more
   * than its share when everyone is served the same fraction (FIFO); kept for comparison. The
   * simulator always sets it (optional for reports built elsewhere).
   */
  readonly jainIndexByDemand?: number | null;
  readonly tenants: readonly TenantResult[];
  /** Wall-clock time the simulation took, in ms (the only non-deterministic field). */
  readonly wallMs: number;
}

export interface SimReport {
  readonly summary: SimSummary;
  readonly series: readonly SeriesPoint[];
  /** Every factor change (enforced factor), in order. */
  readonly factorChanges: readonly { readonly atMs: number; readonly factor: number }[];
}

const SERIES_COLUMNS: readonly (keyof SeriesPoint)[] = [
  't',
  'offered',
  'offeredFirst',
  'admitted',
  'goodput',
  'late',
  'shed',
  'limited',
  'failed',
  'p50Ms',
  'p99Ms',
  'factor',
  'pressure',
  'smoothedPressure',
  'dominant',
  'maxWaitMs',
  'inFlight',
];

/** The series as CSV, one row per second, with a header. Empty cells for nulls. */
export function seriesToCsv(series: readonly SeriesPoint[]): string {
  const lines = [SERIES_COLUMNS.join(',')];
  for (const p of series) {
    lines.push(
      SERIES_COLUMNS.map((c) => {
        const v = p[c];
        if (v === null) return '';
        if (typeof v === 'number')
          return Number.isInteger(v) ? String(v) : v.toFixed(4).replace(/\.?0+$/, '');
        return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
      }).join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

function cell(v: number | null, digits = 0, suffix = ''): string {
  if (v === null || !Number.isFinite(v)) return '-';
  return `${v.toFixed(digits)}${suffix}`;
}

function pct(v: number | null): string {
  return v === null ? '-' : `${(v * 100).toFixed(1)}%`;
}

/**
 * The summaries as an aligned text table, one column per report (mode), for a terminal.
 */
export function formatSummaryTable(reports: readonly SimReport[] | SimReport): string {
  const list: readonly SimReport[] = Array.isArray(reports) ? reports : [reports as SimReport];
  const rows: [string, (s: SimSummary) => string][] = [
    ['capacity (req/s)', (s) => cell(s.capacityPerSec, 1)],
    ['offered (req/s)', (s) => cell(s.offeredPerSec, 1)],
    ['retries', (s) => String(s.retries)],
    ['goodput (req/s)', (s) => cell(s.goodputPerSec, 1)],
    ['goodput / capacity', (s) => pct(s.goodputShareOfCapacity)],
    ['goodput / demand', (s) => pct(s.goodputShareOfDemand)],
    ['late (work for nobody)', (s) => String(s.late)],
    ['latency p50 (ms)', (s) => cell(s.latencyMs.p50, 1)],
    ['latency p99 (ms)', (s) => cell(s.latencyMs.p99, 1)],
    ['shed', (s) => pct(s.shedShare)],
    ['  shed critical', (s) => pct(s.shedShareByPriority.critical)],
    ['  shed normal', (s) => pct(s.shedShareByPriority.normal)],
    ['  shed sheddable', (s) => pct(s.shedShareByPriority.sheddable)],
    ['limited', (s) => pct(s.limitedShare)],
    ['pool full', (s) => String(s.failed)],
    ['factor turns / min', (s) => cell(s.factorDirectionChangesPerMin, 2)],
    ['min factor', (s) => cell(s.minFactor, 3)],
    ['Jain fairness (fair share)', (s) => cell(s.jainIndex, 3)],
    ['Jain fairness (demand)', (s) => cell(s.jainIndexByDemand ?? null, 3)],
  ];
  const maxEpisodes = Math.max(0, ...list.map((r) => r.summary.episodes.length));
  for (let i = 0; i < maxEpisodes; i++) {
    const ep = (s: SimSummary) => s.episodes[i];
    const tag = `episode ${i + 1}`;
    rows.push(
      [`${tag} (s)`, (s) => (ep(s) ? `${ep(s)!.startSec}-${ep(s)!.endSec}` : '-')],
      [`  goodput / capacity`, (s) => pct(ep(s)?.goodputShare ?? null)],
      [`  p99 (ms)`, (s) => cell(ep(s)?.p99Ms ?? null, 1)],
      [`  engage (ms)`, (s) => cell(ep(s)?.engageMs ?? null)],
      [`  recover (ms)`, (s) => cell(ep(s)?.recoverMs ?? null)],
      [`  p99 over the episode (ms)`, (s) => cell(ep(s)?.p99AllMs ?? null, 1)],
      [`  shedding on/off switches`, (s) => cell(ep(s)?.switches ?? null)],
      [`  switches at 100 ms`, (s) => cell(ep(s)?.switches100Ms ?? null)],
      [`  last refusal after end (ms)`, (s) => cell(ep(s)?.lastRefusalAfterEndMs ?? null)],
      [`  factor on/off switches`, (s) => cell(ep(s)?.factorSwitches ?? null)],
    );
  }
  const header = ['', ...list.map((r) => r.summary.label ?? r.summary.mode)];
  const table = [header, ...rows.map(([label, f]) => [label, ...list.map((r) => f(r.summary))])];
  const widths = header.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  const title = `${list[0]?.summary.scenario ?? ''} (seed ${list[0]?.summary.seed ?? ''}, ${list[0]?.summary.durationSec ?? ''} s)`;
  const lines = table.map((row) =>
    row.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  '),
  );
  return [title, ...lines].join('\n');
}

/**
 * Writes `<dir>/<scenario>-<mode>.json` (summary, series, factor changes), `.csv` (series) and
 * `.svg` (the chart) for each report, plus `<scenario>-compare.svg` when given several. Returns the paths.
 */
export async function writeReport(reports: SimReport | readonly SimReport[], dir: string): Promise<string[]> {
  const list: readonly SimReport[] = Array.isArray(reports) ? reports : [reports as SimReport];
  await mkdir(dir, { recursive: true });
  const { renderChart } = await import('./chart.js');
  const paths: string[] = [];
  for (const r of list) {
    const base = join(dir, `${slug(r.summary.scenario)}-${r.summary.mode}`);
    await writeFile(`${base}.json`, `${JSON.stringify(r, null, 2)}\n`);
    await writeFile(`${base}.csv`, seriesToCsv(r.series));
    await writeFile(`${base}.svg`, await renderChart(r));
    paths.push(`${base}.json`, `${base}.csv`, `${base}.svg`);
  }
  if (list.length > 1) {
    const p = join(dir, `${slug(list[0]!.summary.scenario)}-compare.svg`);
    await writeFile(p, await renderChart(list));
    paths.push(p);
  }
  return paths;
}

function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '-');
}
