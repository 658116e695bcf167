/**
 * What a simulated run records, and the report built from it: the totals, a point per second (the
 * series), every answered request's latency (and every refusal's), refusals per 100 ms slice, the
 * counts per priority and per tenant, and the factor's changes. The run tells it what happened
 * (`sent`, `admitted`, `refused`, `completed`...); it keeps no other state of the run.
 */
import { directionChanges, type FactorPoint, jainIndex, maxMinFairShares, quantileSorted } from './metrics.js';
import { findEpisodes, overloadedSeconds, REFUSAL_SLICE_MS, sliceSwitches } from './episodes.js';
import type { SeriesPoint, SimReport, SimSummary, TenantResult } from './report.js';
import { type Mode, PRIORITY_CLASSES, type PriorityClass, type Scenario } from './scenario.js';

/** A growable Float64Array: latencies of a long run without boxing. */
export class Samples {
  #buf = new Float64Array(1024);
  #n = 0;
  push(x: number): void {
    if (this.#n === this.#buf.length) {
      const next = new Float64Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.#n++] = x;
  }
  get length(): number {
    return this.#n;
  }
  /** A sorted copy of samples [from, to). */
  sortedSlice(from: number, to: number): Float64Array {
    return this.#buf.slice(from, to).sort();
  }
  /** A sorted copy (the samples stay in time order for sortedSlice). */
  sorted(): Float64Array {
    return this.#buf.slice(0, this.#n).sort();
  }
}

/** One second's counts, until the second ends and becomes a series point. */
interface Bucket {
  offered: number;
  offeredFirst: number;
  admitted: number;
  goodput: number;
  late: number;
  shed: number;
  limited: number;
  failed: number;
  latencies: number[];
  maxWaitMs: number;
}

function newBucket(): Bucket {
  return {
    offered: 0,
    offeredFirst: 0,
    admitted: 0,
    goodput: 0,
    late: 0,
    shed: 0,
    limited: 0,
    failed: 0,
    latencies: [],
    maxWaitMs: 0,
  };
}

interface TenantStats {
  demand: number;
  goodput: number;
  overloadSent: number;
  overloadGoodput: number;
}

/** What the run's protection and loop show at the end of a second. */
export interface SecondEnd {
  readonly factor: number | null;
  readonly pressure: number;
  readonly smoothedPressure: number;
  /** The signal with the highest pressure, when it is above 0. */
  readonly dominant: string | null;
  /** The oldest item still waiting for the loop, in ms. */
  readonly oldestWaitMs: number;
  readonly inFlight: number;
}

/** The q quantile of `samples` recorded in seconds [from, to), given each second's end index. */
function quantileOf(samples: Samples, ends: readonly number[], from: number, to: number, q: number) {
  const a = from > 0 ? (ends[from - 1] ?? 0) : 0;
  const b = ends[to - 1] ?? samples.length;
  return b > a ? quantileSorted(samples.sortedSlice(a, b), q) : null;
}

export class Recorder {
  readonly series: SeriesPoint[] = [];
  readonly factorPoints: FactorPoint[] = [];
  readonly #scenario: Scenario;
  readonly #mode: Mode;
  readonly #buckets: Bucket[];
  readonly #latencies = new Samples();
  readonly #refusedLatencies = new Samples();
  // How many latencies were recorded by the end of each second (completions come in time order).
  readonly #latenciesBySecondEnd: number[] = [];
  readonly #refusedBySecondEnd: number[] = [];
  // Refusals (shed or limited) per 100 ms slice, for on/off switches at the live bench's resolution.
  readonly #refusedSlices: Uint32Array;
  readonly #byPriority: Record<PriorityClass, { arrivals: number; shed: number }>;
  readonly #tenants = new Map<string, TenantStats>();
  readonly #overloaded: boolean[];
  #minFactor: number | null;
  #offered = 0;
  #firstAttempts = 0;
  #retries = 0;
  #admitted = 0;
  #goodput = 0;
  #late = 0;
  #shed = 0;
  #limited = 0;
  #failed = 0;
  #canceled = 0;

  constructor(scenario: Scenario, mode: Mode) {
    this.#scenario = scenario;
    this.#mode = mode;
    this.#buckets = Array.from({ length: Math.ceil(scenario.durationSec) }, newBucket);
    this.#refusedSlices = new Uint32Array(Math.ceil((scenario.durationSec * 1000) / REFUSAL_SLICE_MS) + 1);
    this.#byPriority = Object.fromEntries(PRIORITY_CLASSES.map((p) => [p, { arrivals: 0, shed: 0 }])) as Record<
      PriorityClass,
      { arrivals: number; shed: number }
    >;
    this.#overloaded = overloadedSeconds(scenario);
    this.#minFactor = mode === 'spillway' ? 1 : null;
  }

  #bucketAt(t: number): Bucket {
    const n = this.#buckets.length;
    return this.#buckets[Math.min(n - 1, Math.floor(t / 1000))]!;
  }

  #inOverload(t: number): boolean {
    return this.#overloaded[Math.floor(t / 1000)] === true;
  }

  /** A tenant that sends traffic (tenants are reported in the order they are added). */
  addTenant(tenant: string): void {
    if (!this.#tenants.has(tenant)) {
      this.#tenants.set(tenant, { demand: 0, goodput: 0, overloadSent: 0, overloadGoodput: 0 });
    }
  }

  factorChanged(atMs: number, factor: number): void {
    if (this.#mode !== 'spillway') return;
    this.factorPoints.push({ atMs, factor });
    if (this.#minFactor !== null && factor < this.#minFactor) this.#minFactor = factor;
  }

  /** The loop started an item that waited `waitMs` for it. */
  loopWaited(now: number, waitMs: number): void {
    const b = this.#bucketAt(now);
    if (waitMs > b.maxWaitMs) b.maxWaitMs = waitMs;
  }

  /** A request was sent: `attempt` 1 is a first attempt, later ones are retries. */
  sent(tenant: string, priority: PriorityClass, attempt: number, now: number): void {
    this.#offered++;
    const ts = this.#tenants.get(tenant)!;
    if (this.#inOverload(now)) ts.overloadSent++;
    const b = this.#bucketAt(now);
    b.offered++;
    this.#byPriority[priority].arrivals++;
    if (attempt === 1) {
      this.#firstAttempts++;
      b.offeredFirst++;
      ts.demand++;
    } else {
      this.#retries++;
    }
  }

  /** The loop acted on an admission. */
  admitted(now: number): void {
    this.#admitted++;
    this.#bucketAt(now).admitted++;
  }

  /** The loop acted on a refusal: `shed` (503) or quota (429). */
  refused(now: number, shed: boolean, priority: PriorityClass): void {
    const slices = this.#refusedSlices;
    slices[Math.min(slices.length - 1, Math.floor(now / REFUSAL_SLICE_MS))]!++;
    const b = this.#bucketAt(now);
    if (shed) {
      this.#shed++;
      b.shed++;
      this.#byPriority[priority].shed++;
    } else {
      this.#limited++;
      b.limited++;
    }
  }

  /** An admitted request found no downstream pool slot. */
  poolFailed(now: number): void {
    this.#failed++;
    this.#bucketAt(now).failed++;
  }

  /** A request whose client left while it waited in the pipeline. */
  canceled(): void {
    this.#canceled++;
  }

  /** A refusal reached its client `latencyMs` after it was sent. */
  refusalAnswered(latencyMs: number): void {
    this.#refusedLatencies.push(latencyMs);
  }

  /** An admitted request was answered; `onTime` when its client still waited for it. */
  completed(tenant: string, sentAt: number, now: number, onTime: boolean): void {
    const latency = now - sentAt;
    this.#latencies.push(latency);
    const b = this.#bucketAt(now);
    b.latencies.push(latency);
    if (onTime) {
      this.#goodput++;
      b.goodput++;
      const ts = this.#tenants.get(tenant)!;
      ts.goodput++;
      if (this.#inOverload(sentAt)) ts.overloadGoodput++;
    } else {
      this.#late++;
      b.late++;
    }
  }

  /** Second `i` ended: its counts become a series point. */
  secondEnded(i: number, at: SecondEnd): void {
    const b = this.#buckets[i]!;
    const lat = b.latencies.sort((x, y) => x - y);
    this.series.push({
      t: i,
      offered: b.offered,
      offeredFirst: b.offeredFirst,
      admitted: b.admitted,
      goodput: b.goodput,
      late: b.late,
      shed: b.shed,
      limited: b.limited,
      failed: b.failed,
      p50Ms: lat.length ? quantileSorted(lat, 0.5) : null,
      p99Ms: lat.length ? quantileSorted(lat, 0.99) : null,
      factor: at.factor,
      pressure: at.pressure,
      smoothedPressure: at.smoothedPressure,
      dominant: at.dominant,
      maxWaitMs: Math.max(b.maxWaitMs, at.oldestWaitMs),
      inFlight: at.inFlight,
    });
    b.latencies = [];
    this.#latenciesBySecondEnd[i] = this.#latencies.length;
    this.#refusedBySecondEnd[i] = this.#refusedLatencies.length;
  }

  /** The run's report. `unfinished`: requests still in the server at the end. */
  report(seed: number, label: string | undefined, unfinished: number, wallMs: number): SimReport {
    const scenario = this.#scenario;
    const mode = this.#mode;
    const sorted = this.#latencies.sorted();
    const refusedSorted = this.#refusedLatencies.sorted();
    const cap = scenario.capacityPerSec;
    const dur = scenario.durationSec;
    const offered = this.#offered;
    const tenants = this.#tenantResults();
    const byPriority = this.#byPriority;
    const summary: SimSummary = {
      scenario: scenario.name,
      mode,
      ...(label === undefined ? {} : { label }),
      seed,
      durationSec: dur,
      capacityPerSec: cap,
      offered,
      firstAttempts: this.#firstAttempts,
      retries: this.#retries,
      offeredPerSec: offered / dur,
      admitted: this.#admitted,
      goodput: this.#goodput,
      goodputPerSec: this.#goodput / dur,
      goodputShareOfCapacity: this.#goodput / dur / cap,
      goodputShareOfDemand: this.#firstAttempts > 0 ? this.#goodput / this.#firstAttempts : 0,
      late: this.#late,
      failed: this.#failed,
      unfinished,
      latencyMs: {
        mean: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null,
        p50: sorted.length ? quantileSorted(sorted, 0.5) : null,
        p99: sorted.length ? quantileSorted(sorted, 0.99) : null,
        max: sorted.length ? sorted[sorted.length - 1]! : null,
      },
      refusedLatencyMs: {
        p50: refusedSorted.length ? quantileSorted(refusedSorted, 0.5) : null,
        p99: refusedSorted.length ? quantileSorted(refusedSorted, 0.99) : null,
      },
      canceled: this.#canceled,
      shed: this.#shed,
      shedShare: offered > 0 ? this.#shed / offered : 0,
      switches100Ms: sliceSwitches(this.#refusedSlices, 0, Math.ceil(dur)),
      shedShareByPriority: Object.fromEntries(
        PRIORITY_CLASSES.map((p) => [
          p,
          byPriority[p].arrivals > 0 ? byPriority[p].shed / byPriority[p].arrivals : null,
        ]),
      ) as Record<PriorityClass, number | null>,
      limited: this.#limited,
      limitedShare: offered > 0 ? this.#limited / offered : 0,
      factorDirectionChangesPerMin:
        mode === 'spillway' ? directionChanges(this.factorPoints) / (dur / 60) : null,
      minFactor: this.#minFactor,
      episodes: findEpisodes(scenario, this.series, this.factorPoints, mode === 'spillway', {
        refusedSlices: this.#refusedSlices,
        p99Of: (from, to) => quantileOf(this.#latencies, this.#latenciesBySecondEnd, from, to, 0.99),
        quantileOf: (from, to, q, refused) =>
          refused
            ? quantileOf(this.#refusedLatencies, this.#refusedBySecondEnd, from, to, q)
            : quantileOf(this.#latencies, this.#latenciesBySecondEnd, from, to, q),
      }),
      jainIndex:
        tenants.length < 2
          ? null
          : jainIndex(tenants.map((t) => (t.fairShare > 0 ? t.goodput / t.fairShare : 0))),
      jainIndexByDemand:
        tenants.length < 2 ? null : jainIndex(tenants.map((t) => (t.demand > 0 ? t.goodput / t.demand : 0))),
      tenants,
      wallMs,
    };
    return { summary, series: this.series, factorChanges: this.factorPoints };
  }

  /** Each tenant's demand and goodput, and its max-min fair share of what the run could serve. */
  #tenantResults(): TenantResult[] {
    const { capacityPerSec, durationSec } = this.#scenario;
    const stats = [...this.#tenants.entries()];
    const fair = maxMinFairShares(
      stats.map(([, t]) => t.demand),
      capacityPerSec * durationSec,
    );
    return stats.map(([tenant, t], i) => ({
      tenant,
      demand: t.demand,
      goodput: t.goodput,
      fairShare: fair[i]!,
      overloadSent: t.overloadSent,
      overloadGoodput: t.overloadGoodput,
    }));
  }
}
