/**
 * The live harness: a scenario's traffic, scaled to the measured capacity of a real server, sent
 * open-loop by a separate process against a real node:http server in another process, and reported
 * in the simulator's own format (SimReport: summary + 1 s series), so that tables, charts and the
 * comparison with the simulator work the same for both.
 *
 * Definitions that differ from the simulator (where a real client sees less than the model):
 * - `late` counts client timeouts (the client gave up; the server may still do the work);
 * - `admitted` counts 2xx responses the server finished writing in that second;
 * - `maxWaitMs` is the server's largest event-loop delay in that second;
 * - an episode's `engageMs` is the time to the first refused response, `switches` the number of
 *   on/off transitions of "any request refused" in 100 ms slices, and `recoverMs` the time to the
 *   end of the first second with no refusal and a 2xx p99 at most `report.recoveryWaitMs`.
 */
import { performance } from 'node:perf_hooks';
import {
  directionChanges,
  type FactorPoint,
  factorAt,
  jainIndex,
  maxMinFairShares,
  onOffSwitches,
  runs,
} from '../metrics.js';
import type { Episode, SeriesPoint, SimReport, SimSummary } from '../report.js';
import {
  type Mode,
  modelCapacity,
  PRIORITY_CLASSES,
  type PriorityClass,
  type Scenario,
  type TrafficPattern,
} from '../scenario.js';
import { episodeTotals, overloadedSeconds, simulate } from '../simulate.js';
import type { Distribution } from '../random.js';
import { LatencyHistogram } from './histogram.js';
import type { LoadResult, SourceCounts } from './load-generator.js';
import { runLoadProcess, spawnServer } from './processes.js';
import type { DecisionSecond, LiveMode, LiveServerOptions, ServerSecond, ServerStats } from './server.js';

export interface CapacityMeasurement {
  /** Requests per second the unprotected server completed in a short closed-loop run (autocannon). */
  readonly measuredPerSec: number | null;
  /** 1000 / cpuMs: what the handler's cost alone allows. */
  readonly derivedPerSec: number;
  /** The figure used to scale the scenario: the measured one when there is one. */
  readonly usedPerSec: number;
  readonly method: 'autocannon' | 'derived';
}

export interface LiveOptions {
  /** @default 'spillway' */
  mode?: LiveMode;
  /** CPU time per request in the handler, in ms. @default 2 */
  cpuMs?: number;
  /** Multiplies every time in the scenario (0.5 runs it twice as fast). @default 1 */
  durationScale?: number;
  /** Skip the capacity measurement and use this, in requests per second. @default measured */
  capacityPerSec?: number;
  /** Length of the closed-loop capacity run, in s. @default 3 */
  capacityRunSec?: number;
  /** Keep-alive connections the load generator opens first. @default peak per second × 2 (16 to 4096) */
  connections?: number;
  /** @default scenario.seed */
  seed?: number;
  /** Called after each second of the load with (second, total seconds). */
  onProgress?: (done: number, total: number, phase: string) => void;
  /** The server's handler and guard: a pool-bound handler, the guard's parts. @default CPU-bound, a Shedder */
  server?: Pick<LiveServerOptions, 'pool' | 'guard'>;
}

export interface LiveReport extends SimReport {
  readonly live: {
    readonly mode: LiveMode;
    readonly capacity: CapacityMeasurement;
    readonly cpuMs: number;
    readonly connections: number;
    readonly warmMs: number;
    /** The generator's own lateness (how late requests left), in ms. */
    readonly maxSendLagMs: number;
    readonly p99SendLagMs: number;
    readonly timeouts: number;
    readonly errors: number;
    /** "Any request refused" per 100 ms slice of the run (server's view). */
    readonly refusedSlices: readonly boolean[];
    /** Per episode: on/off transitions of "any request refused" in 100 ms slices. */
    readonly sliceSwitches: readonly number[];
    /**
     * Per episode: p50 and p99 of every 2xx answered during it (not the worst second's), and of every
     * refusal (429 or 503), in ms (null when none was answered).
     */
    readonly episodeLatency: readonly {
      readonly p50Ms: number | null;
      readonly p99Ms: number | null;
      readonly refusedP50Ms: number | null;
      readonly refusedP99Ms: number | null;
    }[];
    /** Per second (as `series`): the guard's decisions (`spillway` mode), else null. */
    readonly decisions: readonly (DecisionSecond | null)[];
    /** Per traffic source: its requests' outcomes, per second of their intended send time. */
    readonly sources: readonly SourceCounts[];
  };
}

/** Measures the unprotected server's capacity with a short closed-loop autocannon run. */
export async function measureCapacity(
  options: { cpuMs?: number; durationSec?: number; pool?: LiveServerOptions['pool'] } = {},
): Promise<CapacityMeasurement> {
  const cpuMs = options.cpuMs ?? 2;
  const pool = options.pool;
  // A pool-bound handler completes at most slots / holdMs; a CPU-bound one 1000 / cpuMs.
  const derived = Math.min(
    cpuMs > 0 ? 1000 / cpuMs : Infinity,
    pool === undefined || !(pool.holdMs > 0) ? Infinity : (pool.slots * 1000) / pool.holdMs,
  );
  let measured: number | null = null;
  let autocannon: AutocannonFn | undefined;
  try {
    const name = 'autocannon';
    autocannon = ((await import(name)) as { default: AutocannonFn }).default;
  } catch {
    autocannon = undefined;
  }
  if (autocannon !== undefined) {
    const server = await spawnServer({ mode: 'none', cpuMs, ...(pool === undefined ? {} : { pool }) });
    try {
      const result = await autocannon({
        url: `http://127.0.0.1:${server.port}/`,
        connections: pool === undefined ? 16 : Math.max(16, pool.slots * 2),
        duration: options.durationSec ?? 3,
      });
      measured = result.requests.total / (options.durationSec ?? 3);
    } finally {
      await server.stop();
    }
  }
  const used = measured ?? derived;
  return {
    measuredPerSec: measured,
    derivedPerSec: derived,
    usedPerSec: used,
    method: measured === null ? 'derived' : 'autocannon',
  };
}

type AutocannonFn = (opts: {
  url: string;
  connections: number;
  duration: number;
}) => Promise<{ requests: { total: number } }>;

/** A copy of `scenario` with every time multiplied by `k` (rates unchanged). */
export function scaleScenarioTime(scenario: Scenario, k: number): Scenario {
  if (k === 1) return scenario;
  if (!(k > 0) || !Number.isFinite(k))
    throw new RangeError(`durationScale must be a finite number > 0, got ${k}`);
  const pattern = (p: TrafficPattern): TrafficPattern => {
    switch (p.kind) {
      case 'steady':
        return p;
      case 'ramp':
      case 'step':
        return { ...p, startSec: p.startSec * k, endSec: p.endSec * k };
      case 'sinusoid':
        return { ...p, periodSec: p.periodSec * k, phaseSec: p.phaseSec * k };
      case 'onOff':
        return { ...p, onSec: p.onSec * k, offSec: p.offSec * k, phaseSec: p.phaseSec * k };
    }
  };
  return {
    ...scenario,
    durationSec: scenario.durationSec * k,
    traffic: scenario.traffic.map((t) => ({
      ...t,
      pattern: pattern(t.pattern),
      startSec: t.startSec * k,
      endSec: t.endSec * k,
    })),
    report: { ...scenario.report, settleSec: scenario.report.settleSec * k },
  };
}

/** A copy of `scenario` for a server of `capacityPerSec`: every rate scaled by the ratio of capacities. */
export function scaleScenarioRate(scenario: Scenario, capacityPerSec: number): Scenario {
  const k = capacityPerSec / scenario.capacityPerSec;
  const pattern = (p: TrafficPattern): TrafficPattern => {
    switch (p.kind) {
      case 'steady':
        return { ...p, ratePerSec: p.ratePerSec * k };
      case 'ramp':
        return { ...p, fromPerSec: p.fromPerSec * k, toPerSec: p.toPerSec * k };
      case 'step':
        return { ...p, basePerSec: p.basePerSec * k, peakPerSec: p.peakPerSec * k };
      case 'sinusoid':
        return { ...p, meanPerSec: p.meanPerSec * k, amplitudePerSec: p.amplitudePerSec * k };
      case 'onOff':
        return { ...p, onPerSec: p.onPerSec * k, offPerSec: p.offPerSec * k };
    }
  };
  return {
    ...scenario,
    capacityPerSec,
    traffic: scenario.traffic.map((t) => ({ ...t, pattern: pattern(t.pattern) })),
  };
}

/**
 * Runs `scenario` live under one mode: measures capacity (unless given), starts the server and the
 * load generator as separate processes, and reports in the simulator's format.
 */
export async function runLive(scenario: Scenario, options: LiveOptions = {}): Promise<LiveReport> {
  const mode = options.mode ?? 'spillway';
  const cpuMs = options.cpuMs ?? 2;
  const wallStart = performance.now();
  options.onProgress?.(0, 1, 'measuring capacity');
  const capacity: CapacityMeasurement =
    options.capacityPerSec === undefined
      ? await measureCapacity({
          cpuMs,
          durationSec: options.capacityRunSec ?? 3,
          ...(options.server?.pool === undefined ? {} : { pool: options.server.pool }),
        })
      : {
          measuredPerSec: null,
          derivedPerSec: 1000 / cpuMs,
          usedPerSec: options.capacityPerSec,
          method: 'derived',
        };
  const timed = scaleScenarioTime(scenario, options.durationScale ?? 1);
  const live = scaleScenarioRate(timed, capacity.usedPerSec);
  const total = Math.ceil(live.durationSec);

  options.onProgress?.(0, total, `starting ${mode}`);
  const server = await spawnServer({
    mode,
    cpuMs,
    governor: live.spillway.governor,
    shedder: live.spillway.shedder === false ? {} : live.spillway.shedder,
    ...(options.server?.pool === undefined ? {} : { pool: options.server.pool }),
    ...(options.server?.guard === undefined ? {} : { guard: options.server.guard }),
  });
  let load: LoadResult;
  try {
    load = await runLoadProcess(
      {
        port: server.port,
        traffic: live.traffic,
        durationSec: live.durationSec,
        seed: options.seed ?? live.seed,
        notBeforeEpochMs: server.readyAtEpochMs,
        ...(options.connections === undefined ? {} : { connections: options.connections }),
      },
      (s) => options.onProgress?.(Math.min(total, s.second + 1), total, mode),
    );
  } catch (err) {
    server.kill();
    throw err;
  }
  const stats = await server.stop();
  return toReport(live, mode, load, stats, capacity, cpuMs, performance.now() - wallStart);
}

function toReport(
  scenario: Scenario,
  mode: LiveMode,
  load: LoadResult,
  stats: ServerStats,
  capacity: CapacityMeasurement,
  cpuMs: number,
  wallMs: number,
): LiveReport {
  const dur = Math.ceil(scenario.durationSec);
  const startSec = load.startEpochMs / 1000;
  const startSlice = load.startEpochMs / 100;
  const serverSecond = new Map(stats.seconds.map((s) => [s.epochSec - startSec, s]));
  const sliceCount = dur * 10;
  const refusedSlices: boolean[] = [];
  const admittedPerSecond = new Array<number>(dur).fill(0);
  for (let i = 0; i < sliceCount; i++) refusedSlices.push((stats.refusedSlices[startSlice + i] ?? 0) > 0);
  for (const [k, v] of Object.entries(stats.okSlices)) {
    const sec = Math.floor((Number(k) - startSlice) / 10);
    if (sec >= 0 && sec < dur) admittedPerSecond[sec]! += v;
  }
  const hasFactor = mode === 'spillway';
  const factorChanges = stats.factorChanges.map((c) => ({
    atMs: c.epochMs - load.startEpochMs,
    factor: c.factor,
  }));

  const { series, okHist, refusedHist } = liveSeries(
    load,
    dur,
    serverSecond,
    admittedPerSecond,
    hasFactor ? factorChanges : null,
  );

  const offered = load.scheduled;
  const goodput = load.totals.ok;
  const shed = load.totals.r503;
  const limited = load.totals.r429;
  const cap = scenario.capacityPerSec;
  const demands = load.bySource.map((s) => s.scheduled);
  const fair = maxMinFairShares(demands, cap * dur);
  const tenants = load.bySource.map((s, i) => ({
    tenant: s.name,
    demand: s.scheduled,
    goodput: s.ok,
    fairShare: fair[i]!,
  }));
  const minFactor = hasFactor ? Math.min(1, ...factorChanges.map((c) => c.factor)) : null;
  const summary: SimSummary = {
    scenario: scenario.name,
    // The live modes include the peers, which the simulator's Mode does not list.
    mode: mode as Mode,
    seed: scenario.seed,
    durationSec: dur,
    capacityPerSec: cap,
    offered,
    firstAttempts: offered,
    retries: 0,
    offeredPerSec: offered / dur,
    admitted: admittedPerSecond.reduce((a, b) => a + b, 0),
    goodput,
    goodputPerSec: goodput / dur,
    goodputShareOfCapacity: goodput / dur / cap,
    goodputShareOfDemand: offered > 0 ? goodput / offered : 0,
    late: load.totals.timeouts,
    failed: load.totals.errors + load.totals.otherStatus,
    unfinished: 0,
    latencyMs: {
      p50: okHist.count > 0 ? round(okHist.percentile(50)) : null,
      p99: okHist.count > 0 ? round(okHist.percentile(99)) : null,
      max: okHist.count > 0 ? round(okHist.maxMs) : null,
    },
    refusedLatencyMs: {
      p50: refusedHist.count > 0 ? round(refusedHist.percentile(50)) : null,
      p99: refusedHist.count > 0 ? round(refusedHist.percentile(99)) : null,
    },
    shed,
    shedShare: offered > 0 ? shed / offered : 0,
    shedShareByPriority: Object.fromEntries(
      PRIORITY_CLASSES.map((p, i) => {
        const b = load.byPriority[i]!;
        return [p, b.sent > 0 ? b.refused / b.sent : null];
      }),
    ) as Record<PriorityClass, number | null>,
    limited,
    limitedShare: offered > 0 ? limited / offered : 0,
    factorDirectionChangesPerMin: hasFactor ? directionChanges(factorChanges) / (dur / 60) : null,
    minFactor,
    episodes: liveEpisodes(scenario, series, refusedSlices, hasFactor ? factorChanges : null),
    jainIndex:
      tenants.length < 2
        ? null
        : jainIndex(tenants.map((t) => (t.fairShare > 0 ? t.goodput / t.fairShare : 0))),
    tenants,
    wallMs,
  };
  return {
    summary,
    series,
    factorChanges,
    live: {
      mode,
      capacity,
      cpuMs,
      connections: load.connections,
      warmMs: round(load.warmMs),
      maxSendLagMs: round(load.maxSendLagMs),
      p99SendLagMs: round(load.p99SendLagMs),
      timeouts: load.totals.timeouts,
      errors: load.totals.errors,
      refusedSlices,
      sliceSwitches: episodeWindows(scenario, dur).map(([a, b]) =>
        sliceSwitches(refusedSlices, a * 10, b * 10),
      ),
      decisions: series.map((p) => serverSecond.get(p.t)?.decisions ?? null),
      sources: load.bySource,
      episodeLatency: episodeLatency(scenario, load),
    },
  };
}

/**
 * The run as the simulator's 1 s series, from the client's counts and the server's own seconds.
 * Seconds after the scheduled duration (the drain) fold into the last second. Also the 2xx
 * latencies of those seconds and every refusal's, merged.
 */
function liveSeries(
  load: LoadResult,
  dur: number,
  serverSecond: ReadonlyMap<number, ServerSecond>,
  admittedPerSecond: readonly number[],
  factorChanges: readonly FactorPoint[] | null,
): { series: SeriesPoint[]; okHist: LatencyHistogram; refusedHist: LatencyHistogram } {
  const series: SeriesPoint[] = [];
  const okHist = new LatencyHistogram();
  const refusedHist = new LatencyHistogram();
  for (const sec of load.seconds) refusedHist.merge(sec.latencyRefused);
  for (let t = 0; t < dur; t++) {
    const c = load.seconds[t];
    const hist = new LatencyHistogram();
    let ok = c?.ok ?? 0;
    let r429 = c?.r429 ?? 0;
    let r503 = c?.r503 ?? 0;
    let failed = (c?.errors ?? 0) + (c?.otherStatus ?? 0);
    let timeouts = c?.timeouts ?? 0;
    if (c) hist.merge(c.latencyOk);
    if (t === dur - 1) {
      for (const d of load.seconds.slice(dur)) {
        ok += d.ok;
        r429 += d.r429;
        r503 += d.r503;
        failed += d.errors + d.otherStatus;
        timeouts += d.timeouts;
        hist.merge(d.latencyOk);
      }
    }
    okHist.merge(hist);
    const sv = serverSecond.get(t);
    series.push({
      t,
      offered: c?.offered ?? 0,
      offeredFirst: c?.offered ?? 0,
      admitted: admittedPerSecond[t]!,
      goodput: ok,
      late: timeouts,
      shed: r503,
      limited: r429,
      failed,
      p50Ms: hist.count > 0 ? round(hist.percentile(50)) : null,
      p99Ms: hist.count > 0 ? round(hist.percentile(99)) : null,
      factor: factorChanges === null ? null : (sv?.factor ?? factorAt(factorChanges, (t + 1) * 1000)),
      pressure: sv?.pressure ?? 0,
      smoothedPressure: sv?.smoothedPressure ?? 0,
      dominant: sv?.dominant ?? null,
      maxWaitMs: round(sv?.eventLoopDelayMaxMs ?? 0),
      inFlight: c?.inFlight ?? 0,
    });
  }
  return { series, okHist, refusedHist };
}

/** The 2xx and refusal latencies (p50, p99) over each overload episode. */
function episodeLatency(scenario: Scenario, load: LoadResult) {
  return runs(overloadedSeconds(scenario)).map(([a, b]) => {
    const h = new LatencyHistogram();
    const r = new LatencyHistogram();
    for (const sec of load.seconds.slice(a, b)) {
      h.merge(sec.latencyOk);
      r.merge(sec.latencyRefused);
    }
    const at = (x: LatencyHistogram, p: number) => (x.count > 0 ? round(x.percentile(p)) : null);
    return { p50Ms: at(h, 50), p99Ms: at(h, 99), refusedP50Ms: at(r, 50), refusedP99Ms: at(r, 99) };
  });
}

/** Each overload episode's [start, end + settle) window, in seconds, as the episodes use. */
function episodeWindows(scenario: Scenario, seriesLength: number): [number, number][] {
  const spans = runs(overloadedSeconds(scenario));
  return spans.map(([start, end], k) => [
    start,
    Math.min(end + scenario.report.settleSec, spans[k + 1]?.[0] ?? Infinity, seriesLength),
  ]);
}

/** On/off transitions of a flag (such as "any request refused" per slice) within [from, to). */
export function sliceSwitches(slices: readonly boolean[], from: number, to: number): number {
  let n = 0;
  let on = from > 0 ? (slices[from - 1] ?? false) : false;
  for (let i = Math.max(0, from); i < Math.min(to, slices.length); i++) {
    if (slices[i] !== on) n++;
    on = slices[i]!;
  }
  return n;
}

/** The overload episodes of a live run (see the module comment for the definitions). */
function liveEpisodes(
  scenario: Scenario,
  series: readonly SeriesPoint[],
  slices: readonly boolean[],
  factorChanges: readonly FactorPoint[] | null,
): Episode[] {
  const secondsRefused = series.map((p) => p.shed + p.limited > 0);
  const spans = runs(overloadedSeconds(scenario));
  const cap = scenario.capacityPerSec;
  const { settleSec, recoveryWaitMs } = scenario.report;
  return spans.map(([start, end], k) => {
    const { len, goodput, offered, worstP99Ms, windowEnd } = episodeTotals(series, spans, k, settleSec);
    const firstOn = slices.findIndex((on, i) => on && i >= start * 10 && i < windowEnd * 10);
    let recoverMs: number | null = null;
    for (let i = end; i < series.length; i++) {
      const p = series[i]!;
      if (p.shed === 0 && p.limited === 0 && p.p99Ms !== null && p.p99Ms <= recoveryWaitMs) {
        recoverMs = (i + 1 - end) * 1000;
        break;
      }
    }
    return {
      startSec: start,
      endSec: end,
      demandPerSec: offered / len,
      offeredPerSec: offered / len,
      goodputPerSec: goodput / len,
      goodputShare: goodput / len / cap,
      p99Ms: worstP99Ms,
      engageMs: firstOn < 0 ? null : (firstOn - start * 10) * 100,
      recoverMs,
      switches: sliceSwitches(secondsRefused, start, windowEnd),
      factorSwitches:
        factorChanges === null ? null : onOffSwitches(factorChanges, start * 1000, windowEnd * 1000),
    };
  });
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

export interface SimLiveComparison {
  readonly sim: SimReport;
  readonly live: LiveReport;
  /** Live minus simulated, per measure (first overload episode where both have one). */
  readonly differences: {
    readonly goodputShareOfCapacity: number;
    readonly p99Ms: number | null;
    readonly engageMs: number | null;
  };
}

/**
 * The scenario as the simulator should run it to compare with a live report: the same time scale,
 * rates scaled to the measured capacity, and the model server's service time stretched so that
 * the model's capacity is the measured one too.
 */
export function scenarioForSim(scenario: Scenario, capacityPerSec: number, durationScale = 1): Scenario {
  const scaled = scaleScenarioRate(scaleScenarioTime(scenario, durationScale), capacityPerSec);
  const k = modelCapacity(scenario.server) / capacityPerSec;
  const d = scenario.server.service;
  const service: Distribution =
    d.kind === 'constant' ? { ...d, ms: d.ms * k } : { ...d, meanMs: d.meanMs * k };
  return { ...scaled, server: { ...scaled.server, service } };
}

/**
 * Simulator options that match a live run: the live schedule starts only after the governor's
 * warm-up, so the simulated governor starts warm.
 */
export const SIM_LIKE_LIVE = Object.freeze({ governor: Object.freeze({ warmupMs: 0 }) });

/** Live minus simulated: the first episode's goodput share, p99 (worst second) and time to engage. */
export function simLiveDifferences(sim: SimReport, live: SimReport): SimLiveComparison['differences'] {
  const le = live.summary.episodes[0];
  const se = sim.summary.episodes[0];
  const diff = (a: number | null | undefined, b: number | null | undefined) =>
    a === null || a === undefined || b === null || b === undefined ? null : round(a - b);
  return {
    goodputShareOfCapacity: round(
      (le?.goodputShare ?? live.summary.goodputShareOfCapacity) -
        (se?.goodputShare ?? sim.summary.goodputShareOfCapacity),
    ),
    p99Ms: diff(le?.p99Ms ?? live.summary.latencyMs.p99, se?.p99Ms ?? sim.summary.latencyMs.p99),
    engageMs: diff(le?.engageMs, se?.engageMs),
  };
}

/**
 * Runs the simulator and the live harness on one scenario (same mode; the model's capacity made the
 * measured one) and reports how close they come: goodput, p99, time to engage.
 */
export async function compareSimToLive(
  scenario: Scenario,
  options: LiveOptions & { mode?: 'none' | 'spillway' } = {},
): Promise<SimLiveComparison> {
  const mode = options.mode ?? 'spillway';
  const live = await runLive(scenario, { ...options, mode });
  const sim = simulate(scenarioForSim(scenario, live.summary.capacityPerSec, options.durationScale ?? 1), {
    mode,
    seed: options.seed ?? scenario.seed,
    ...SIM_LIKE_LIVE,
  });
  return { sim, live, differences: simLiveDifferences(sim, live) };
}
