/**
 * The open-loop load generator. Requests leave on a schedule fixed in advance, whatever the server
 * does; latency is measured from each request's INTENDED send time, so a server (or a client-side
 * queue) that delays sending shows up as latency instead of as less load (no coordinated omission).
 *
 * Connections are opened before the measured period (keep-alive, one warm-up request each): a
 * saturated Node server accepts about one new connection per loop turn, and a benchmark that
 * connects during the overload measures the kernel's accept queue, not the shedder.
 *
 * Only 127.0.0.1. Bounded: the schedule has a fixed length, every request has a client timeout,
 * and the run ends by itself at the latest `durationSec + max timeout + 5 s` after it starts.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { ConfigError } from 'spillway';
import type { TrafficSpec } from '../scenario.js';
import { type HistogramData, LatencyHistogram } from './histogram.js';
import { buildSchedule, PRIORITY_ORDER, peakPerSecond, type Schedule } from './schedule.js';

export interface LoadGeneratorOptions {
  /** Port of the server on 127.0.0.1. */
  port: number;
  /** Path of the measured requests. @default '/' */
  path?: string;
  /** Path of the warm-up requests that open the connections. @default '/warm' */
  warmPath?: string;
  /** The traffic sources (a scenario's `traffic`), or a ready schedule. */
  traffic: readonly TrafficSpec[] | Schedule;
  /** Timeout of each source's requests, in ms, when `traffic` is a Schedule. @default 10000 */
  timeoutMs?: number;
  /** Multiplies every rate. @default 1 */
  scale?: number;
  /** Length of the schedule, in s. */
  durationSec: number;
  /** @default 1 */
  seed?: number;
  /**
   * Keep-alive connections opened before the run. @default the schedule's peak per second × 2,
   * from 16 to 4096
   */
  connections?: number;
  /**
   * The schedule starts at the first whole wall-clock second after the connections are open and
   * after this time (ms since the epoch), so that both processes agree on second boundaries.
   * @default 0
   */
  notBeforeEpochMs?: number;
  /** Called after each second of the run with that second's counts. */
  onSecond?: (second: LoadSecond) => void;
}

/** What the client saw in one second: offered by due time, outcomes by completion time. */
export interface LoadSecond {
  readonly second: number;
  /** Requests due in this second. */
  offered: number;
  /** Responses with a 2xx status that completed in this second. */
  ok: number;
  r429: number;
  r503: number;
  /** Responses with any other status. */
  otherStatus: number;
  /** Connection errors. */
  errors: number;
  /** Requests abandoned at their client timeout in this second (not goodput). */
  timeouts: number;
  /** Latency of the 2xx responses, from the intended send time, in ms. */
  latencyOk: HistogramData;
  /** Latency of the 429/503 responses, from the intended send time, in ms. */
  latencyRefused: HistogramData;
  /** Requests sent and not yet answered at the end of the second. */
  inFlight: number;
}

export interface LoadResult {
  /** Wall-clock time (ms since the epoch) of the schedule's start. */
  readonly startEpochMs: number;
  readonly seconds: LoadSecond[];
  /** Responses refused (429 or 503) per 100 ms slice of completion time. */
  readonly refusedSlices: number[];
  /** Responses admitted (2xx) per 100 ms slice of completion time. */
  readonly okSlices: number[];
  readonly scheduled: number;
  readonly sent: number;
  readonly connections: number;
  /** How long opening the connections took, in ms. */
  readonly warmMs: number;
  /** The latest any request left after its intended time, in ms (the generator's own lag). */
  readonly maxSendLagMs: number;
  /** The 99th percentile of that lag, in ms. */
  readonly p99SendLagMs: number;
  readonly totals: {
    ok: number;
    r429: number;
    r503: number;
    otherStatus: number;
    errors: number;
    timeouts: number;
  };
  readonly latencyOk: HistogramData;
  /** Per priority class (critical, normal, sheddable): requests sent and refused. */
  readonly byPriority: { sent: number; refused: number }[];
  /** Per traffic source: requests scheduled and answered 2xx in time. */
  readonly bySource: SourceCounts[];
}

/**
 * One traffic source's requests, in total and per second of their INTENDED send time (so that a
 * phase of the schedule, such as an overload, counts the requests sent in it, however late they
 * were answered): scheduled, answered 2xx in time, 429, 503, and abandoned at the client timeout.
 */
export interface SourceCounts {
  readonly name: string;
  scheduled: number;
  ok: number;
  readonly perSecond: {
    readonly scheduled: number[];
    readonly ok: number[];
    readonly r429: number[];
    readonly r503: number[];
    readonly timeouts: number[];
  };
}

interface InFlight {
  readonly req: http.ClientRequest;
  readonly intended: number;
  readonly deadline: number;
  readonly priority: number;
  readonly source: number;
  done: boolean;
}

const SLICE_MS = 100;

function isSchedule(t: LoadGeneratorOptions['traffic']): t is Schedule {
  return !Array.isArray(t) && typeof t === 'object' && t !== null && 'atMs' in t;
}

/** The schedule to send, and each source's name and client timeout. */
interface Traffic {
  readonly schedule: Schedule;
  /** Per source, in ms. */
  readonly timeouts: readonly number[];
  readonly names: readonly string[];
  readonly maxTimeout: number;
}

function trafficOf(options: LoadGeneratorOptions): Traffic {
  const t = options.traffic;
  if (isSchedule(t)) {
    const timeout = options.timeoutMs ?? 10_000;
    return { schedule: t, timeouts: [timeout], names: ['load'], maxTimeout: timeout };
  }
  const schedule = buildSchedule(t, {
    durationSec: options.durationSec,
    scale: options.scale ?? 1,
    seed: options.seed ?? 1,
  });
  const timeouts = t.map((x) => x.timeoutMs);
  return { schedule, timeouts, names: t.map((x) => x.name), maxTimeout: Math.max(...timeouts) };
}

/**
 * What the client saw, counted as it happens: per second (offered by due time, outcomes by
 * completion time), per 100 ms slice, per priority, per source (by intended send time), in total,
 * and the latency histograms.
 */
class Tally {
  readonly seconds: LoadSecond[];
  readonly refusedSlices: number[] = [];
  readonly okSlices: number[] = [];
  readonly totals = { ok: 0, r429: 0, r503: 0, otherStatus: 0, errors: 0, timeouts: 0 };
  readonly allOk = new LatencyHistogram();
  readonly byPriority = [0, 1, 2].map(() => ({ sent: 0, refused: 0 }));
  readonly bySource: SourceCounts[];
  readonly #okHist: LatencyHistogram[];
  readonly #refusedHist: LatencyHistogram[];
  readonly #t0: number;
  #reported = 0;

  /** `t0`: the schedule's start on `performance.now()`'s clock. */
  constructor(traffic: Traffic, secondsCount: number, t0: number) {
    const { schedule, names } = traffic;
    this.#t0 = t0;
    this.seconds = Array.from({ length: secondsCount }, (_, s) => emptySecond(s));
    this.#okHist = Array.from({ length: secondsCount }, () => new LatencyHistogram());
    this.#refusedHist = Array.from({ length: secondsCount }, () => new LatencyHistogram());
    this.bySource = names.map((name) => ({
      name,
      scheduled: 0,
      ok: 0,
      perSecond: {
        scheduled: new Array<number>(secondsCount).fill(0),
        ok: new Array<number>(secondsCount).fill(0),
        r429: new Array<number>(secondsCount).fill(0),
        r503: new Array<number>(secondsCount).fill(0),
        timeouts: new Array<number>(secondsCount).fill(0),
      },
    }));
    for (let i = 0; i < schedule.atMs.length; i++) {
      const s = Math.floor(schedule.atMs[i]! / 1000);
      if (s < secondsCount) this.seconds[s]!.offered++;
      const src = this.bySource[schedule.source[i]!];
      if (src) {
        src.scheduled++;
        src.perSecond.scheduled[Math.min(secondsCount - 1, s)]!++;
      }
    }
  }

  /** The second (index) that `now` falls in, on `performance.now()`'s clock. */
  secondAt(now: number): number {
    return Math.min(this.seconds.length - 1, Math.max(0, Math.floor((now - this.#t0) / 1000)));
  }

  /** A response (or a connection error) at `now`. */
  answered(e: InFlight, status: number | 'error', now: number): void {
    const at = this.secondAt(now);
    const sec = this.seconds[at]!;
    const totals = this.totals;
    const latency = now - e.intended;
    if (status === 'error') {
      sec.errors++;
      totals.errors++;
    } else if (status >= 200 && status < 300) {
      sec.ok++;
      totals.ok++;
      const src = this.bySource[e.source];
      if (src) {
        src.ok++;
        src.perSecond.ok[this.secondAt(e.intended)]!++;
      }
      this.#okHist[at]!.record(latency);
      this.allOk.record(latency);
      this.#slice(this.okSlices, now);
    } else if (status === 429 || status === 503) {
      const src = this.bySource[e.source]?.perSecond;
      if (status === 429) {
        sec.r429++;
        totals.r429++;
        if (src) src.r429[this.secondAt(e.intended)]!++;
      } else {
        sec.r503++;
        totals.r503++;
        if (src) src.r503[this.secondAt(e.intended)]!++;
      }
      this.#refusedHist[at]!.record(latency);
      this.byPriority[e.priority]!.refused++;
      this.#slice(this.refusedSlices, now);
    } else {
      sec.otherStatus++;
      totals.otherStatus++;
    }
  }

  /** A request abandoned at its client timeout, at `now`. */
  timedOut(e: InFlight, now: number): void {
    this.seconds[this.secondAt(now)]!.timeouts++;
    this.totals.timeouts++;
    const src = this.bySource[e.source]?.perSecond;
    if (src) src.timeouts[this.secondAt(e.intended)]!++;
  }

  /** Hands seconds up to (not including) `upTo` to `onSecond`, each once, with their histograms. */
  report(upTo: number, onSecond: ((s: LoadSecond) => void) | undefined): void {
    while (this.#reported < upTo && this.#reported < this.seconds.length) {
      const s = this.seconds[this.#reported]!;
      s.latencyOk = this.#okHist[this.#reported]!.toJSON();
      s.latencyRefused = this.#refusedHist[this.#reported]!.toJSON();
      onSecond?.(s);
      this.#reported++;
    }
  }

  #slice(arr: number[], now: number): void {
    const i = Math.max(0, Math.floor((now - this.#t0) / SLICE_MS));
    while (arr.length <= i) arr.push(0);
    arr[i]!++;
  }
}

/** Runs one open-loop load against 127.0.0.1:`port` and resolves with what the client saw. */
export async function runLoad(options: LoadGeneratorOptions): Promise<LoadResult> {
  const port = options.port;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new ConfigError('port', port, 'an integer from 1 to 65535');
  }
  if (!(options.durationSec > 0) || !Number.isFinite(options.durationSec)) {
    throw new ConfigError('durationSec', options.durationSec, 'a finite number > 0');
  }
  const traffic = trafficOf(options);
  const { schedule, timeouts, names, maxTimeout } = traffic;
  const connections =
    options.connections ?? Math.min(4096, Math.max(16, Math.ceil(peakPerSecond(schedule) * 2)));
  const path = options.path ?? '/';

  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: connections,
    maxFreeSockets: connections,
    scheduling: 'fifo',
  });

  // Open every connection first: `connections` concurrent warm-up requests, one socket each.
  const warmStart = performance.now();
  await Promise.all(
    Array.from({ length: connections }, () => warmRequest(agent, port, options.warmPath ?? '/warm')),
  );
  const warmMs = performance.now() - warmStart;

  const nowEpoch = () => performance.timeOrigin + performance.now();
  const startEpochMs = Math.ceil(Math.max(nowEpoch() + 100, options.notBeforeEpochMs ?? 0) / 1000) * 1000;
  const t0 = performance.now() + (startEpochMs - nowEpoch());

  const n = schedule.atMs.length;
  const secondsCount = Math.ceil(options.durationSec + maxTimeout / 1000 + 1);
  const tally = new Tally(traffic, secondsCount, t0);
  const lag = new LatencyHistogram();
  const inflight = new Set<InFlight>();
  let sent = 0;
  let next = 0;

  const finish = (e: InFlight, status: number | 'error') => {
    if (e.done) return;
    e.done = true;
    inflight.delete(e);
    tally.answered(e, status, performance.now());
  };

  const send = (i: number) => {
    const intended = t0 + schedule.atMs[i]!;
    const source = schedule.source[i]!;
    const req = http.request({
      agent,
      host: '127.0.0.1',
      port,
      path,
      method: 'GET',
      headers: {
        'x-priority': PRIORITY_ORDER[schedule.priority[i]!] ?? 'normal',
        'x-source': names[source] ?? 'load',
      },
    });
    const priority = schedule.priority[i]!;
    tally.byPriority[priority]!.sent++;
    const e: InFlight = {
      req,
      intended,
      deadline: intended + (timeouts[source] ?? maxTimeout),
      priority,
      source,
      done: false,
    };
    inflight.add(e);
    req.on('response', (res) => {
      res.on('data', noop);
      res.on('end', () => finish(e, res.statusCode ?? 0));
      res.on('error', () => finish(e, 'error'));
    });
    req.on('error', () => finish(e, 'error'));
    req.end();
    sent++;
    lag.record(performance.now() - intended);
  };

  return new Promise<LoadResult>((resolve) => {
    let pumpTimer: NodeJS.Timeout | undefined;
    const hardEnd = t0 + options.durationSec * 1000 + maxTimeout + 5000;

    const done = () => {
      clearInterval(sweeper);
      if (pumpTimer) clearTimeout(pumpTimer);
      for (const e of inflight) {
        e.done = true;
        e.req.destroy();
      }
      inflight.clear();
      agent.destroy();
      tally.report(secondsCount, options.onSecond);
      resolve({
        startEpochMs,
        seconds: tally.seconds,
        refusedSlices: tally.refusedSlices,
        okSlices: tally.okSlices,
        scheduled: n,
        sent,
        connections,
        warmMs,
        maxSendLagMs: lag.maxMs,
        p99SendLagMs: lag.count > 0 ? lag.percentile(99) : 0,
        totals: tally.totals,
        latencyOk: tally.allOk.toJSON(),
        byPriority: tally.byPriority,
        bySource: tally.bySource,
      });
    };

    // Client timeouts: abandon (and count) every request past its deadline; a timed-out request
    // is not goodput even if the server finishes it later.
    const sweeper = setInterval(() => {
      const now = performance.now();
      for (const e of inflight) {
        if (e.deadline <= now) {
          e.done = true;
          inflight.delete(e);
          tally.timedOut(e, now);
          e.req.destroy();
        }
      }
      const current = Math.floor((now - t0) / 1000);
      if (current >= 0 && current < secondsCount) tally.seconds[current]!.inFlight = inflight.size;
      tally.report(current, options.onSecond);
      if ((next >= n && inflight.size === 0) || now >= hardEnd) done();
    }, 20);

    const pump = () => {
      pumpTimer = undefined;
      const now = performance.now() - t0;
      while (next < n && schedule.atMs[next]! <= now) send(next++);
      if (next < n)
        pumpTimer = setTimeout(pump, Math.max(0, schedule.atMs[next]! - (performance.now() - t0)));
    };
    pumpTimer = setTimeout(pump, Math.max(0, t0 - performance.now()));
  });
}

function noop(): void {}

function emptySecond(second: number): LoadSecond {
  const empty: HistogramData = { counts: {}, count: 0, maxMs: 0 };
  return {
    second,
    offered: 0,
    ok: 0,
    r429: 0,
    r503: 0,
    otherStatus: 0,
    errors: 0,
    timeouts: 0,
    latencyOk: empty,
    latencyRefused: empty,
    inFlight: 0,
  };
}

function warmRequest(agent: http.Agent, port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.setTimeout(30_000, () => req.destroy(new Error('warm-up request timed out')));
    req.on('error', reject);
    req.end();
  });
}
