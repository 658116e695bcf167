/**
 * Overload episodes of a run: the seconds where first-attempt demand exceeds capacity, and what each
 * episode served, how fast the factor engaged and recovered, and how often shedding switched on and
 * off (per second, and per 100 ms slice as the live bench counts).
 */
import { type FactorPoint, factorAt, onOffSwitches, runs } from './metrics.js';
import type { Episode, SeriesPoint } from './report.js';
import { type Scenario, sourceRateAt } from './scenario.js';

/** The width of the slices in which refusals are counted for on/off switches, in ms (as live). */
export const REFUSAL_SLICE_MS = 100;

/** Seconds where the traffic model's first-attempt demand (sampled mid-second) exceeds capacity. */
export function overloadedSeconds(scenario: Scenario): boolean[] {
  const n = Math.ceil(scenario.durationSec);
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) {
    let demand = 0;
    for (const t of scenario.traffic) demand += sourceRateAt(t, i + 0.5);
    out.push(demand > scenario.capacityPerSec);
  }
  return out;
}

/** What one overload episode (span `k` of `spans`) sums to, and where its settling window ends. */
export function episodeTotals(
  series: readonly SeriesPoint[],
  spans: readonly (readonly [number, number])[],
  k: number,
  settleSec: number,
): {
  len: number;
  goodput: number;
  offered: number;
  /** First attempts only (no retries). */
  demand: number;
  /** The worst second's p99: a bound over the episode, at 1 s resolution. */
  worstP99Ms: number | null;
  /** The episode's window for switches: `settleSec` past its end, or up to the next episode. */
  windowEnd: number;
} {
  const [start, end] = spans[k]!;
  let goodput = 0;
  let offered = 0;
  let demand = 0;
  let worstP99Ms: number | null = null;
  for (let i = start; i < end && i < series.length; i++) {
    const p = series[i]!;
    goodput += p.goodput;
    offered += p.offered;
    demand += p.offeredFirst;
    if (p.p99Ms !== null && (worstP99Ms === null || p.p99Ms > worstP99Ms)) worstP99Ms = p.p99Ms;
  }
  const nextStart = spans[k + 1]?.[0] ?? Infinity;
  const windowEnd = Math.min(end + settleSec, nextStart, series.length);
  return { len: end - start, goodput, offered, demand, worstP99Ms, windowEnd };
}

/** What the recorder keeps beyond the 1 s series, for the episodes' finer figures. */
export interface EpisodeSources {
  /** Refusals per REFUSAL_SLICE_MS slice from the start. */
  readonly refusedSlices: ArrayLike<number>;
  /** p99 of the latencies of requests answered in seconds [from, to), in ms (null: none). */
  readonly p99Of: (fromSec: number, toSec: number) => number | null;
  /** The q quantile of the 2xx (or, `refused`, of the refusals) answered in seconds [from, to). */
  readonly quantileOf: (fromSec: number, toSec: number, q: number, refused: boolean) => number | null;
}

export function findEpisodes(
  scenario: Scenario,
  series: readonly SeriesPoint[],
  points: readonly FactorPoint[],
  hasFactor: boolean,
  sources: EpisodeSources,
): Episode[] {
  const spans = runs(overloadedSeconds(scenario));
  const cap = scenario.capacityPerSec;
  const { settleSec, recoveryWaitMs } = scenario.report;
  return spans.map(([start, end], k) => {
    const { len, goodput, offered, demand, worstP99Ms, windowEnd } = episodeTotals(
      series,
      spans,
      k,
      settleSec,
    );
    let engageMs: number | null = null;
    if (hasFactor) {
      if (factorAt(points, start * 1000) < 1) engageMs = 0;
      else {
        const first = points.find((p) => p.atMs > start * 1000 && p.factor < 1);
        if (first !== undefined && first.atMs <= windowEnd * 1000) engageMs = first.atMs - start * 1000;
      }
    }
    let recoverMs: number | null = null;
    for (let i = end; i < series.length; i++) {
      const p = series[i]!;
      if ((p.factor === null || p.factor >= 1) && p.maxWaitMs <= recoveryWaitMs) {
        recoverMs = (i + 1 - end) * 1000;
        break;
      }
    }
    return {
      startSec: start,
      endSec: end,
      demandPerSec: demand / len,
      offeredPerSec: offered / len,
      goodputPerSec: goodput / len,
      goodputShare: goodput / len / cap,
      p99Ms: worstP99Ms,
      engageMs,
      recoverMs,
      switches: sheddingSwitches(series, start, windowEnd),
      switches100Ms: sliceSwitches(sources.refusedSlices, start, windowEnd),
      lastRefusalAfterEndMs: lastRefusalAfter(sources.refusedSlices, end, windowEnd),
      p99AllMs: sources.p99Of(start, end),
      p50Ms: sources.quantileOf(start, end, 0.5, false),
      refusedP50Ms: sources.quantileOf(start, end, 0.5, true),
      factorSwitches: hasFactor ? onOffSwitches(points, start * 1000, windowEnd * 1000) : null,
    };
  });
}

/**
 * Shedding on/off switches in seconds [from, to): a second sheds when it refused anything (shed or
 * limited); each change from the second before counts once.
 */
function sheddingSwitches(series: readonly SeriesPoint[], from: number, to: number): number {
  const on = (i: number) => i >= 0 && i < series.length && series[i]!.shed + series[i]!.limited > 0;
  let n = 0;
  for (let i = from; i < to; i++) if (on(i) !== on(i - 1)) n++;
  return n;
}

/**
 * Shedding on/off switches in the 100 ms slices of seconds [from, to), as the live bench counts
 * them: a slice is on when it refused anything.
 */
export function sliceSwitches(slices: ArrayLike<number>, fromSec: number, toSec: number): number {
  const per = 1000 / REFUSAL_SLICE_MS;
  const on = (i: number) => i >= 0 && i < slices.length && slices[i]! > 0;
  let n = 0;
  for (let i = fromSec * per; i < toSec * per; i++) if (on(i) !== on(i - 1)) n++;
  return n;
}

/** The end of the last slice with a refusal in seconds [endSec, toSec), in ms after endSec (null: none). */
function lastRefusalAfter(slices: ArrayLike<number>, endSec: number, toSec: number): number | null {
  const per = 1000 / REFUSAL_SLICE_MS;
  for (let i = Math.min(slices.length, toSec * per) - 1; i >= endSec * per; i--) {
    if (slices[i]! > 0) return (i + 1) * REFUSAL_SLICE_MS - endSec * 1000;
  }
  return null;
}
