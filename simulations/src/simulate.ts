/**
 * The discrete-event simulation: open-loop traffic arrives at a model server protected by one of
 * the modes, on a ManualClock. Nothing ticks per millisecond: every arrival, loop item, pool slot
 * and 1 s report bucket is one timer on the clock's heap, so an hour of traffic at hundreds of
 * requests per second runs in seconds.
 *
 * A request's life: it arrives (the client's clock starts: latency is measured from the intended
 * send time) and queues for the loop. When the loop picks it up, the protection decides. A refusal
 * costs `refusalCostMs` of loop time, then the client may retry. An admitted request costs one
 * service time, then (for a share of requests) waits for a downstream pool slot and comes back
 * through the loop for its callback. It counts as goodput when answered within the client's
 * timeout; answered later, it was work for nobody.
 */
import { type Verdict, retryAfterSeconds } from 'spillway/pipeline';
import { ManualClock, type TimerHandle, type TimerOptions } from 'spillway';
import type { Priority } from 'spillway';
import {
  directionChanges,
  type FactorPoint,
  factorAt,
  jainIndex,
  maxMinFairShares,
  onOffSwitches,
  quantileSorted,
  runs,
} from './metrics.js';
import {
  createProtection,
  type Protection,
  type ProtectionOverrides,
  type SimRequest,
} from './protection.js';
import { deriveRandom, type Random, sampler } from './random.js';
import type { Episode, SeriesPoint, SimReport, SimSummary, TenantResult } from './report.js';
import {
  type Mode,
  PRIORITY_CLASSES,
  type PriorityClass,
  peakRate,
  rateAt,
  type Scenario,
  sourceRateAt,
  type TrafficSpec,
} from './scenario.js';
import { EventLoop, loopClock, modelSignal, Pool, type ServerState, type WorkItem } from './server.js';

export interface SimulateOptions {
  /** @default 'spillway' */
  mode?: Mode;
  /** @default scenario.seed */
  seed?: number;
  /** Governor options on top of the scenario's (the tuner's candidates). @default none */
  governor?: Readonly<Record<string, number | string>>;
  /** Shedder options on top of the scenario's. @default none */
  shedder?: Readonly<Record<string, number>>;
  /** A name for this run in tables and charts. @default the mode */
  label?: string;
  /** TurnBudget options on top of the guard's (e.g. `refuseEarly: false`). @default none */
  turnBudget?: ProtectionOverrides['turnBudget'];
}

/** The HTTP adapter's default cap on Retry-After, in seconds. */
const RETRY_AFTER_MAX_SEC = 60;

interface Source {
  readonly spec: TrafficSpec;
  readonly tenant: string;
  readonly arrivals: Random;
  readonly draws: Random;
  readonly peak: number;
  budget: number;
  readonly budgetCap: number;
}

interface Attempt {
  readonly source: Source;
  /** The request as the pipeline sees it (the same object from run to release or refund). */
  readonly req: SimRequest;
  /** Aborts a wait in the pipeline when the client gives up (set when the pipeline waits). */
  readonly abort: AbortController | undefined;
  readonly priority: PriorityClass;
  readonly sentAt: number;
  readonly deadline: number;
  readonly attempt: number;
  answered: boolean;
  gaveUp: boolean;
}

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

/** A growable Float64Array: latencies of a long run without boxing. */
class Samples {
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

/** The width of the slices in which refusals are counted for on/off switches, in ms (as live). */
const REFUSAL_SLICE_MS = 100;

/**
 * A ManualClock that also knows when its next timer is due, so that `simulateAsync` can stop at
 * each one and let promises settle (a request resumed by the concurrency stage) before time moves.
 */
class SimClock extends ManualClock {
  // A binary min-heap of due times; a cancelled timer leaves a stale entry (a harmless extra stop).
  readonly #due: number[] = [];

  override setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerHandle {
    if (ms !== Infinity) {
      const h = this.#due;
      h.push(this.now() + (ms > 0 ? ms : 0));
      for (let i = h.length - 1; i > 0; ) {
        const p = (i - 1) >> 1;
        if (h[p]! <= h[i]!) break;
        [h[p], h[i]] = [h[i]!, h[p]!];
        i = p;
      }
    }
    return super.setTimeout(fn, ms, options);
  }

  /** Removes and returns the earliest due time, or Infinity. */
  popDue(): number {
    const h = this.#due;
    if (h.length === 0) return Infinity;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]! < h[m]!) m = l;
        if (r < h.length && h[r]! < h[m]!) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Lets every pending promise continuation run (a macrotask comes after all microtasks). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs `scenario` under one mode. Synchronous and deterministic: same scenario and seed, same report
 * (but `wallMs`). A scenario whose pipeline may make requests wait (a `spillway.concurrency` stage)
 * needs promises to settle as time moves: run it with `simulateAsync`.
 */
export function simulate(scenario: Scenario, options: SimulateOptions = {}): SimReport {
  const run = prepare(scenario, options);
  if (run.waits) {
    run.abandon();
    throw new TypeError(
      `scenario "${scenario.name}": its pipeline may make requests wait (a concurrency stage); use simulateAsync`,
    );
  }
  run.clock.set(run.durationMs);
  return run.finish();
}

/**
 * `simulate` for any scenario: when the pipeline may make requests wait, time stops at each due
 * timer and pending promises settle before it moves on, so a request resumed by the concurrency
 * stage continues at the virtual time it was resumed. Same report as `simulate` otherwise.
 */
export async function simulateAsync(scenario: Scenario, options: SimulateOptions = {}): Promise<SimReport> {
  const run = prepare(scenario, options);
  const { clock } = run;
  if (!run.waits) {
    clock.set(run.durationMs);
    return run.finish();
  }
  for (;;) {
    const due = clock.popDue();
    if (due > run.durationMs) break;
    clock.set(Math.max(due, clock.now()));
    if (run.pending() > 0) await settle();
  }
  clock.set(run.durationMs);
  return run.finish();
}

interface PreparedRun {
  readonly clock: SimClock;
  readonly durationMs: number;
  /** True when a request may wait in the pipeline (it answers with a promise). */
  readonly waits: boolean;
  /** Pipeline runs that have not settled yet. */
  pending(): number;
  /** Stops the run and builds its report. */
  finish(): SimReport;
  /** Stops the run without a report. */
  abandon(): void;
}

function prepare(scenario: Scenario, options: SimulateOptions): PreparedRun {
  const wallStart = performance.now();
  const mode = options.mode ?? 'spillway';
  const seed = options.seed ?? scenario.seed;
  const durationMs = scenario.durationSec * 1000;
  const nBuckets = Math.ceil(scenario.durationSec);
  const clock = new SimClock(0);
  const srv = scenario.server;

  // --- the model server -------------------------------------------------------------------------
  const loop = new EventLoop(clock);
  const service = sampler(srv.service, deriveRandom(seed, 'service'));
  const routing = deriveRandom(seed, 'routing');
  const headerRandom = deriveRandom(seed, 'retry-after');
  const ds = srv.downstream;
  const pool = ds ? new Pool(clock, ds, sampler(ds.service, deriveRandom(seed, 'pool'))) : undefined;
  const state = { loop, pool, inFlight: 0 } satisfies ServerState;
  const signals = scenario.signals.map((s) => modelSignal(s, srv, state, clock));
  const govClock = loopClock(clock, loop, srv.tickCostMs);
  const protection: Protection = createProtection(
    mode,
    scenario,
    { clock, govClock, defer: (fn) => loop.defer(fn) },
    signals,
    { governor: options.governor, shedder: options.shedder, turnBudget: options.turnBudget },
  );
  const pipeline = protection.pipeline;
  const waits = pipeline.waits;
  let pending = 0;
  const factorPoints: FactorPoint[] = [];
  let minFactor: number | null = mode === 'spillway' ? 1 : null;
  const unsubscribe = protection.governor.subscribe((f) => {
    if (mode !== 'spillway') return;
    factorPoints.push({ atMs: clock.now(), factor: f });
    if (minFactor !== null && f < minFactor) minFactor = f;
  });

  // --- the recorder -----------------------------------------------------------------------------
  const buckets: Bucket[] = Array.from({ length: nBuckets }, newBucket);
  const series: SeriesPoint[] = [];
  const bucketOf = (t: number) => buckets[Math.min(nBuckets - 1, Math.floor(t / 1000))]!;
  const latencies = new Samples();
  // How many latencies were recorded by the end of each second (completions come in time order).
  const latenciesBySecondEnd: number[] = [];
  const refusedBySecondEnd: number[] = [];
  // Refusals (shed or limited) per 100 ms slice, for on/off switches at the live bench's resolution.
  const refusedSlices = new Uint32Array(Math.ceil(durationMs / REFUSAL_SLICE_MS) + 1);
  const refusedLatencies = new Samples();
  const byPriority = Object.fromEntries(PRIORITY_CLASSES.map((p) => [p, { arrivals: 0, shed: 0 }])) as Record<
    PriorityClass,
    { arrivals: number; shed: number }
  >;
  const tenantStats = new Map<
    string,
    { demand: number; goodput: number; overloadSent: number; overloadGoodput: number }
  >();
  const overloaded = overloadedSeconds(scenario);
  const inOverload = (t: number) => overloaded[Math.floor(t / 1000)] === true;
  let offered = 0;
  let firstAttempts = 0;
  let retries = 0;
  let admitted = 0;
  let goodput = 0;
  let late = 0;
  let shed = 0;
  let limited = 0;
  let failed = 0;
  let canceled = 0;

  loop.onWait((w) => {
    const b = bucketOf(clock.now());
    if (w > b.maxWaitMs) b.maxWaitMs = w;
  });

  for (let i = 0; i < nBuckets; i++) {
    const endMs = Math.min(durationMs, (i + 1) * 1000);
    clock.setTimeout(() => {
      const b = buckets[i]!;
      const snap = protection.governor.snapshot();
      const lat = b.latencies.sort((x, y) => x - y);
      const f = protection.factor();
      series.push({
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
        factor: f,
        pressure: snap.pressure,
        smoothedPressure: snap.smoothedPressure,
        dominant: snap.dominant && snap.dominant.pressure > 0 ? snap.dominant.name : null,
        maxWaitMs: Math.max(b.maxWaitMs, loop.oldestWaitMs(clock.now())),
        inFlight: state.inFlight,
      });
      b.latencies = [];
      latenciesBySecondEnd[i] = latencies.length;
      refusedBySecondEnd[i] = refusedLatencies.length;
    }, endMs);
  }

  // --- the clients ------------------------------------------------------------------------------
  const sources: Source[] = [];
  for (const spec of scenario.traffic) {
    for (let k = 0; k < spec.tenants; k++) {
      const tenant = spec.tenants > 1 ? `${spec.tenant}-${k + 1}` : spec.tenant;
      const label = `${spec.name}#${k}`;
      const peak = peakRate(spec.pattern);
      const ratio = spec.retry?.budgetRatio ?? 0;
      sources.push({
        spec,
        tenant,
        arrivals: deriveRandom(seed, `arrivals:${label}`),
        draws: deriveRandom(seed, `draws:${label}`),
        peak,
        budget: 10,
        budgetCap: 10 + ratio * peak * 10,
      });
      if (!tenantStats.has(tenant)) {
        tenantStats.set(tenant, { demand: 0, goodput: 0, overloadSent: 0, overloadGoodput: 0 });
      }
    }
  }

  const pickPriority = (s: Source): PriorityClass => {
    const p = s.spec.priorities;
    const u = s.draws();
    if (u < p.critical) return 'critical';
    if (u < p.critical + p.normal) return 'normal';
    return 'sheddable';
  };

  /** The next arrival time after `tMs` (ms), or Infinity: thinning for Poisson, spacing for uniform. */
  const nextArrival = (s: Source, tMs: number): number => {
    const { spec } = s;
    const endMs = Math.min(spec.endSec * 1000, durationMs);
    let t = Math.max(tMs, spec.startSec * 1000);
    if (spec.arrivals === 'poisson') {
      for (;;) {
        t += (-Math.log(1 - s.arrivals()) / s.peak) * 1000;
        if (t >= endMs) return Infinity;
        if (s.arrivals() * s.peak < rateAt(spec.pattern, t / 1000)) return t;
      }
    }
    for (;;) {
      const r = rateAt(spec.pattern, t / 1000);
      if (r > 0) {
        t += 1000 / r;
        return t >= endMs ? Infinity : t;
      }
      t += 100;
      if (t >= endMs) return Infinity;
    }
  };

  const send = (source: Source, priority: PriorityClass, attempt: number) => {
    const now = clock.now();
    const abort = waits ? new AbortController() : undefined;
    const req: SimRequest = { key: source.tenant, priority: priority as Priority, cost: source.spec.cost };
    if (abort !== undefined) req.signal = abort.signal;
    const a: Attempt = {
      source,
      req,
      abort,
      priority,
      sentAt: now,
      deadline: now + source.spec.timeoutMs,
      attempt,
      answered: false,
      gaveUp: false,
    };
    offered++;
    if (inOverload(now)) tenantStats.get(source.tenant)!.overloadSent++;
    const b = bucketOf(now);
    b.offered++;
    byPriority[priority].arrivals++;
    if (attempt === 1) {
      const ratio = source.spec.retry?.budgetRatio;
      if (ratio != null) source.budget = Math.min(source.budgetCap, source.budget + ratio);
      firstAttempts++;
      b.offeredFirst++;
      tenantStats.get(source.tenant)!.demand++;
    } else {
      retries++;
    }
    const retry = source.spec.retry;
    if (retry?.onTimeout || abort !== undefined) {
      // The client gives up: it closes the connection, which aborts a wait in the pipeline (as the
      // guard does on 'close'), and retries if it does so on timeouts.
      clock.setTimeout(() => {
        if (a.answered) return;
        a.gaveUp = true;
        abort?.abort();
        if (retry?.onTimeout) maybeRetry(a, 0);
      }, source.spec.timeoutMs);
    }
    state.inFlight++;
    loop.enqueue(requestItem(a));
  };

  const scheduleArrival = (s: Source, fromMs: number) => {
    const t = nextArrival(s, fromMs);
    if (t === Infinity) return;
    clock.setTimeout(() => {
      send(s, pickPriority(s), 1);
      scheduleArrival(s, t);
    }, t - clock.now());
  };

  const maybeRetry = (a: Attempt, retryAfterMs: number) => {
    const r = a.source.spec.retry;
    if (r === undefined || a.attempt >= r.maxAttempts) return;
    const s = a.source;
    if (r.budgetRatio !== null) {
      if (s.budget < 1) return;
      s.budget -= 1;
    }
    const backoff =
      r.backoffMs * r.backoffMultiplier ** (a.attempt - 1) * (1 + r.jitter * (2 * s.draws() - 1));
    const delay = Math.min(r.maxDelayMs, r.honourRetryAfter ? Math.max(retryAfterMs, backoff) : backoff);
    if (clock.now() + delay >= durationMs) return;
    clock.setTimeout(() => send(s, a.priority, a.attempt + 1), delay);
  };

  // --- the server's handling of one request ------------------------------------------------------
  const finish = (a: Attempt) => {
    state.inFlight--;
    a.answered = true;
  };

  const complete = (a: Attempt) => {
    finish(a);
    const now = clock.now();
    const latency = now - a.sentAt;
    latencies.push(latency);
    const b = bucketOf(now);
    b.latencies.push(latency);
    if (!a.gaveUp && now <= a.deadline) {
      goodput++;
      b.goodput++;
      const ts = tenantStats.get(a.source.tenant)!;
      ts.goodput++;
      if (inOverload(a.sentAt)) ts.overloadGoodput++;
    } else {
      late++;
      b.late++;
    }
  };

  const refused = (a: Attempt, retryAfterMs: number) => {
    finish(a);
    refusedLatencies.push(clock.now() - a.sentAt);
    if (a.gaveUp || clock.now() > a.deadline) return; // nobody is listening any more
    maybeRetry(a, retryAfterMs);
  };

  const callbackCost = ds?.callbackCostMs ?? 0;

  /** Counts a verdict when the loop acts on it; returns the loop time it costs. */
  const decided = (a: Attempt, v: Verdict<SimRequest>): { cost: number; retryAfterMs: number } => {
    const b = bucketOf(clock.now());
    if (v.allowed) {
      admitted++;
      b.admitted++;
      return { cost: service(), retryAfterMs: 0 };
    }
    const d = v.decision;
    refusedSlices[Math.min(refusedSlices.length - 1, Math.floor(clock.now() / REFUSAL_SLICE_MS))]!++;
    // What the HTTP adapter would put on the wire: whole seconds, at least 1, jittered on 503.
    const retryAfterMs =
      1000 *
      retryAfterSeconds(d.retryAfterMs, {
        maxSec: RETRY_AFTER_MAX_SEC,
        jitter: d.reason === 'shed' ? 0.5 : 0,
        random: headerRandom,
      });
    if (d.reason === 'shed') {
      shed++;
      b.shed++;
      byPriority[a.priority].shed++;
    } else {
      limited++;
      b.limited++;
    }
    return { cost: srv.refusalCostMs, retryAfterMs };
  };

  /** After the loop ran the handler (or wrote the refusal). Admitted work is released once answered. */
  const handled = (a: Attempt, v: Verdict<SimRequest>, retryAfterMs: number): void => {
    if (!v.allowed) {
      refused(a, retryAfterMs);
      return;
    }
    if (pool === undefined || ds === undefined || !(routing() < ds.share)) {
      complete(a);
      pipeline.release(a.req);
      return;
    }
    const ok = pool.use(() => {
      loop.enqueue({
        enqueuedAt: clock.now(),
        start: () => callbackCost,
        end: () => {
          complete(a);
          pipeline.release(a.req);
        },
      });
    });
    if (!ok) {
      failed++;
      bucketOf(clock.now()).failed++;
      pipeline.release(a.req);
      refused(a, 0);
    }
  };

  /** The loop item that runs a verdict: the handler, or the refusal. */
  const verdictItem = (a: Attempt, v: Verdict<SimRequest>): WorkItem => {
    let retryAfterMs = 0;
    return {
      enqueuedAt: clock.now(),
      start: () => {
        const d = decided(a, v);
        retryAfterMs = d.retryAfterMs;
        return d.cost;
      },
      end: () => handled(a, v, retryAfterMs),
    };
  };

  /**
   * A verdict after a wait (the concurrency stage queued the request). As in the guard: if the
   * client left meanwhile, an admission is refunded and nothing runs.
   */
  const resumed = (a: Attempt, v: Verdict<SimRequest>): void => {
    pending--;
    protection.record(v);
    if (a.gaveUp) {
      if (v.allowed) pipeline.refund(a.req);
      canceled++;
      finish(a);
      return;
    }
    loop.enqueueNext(verdictItem(a, v));
  };

  /** The wait was aborted: the client left while its request waited. Nothing stays charged. */
  const abandoned = (a: Attempt): void => {
    pending--;
    canceled++;
    finish(a);
  };

  const requestItem = (a: Attempt): WorkItem => {
    let verdict: Verdict<SimRequest> | undefined;
    let retryAfterMs = 0;
    return {
      enqueuedAt: a.sentAt,
      start: (): number => {
        const v = pipeline.run(a.req);
        if (v instanceof Promise) {
          // Queued: deciding so costs the loop what a refusal costs; the verdict comes later.
          pending++;
          v.then(
            (r) => resumed(a, r),
            () => abandoned(a),
          );
          return srv.refusalCostMs;
        }
        verdict = v;
        protection.record(v);
        const d = decided(a, v);
        retryAfterMs = d.retryAfterMs;
        return d.cost;
      },
      end: (): void => {
        if (verdict !== undefined) handled(a, verdict, retryAfterMs);
      },
    };
  };

  // --- run --------------------------------------------------------------------------------------
  for (const s of sources) scheduleArrival(s, 0);
  const stop = () => {
    unsubscribe();
    protection.stop();
  };
  return {
    clock,
    durationMs,
    waits,
    pending: () => pending,
    abandon: stop,
    finish() {
      stop();
      return summarize();
    },
  };

  function summarize(): SimReport {
    // --- summary ----------------------------------------------------------------------------------
    const sorted = latencies.sorted();
    const refusedSorted = refusedLatencies.sorted();
    const cap = scenario.capacityPerSec;
    const dur = scenario.durationSec;
    const tenants: TenantResult[] = [];
    const demands = [...tenantStats.values()].map((t) => t.demand);
    const fair = maxMinFairShares(demands, cap * dur);
    [...tenantStats.entries()].forEach(([tenant, t], i) => {
      tenants.push({
        tenant,
        demand: t.demand,
        goodput: t.goodput,
        fairShare: fair[i]!,
        overloadSent: t.overloadSent,
        overloadGoodput: t.overloadGoodput,
      });
    });
    const jain =
      tenants.length < 2
        ? null
        : jainIndex(tenants.map((t) => (t.fairShare > 0 ? t.goodput / t.fairShare : 0)));

    const summary: SimSummary = {
      scenario: scenario.name,
      mode,
      ...(options.label === undefined ? {} : { label: options.label }),
      seed,
      durationSec: dur,
      capacityPerSec: cap,
      offered,
      firstAttempts,
      retries,
      offeredPerSec: offered / dur,
      admitted,
      goodput,
      goodputPerSec: goodput / dur,
      goodputShareOfCapacity: goodput / dur / cap,
      goodputShareOfDemand: firstAttempts > 0 ? goodput / firstAttempts : 0,
      late,
      failed,
      unfinished: state.inFlight,
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
      canceled,
      shed,
      shedShare: offered > 0 ? shed / offered : 0,
      switches100Ms: sliceSwitches(refusedSlices, 0, Math.ceil(dur)),
      shedShareByPriority: Object.fromEntries(
        PRIORITY_CLASSES.map((p) => [
          p,
          byPriority[p].arrivals > 0 ? byPriority[p].shed / byPriority[p].arrivals : null,
        ]),
      ) as Record<PriorityClass, number | null>,
      limited,
      limitedShare: offered > 0 ? limited / offered : 0,
      factorDirectionChangesPerMin: mode === 'spillway' ? directionChanges(factorPoints) / (dur / 60) : null,
      minFactor,
      episodes: findEpisodes(scenario, series, factorPoints, mode === 'spillway', {
        refusedSlices,
        p99Of: (from, to) => quantileOf(latencies, latenciesBySecondEnd, from, to, 0.99),
        quantileOf: (from, to, q, refused) =>
          refused
            ? quantileOf(refusedLatencies, refusedBySecondEnd, from, to, q)
            : quantileOf(latencies, latenciesBySecondEnd, from, to, q),
      }),
      jainIndex: jain,
      jainIndexByDemand:
        tenants.length < 2 ? null : jainIndex(tenants.map((t) => (t.demand > 0 ? t.goodput / t.demand : 0))),
      tenants,
      wallMs: performance.now() - wallStart,
    };
    return { summary, series, factorChanges: factorPoints };
  }
}

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
interface EpisodeSources {
  /** Refusals per REFUSAL_SLICE_MS slice from the start. */
  readonly refusedSlices: ArrayLike<number>;
  /** p99 of the latencies of requests answered in seconds [from, to), in ms (null: none). */
  readonly p99Of: (fromSec: number, toSec: number) => number | null;
  /** The q quantile of the 2xx (or, `refused`, of the refusals) answered in seconds [from, to). */
  readonly quantileOf: (fromSec: number, toSec: number, q: number, refused: boolean) => number | null;
}

/** The q quantile of `samples` recorded in seconds [from, to), given each second's end index. */
function quantileOf(samples: Samples, ends: readonly number[], from: number, to: number, q: number) {
  const a = from > 0 ? (ends[from - 1] ?? 0) : 0;
  const b = ends[to - 1] ?? samples.length;
  return b > a ? quantileSorted(samples.sortedSlice(a, b), q) : null;
}

function findEpisodes(
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
function sliceSwitches(slices: ArrayLike<number>, fromSec: number, toSec: number): number {
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

/** Runs the scenario under each of its modes (or `modes`) with the same seed. */
export function compare(
  scenario: Scenario,
  options: { seed?: number; modes?: readonly Mode[] } = {},
): SimReport[] {
  const modes = options.modes ?? scenario.modes;
  return modes.map((mode) =>
    simulate(scenario, { mode, ...(options.seed === undefined ? {} : { seed: options.seed }) }),
  );
}
