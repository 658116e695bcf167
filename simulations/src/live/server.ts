/**
 * The live harness's server: node:http (or Fastify, for @fastify/under-pressure) with a handler that
 * burns a fixed CPU time per request, protected by one of several modes. It records, per 100 ms
 * slice of wall-clock time, how many requests it admitted (2xx) and refused (429/503), and per
 * second its own view (throttle factor, dominant signal, event-loop delay), so the harness can tell
 * exactly when shedding was on.
 *
 * The peers are devDependencies, imported only when their mode is chosen, and set up as their
 * READMEs show. `/warm` answers at once and unprotected: it opens the client's keep-alive
 * connections before the measured period and must not teach a shedder a false rate.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createHttpGuard } from 'spillway/http';
import { ConfigError } from 'spillway';
import { createGovernor } from 'spillway';
import type { Governor } from 'spillway';
import { Shedder } from 'spillway';
import { createLimiter } from 'spillway';
import { DECISION_CHANNEL, type DecisionMessage } from 'spillway/observability';

export type LiveMode = 'none' | 'spillway' | 'under-pressure' | 'toobusy' | 'overload-protection';
export const LIVE_MODES: readonly LiveMode[] = Object.freeze([
  'none',
  'spillway',
  'under-pressure',
  'toobusy',
  'overload-protection',
]);
/** The modes whose library is a devDependency of Spillway (for the benchmark only). */
export const PEER_MODES: readonly LiveMode[] = Object.freeze([
  'under-pressure',
  'toobusy',
  'overload-protection',
]);

export interface LiveServerOptions {
  mode: LiveMode;
  /** CPU time each admitted request burns (busy loop), in ms. @default 2 */
  cpuMs?: number;
  /** Options for `createGovernor` in `spillway` mode (besides signals and clock). @default {} */
  governor?: Readonly<Record<string, number | string>>;
  /** Options for `new Shedder` in `spillway` mode (besides factor and clock). @default {} */
  shedder?: Readonly<Record<string, number>>;
  /** @default 0 (any free port) */
  port?: number;
  /**
   * The work of one admitted request, in place of burning `cpuMs` and `pool` (in-process only: a function does
   * not cross the worker's JSON). When it returns a promise, the 200 waits for it, so a handler
   * that awaits a pool or a downstream can be measured behind every mode (bench/live-pool.mjs).
   * A rejected promise is answered 500.
   */
  work?: () => void | Promise<void>;
  /**
   * A pool-bound handler: after its CPU time each request holds one of `slots` async slots for
   * `holdMs` (as a query holds a database connection), waiting FIFO for a free one. @default none
   */
  pool?: { readonly slots: number; readonly holdMs: number };
  /** What the guard holds besides the governor, in `spillway` mode. @default a Shedder only */
  guard?: LiveGuardOptions;
}

/** The guard's parts in `spillway` mode (JSON, as the options cross a process boundary). */
export interface LiveGuardOptions {
  /**
   * A per-key limit (key: the `x-source` header, the traffic source's name), scaled by the
   * governor's factor. @default none
   */
  readonly keyLimit?: { readonly ratePerSec: number; readonly burst: number };
  /** The guard's `concurrency` option (a ConcurrencyLimiter's options). @default none */
  readonly concurrency?: Readonly<Record<string, number>>;
  /** The guard's `turnBudgetMs`. @default on with a shedder (25 ms), else off */
  readonly turnBudgetMs?: number | false;
  /** Leave the Shedder out. @default false */
  readonly noShedder?: boolean;
  /** The guard's `feedGovernor` (its refusal share as a signal of the governor). @default true */
  readonly feedGovernor?: boolean;
}

/**
 * What the guard's decisions said in one second (from `spillway:decision`, in `spillway` mode): the
 * mechanisms that acted, as the run records them.
 */
export interface DecisionSecond {
  readonly admitted: number;
  /** Refusals by `stage:reason` (`turn-budget:shed`, `key:limited`, `concurrency:queue-full`...). */
  readonly refused: Record<string, number>;
  /** The key limiter's factor as its decisions carried it (lowest in the second), if any was seen. */
  readonly keyFactor: number | null;
  /** The key limiter's scaled limit (its `limit`, lowest in the second), if any was seen. */
  readonly keyLimit: number | null;
  /** Requests that waited (for a concurrency slot or their key), and their wait: mean and max, in ms. */
  readonly waited: number;
  readonly queueMeanMs: number;
  readonly queueMaxMs: number;
}

/** The server's own view of one second (wall clock, epoch seconds). */
export interface ServerSecond {
  readonly epochSec: number;
  /** Throttle factor at the end of the second (1 when the mode has none). */
  readonly factor: number;
  /** The governor's dominant signal, if any. */
  readonly dominant: string | undefined;
  /** The governor's state (spillway), or whether the peer refused anything in the second. */
  readonly state: string;
  /** The governor's raw and smoothed pressure (spillway), else 0. */
  readonly pressure: number;
  readonly smoothedPressure: number;
  /** p99 and max event-loop delay over the second, in ms (measured the same way for every mode). */
  readonly eventLoopDelayP99Ms: number;
  readonly eventLoopDelayMaxMs: number;
  /** The guard's decisions in the second (`spillway` mode), else undefined. */
  readonly decisions?: DecisionSecond;
}

export interface ServerStats {
  /** Admitted (2xx) responses per 100 ms slice, keyed by `floor(epochMs / 100)`. */
  readonly okSlices: Record<number, number>;
  /** Refused (429/503) responses per 100 ms slice, keyed by `floor(epochMs / 100)`. */
  readonly refusedSlices: Record<number, number>;
  readonly seconds: ServerSecond[];
  /** Every change of the applied factor (spillway), wall-clock ms since the epoch. */
  readonly factorChanges: { epochMs: number; factor: number }[];
  /** Requests the shedder refused (spillway) or the server answered 429/503 (peers). */
  readonly shed: number;
}

export interface RunningServer {
  readonly port: number;
  readonly mode: LiveMode;
  /** Wall-clock time (ms since the epoch) from which the protection is fully active. */
  readonly readyAtEpochMs: number;
  stats(): ServerStats;
  close(): Promise<void>;
}

const SLICE_MS = 100;

/** Burns `ms` of CPU on the event loop: the cost of one request. */
export function burn(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy: this is the work
  }
}

/** Imports a peer library by name (devDependencies: the package itself never needs them). */
async function peer(name: string): Promise<unknown> {
  try {
    return await import(name);
  } catch (err) {
    throw new Error(
      `mode needs the package ${name} (npm install --save-dev ${name}): ${(err as Error).message}`,
    );
  }
}

const epochNow = () => performance.timeOrigin + performance.now();

/**
 * What the server counted, shared by the response tracker, the guard's shedder (spillway) and the
 * per-second sampler.
 */
class Counts {
  readonly okSlices: Record<number, number> = {};
  readonly refusedSlices: Record<number, number> = {};
  readonly seconds: ServerSecond[] = [];
  readonly factorChanges: { epochMs: number; factor: number }[] = [];
  shed = 0;
  readonly #peerRefusals: boolean;

  /** `peerRefusals`: a 429/503 counts as shed (a peer's refusal; spillway counts its Shedder's). */
  constructor(peerRefusals: boolean) {
    this.#peerRefusals = peerRefusals;
  }

  /** Counts each response (but `/warm`) in its 100 ms slice when it finishes. */
  readonly track = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/warm') return;
    res.once('finish', () => {
      const slice = Math.floor(epochNow() / SLICE_MS);
      const s = res.statusCode;
      if (s === 429 || s === 503) {
        this.refusedSlices[slice] = (this.refusedSlices[slice] ?? 0) + 1;
        if (this.#peerRefusals) this.shed++;
      } else if (s >= 200 && s < 300) this.okSlices[slice] = (this.okSlices[slice] ?? 0) + 1;
    });
  };

  stats(): ServerStats {
    return {
      okSlices: { ...this.okSlices },
      refusedSlices: { ...this.refusedSlices },
      seconds: [...this.seconds],
      factorChanges: [...this.factorChanges],
      shed: this.shed,
    };
  }
}

/** One request's handling, the same behind every mode. */
interface Handler {
  readonly cpuMs: number;
  /** The caller's work, if any, in place of the CPU burn and the pool. */
  readonly custom: (() => void | Promise<void>) | undefined;
  readonly pool: SlotPool | undefined;
  /** The work alone: synchronous for the CPU burn alone, a promise with a pool or a custom work. */
  run(): void | Promise<void>;
  /** The work, then 200 (500 when it fails). */
  work(res: http.ServerResponse): void | Promise<void>;
  /** Answers `/warm` at once, unprotected; false for any other path. */
  warm(req: http.IncomingMessage, res: http.ServerResponse): boolean;
}

function handlerFor(options: LiveServerOptions, cpuMs: number): Handler {
  const custom = options.work;
  if (custom !== undefined && typeof custom !== 'function') {
    throw new ConfigError('work', custom, 'a function (the work of one request)');
  }
  const pool = options.pool === undefined ? undefined : new SlotPool(options.pool.slots, options.pool.holdMs);
  const ok = (res: http.ServerResponse) => {
    if (res.destroyed) return;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  };
  const failed = (res: http.ServerResponse) => {
    if (res.destroyed) return;
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('error');
  };
  const run = (): void | Promise<void> => {
    if (custom !== undefined) return custom();
    burn(cpuMs);
    if (pool !== undefined) return new Promise<void>((resolve) => pool.hold(resolve));
  };
  return {
    cpuMs,
    custom,
    pool,
    run,
    work(res) {
      const p = run();
      if (p === undefined) return ok(res);
      return p.then(
        () => ok(res),
        () => failed(res),
      );
    },
    warm(req, res) {
      if (req.url !== '/warm') return false;
      res.writeHead(204);
      res.end();
      return true;
    },
  };
}

/** A mode's server before it listens, and what the mode adds to it. */
interface ModeServer {
  readonly server: http.Server;
  readonly governor?: Governor;
  /** When the protection is fully active (ms since the epoch). @default when the mode was set up */
  readonly readyAtEpochMs?: number;
  /** The guard's decisions since the last call (spillway). */
  readonly takeDecisions?: () => DecisionSecond;
  /** Stops what the mode started (timers, samplers). */
  readonly stop?: () => void;
  /** Closes a framework that owns the server (Fastify); else the server is closed directly. */
  readonly closeFramework?: () => Promise<void>;
}

/** Plain node:http: no protection. */
function unprotectedServer(h: Handler): ModeServer {
  return {
    server: http.createServer((req, res) => {
      if (!h.warm(req, res)) void h.work(res);
    }),
  };
}

/**
 * Spillway's HTTP guard: a governor, a Shedder (unless left out; its refusals counted as shed), and
 * the parts `options.guard` asks for. The governor's factor changes and the guard's decisions are
 * recorded.
 */
function spillwayServer(options: LiveServerOptions, h: Handler, counts: Counts): ModeServer {
  const g = createGovernor({ ...(options.governor ?? {}) });
  const parts = options.guard ?? {};
  const shedder = parts.noShedder ? undefined : new Shedder({ factor: g, ...(options.shedder ?? {}) });
  const keyLimit = parts.keyLimit;
  const limiter =
    keyLimit === undefined
      ? undefined
      : createLimiter({ ratePerSec: keyLimit.ratePerSec, burst: keyLimit.burst, factor: g });
  const guard = createHttpGuard({
    ...(shedder === undefined
      ? {}
      : {
          shedder: {
            admit(o: Parameters<Shedder['admit']>[0]) {
              const d = shedder.admit(o);
              if (!d.allowed) counts.shed++;
              return d;
            },
            complete: (cost?: number) => shedder.complete(cost),
          },
        }),
    ...(limiter === undefined ? {} : { limiter, key: (req) => String(req.headers['x-source'] ?? 'none') }),
    ...(parts.concurrency === undefined ? {} : { concurrency: { ...parts.concurrency } }),
    ...(parts.turnBudgetMs === undefined ? {} : { turnBudgetMs: parts.turnBudgetMs }),
    ...(parts.feedGovernor === undefined ? {} : { feedGovernor: parts.feedGovernor }),
    governor: g,
    bypass: ['/warm'],
    priority: (req) => {
      const p = req.headers['x-priority'];
      return p === 'critical' || p === 'sheddable' ? p : 'normal';
    },
  });
  const listener = guard.wrap((req, res) => {
    if (!h.warm(req, res)) void h.work(res);
  });
  const server = http.createServer(listener);
  g.on('change', (r) => {
    if (counts.factorChanges.at(-1)?.factor !== r.appliedFactor) {
      counts.factorChanges.push({ epochMs: epochNow(), factor: r.appliedFactor });
    }
  });
  g.start();
  const readyAtEpochMs = epochNow() + g.options.warmupMs;
  const decisions = new DecisionRecorder();
  decisions.start();
  return {
    server,
    governor: g,
    readyAtEpochMs,
    takeDecisions: () => decisions.take(),
    stop: () => {
      decisions.stop();
      g.stop();
      shedder?.close();
      limiter?.close();
      guard.close();
    },
  };
}

/** toobusy-js as its README shows: `if (toobusy()) res.send(503, ...)`, default maxLag 70 ms. */
async function toobusyServer(h: Handler): Promise<ModeServer> {
  const toobusy = ((await peer('toobusy-js')) as { default: TooBusy }).default;
  const server = http.createServer((req, res) => {
    if (h.warm(req, res)) return;
    if (toobusy()) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end("I'm busy right now, sorry.");
      return;
    }
    void h.work(res);
  });
  return { server, stop: () => toobusy.shutdown() };
}

/** overload-protection with its README's configuration for core http: `if (protect(req, res) === true) return`. */
async function overloadProtectionServer(h: Handler): Promise<ModeServer> {
  const factory = ((await peer('overload-protection')) as { default: OverloadProtectionFactory }).default;
  const protect = factory('http', {
    production: true,
    clientRetrySecs: 1,
    sampleInterval: 5,
    maxEventLoopDelay: 42,
    maxHeapUsedBytes: 0,
    maxRssBytes: 0,
    errorPropagationMode: false,
    logging: false,
    logStatsOnReq: false,
  });
  const server = http.createServer((req, res) => {
    if (h.warm(req, res)) return;
    if (protect(req, res) === true) return;
    void h.work(res);
  });
  return { server, stop: () => protect.stop?.() };
}

/**
 * Fastify with @fastify/under-pressure and its README's example thresholds for event-loop delay and
 * utilisation (heap and RSS limits left out: they are absolute sizes that mean nothing here).
 */
async function underPressureServer(h: Handler): Promise<ModeServer> {
  const fastify = ((await peer('fastify')) as { default: FastifyFactory }).default;
  const underPressure = ((await peer('@fastify/under-pressure')) as { default: unknown }).default;
  const app = fastify({ logger: false, keepAliveTimeout: 120_000 });
  await app.register(underPressure as never, { maxEventLoopDelay: 1000, maxEventLoopUtilization: 0.98 });
  app.get('/warm', (_req: unknown, reply: FastifyReply) => reply.code(204).send());
  if (h.custom === undefined && h.pool === undefined) {
    app.get('/', (_req: unknown, reply: FastifyReply) => {
      burn(h.cpuMs);
      reply.type('text/plain').send('ok');
    });
  } else {
    app.get('/', async (_req: unknown, reply: FastifyReply) => {
      await h.run();
      return reply.type('text/plain').send('ok');
    });
  }
  await app.ready();
  return { server: app.server, closeFramework: () => app.close() };
}

function modeServer(options: LiveServerOptions, h: Handler, counts: Counts): ModeServer | Promise<ModeServer> {
  switch (options.mode) {
    case 'none':
      return unprotectedServer(h);
    case 'spillway':
      return spillwayServer(options, h, counts);
    case 'toobusy':
      return toobusyServer(h);
    case 'overload-protection':
      return overloadProtectionServer(h);
    case 'under-pressure':
      return underPressureServer(h);
  }
}

/**
 * The server's own view, once a second: the governor's state (spillway), the same event-loop delay
 * measure for every mode, and the guard's decisions. Returns its stop.
 */
function sampleSeconds(counts: Counts, m: ModeServer): () => void {
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  let lastSecond = Math.floor(epochNow() / 1000);
  let lastSampleAt = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const blockedMs = now - lastSampleAt;
    lastSampleAt = now;
    const nowSec = Math.floor(epochNow() / 1000);
    if (nowSec === lastSecond) return;
    const snap = m.governor?.snapshot();
    const maxMs = eld.count > 0 ? eld.max / 1e6 : 0;
    const p99Ms = eld.count > 0 ? eld.percentile(99) / 1e6 : 0;
    // A loop blocked across whole seconds ran no sampler in them: they share this reading, and
    // the block itself (the time since the last sample) is their loop delay.
    const decided = m.takeDecisions?.();
    for (let sec = lastSecond; sec < nowSec; sec++) {
      const refusedInSecond = Object.keys(counts.refusedSlices).some(
        (k) => Math.floor(Number(k) / 10) === sec,
      );
      counts.seconds.push({
        epochSec: sec,
        factor: snap?.appliedFactor ?? 1,
        dominant: snap?.dominant?.name,
        state: snap?.state ?? (refusedInSecond ? 'shedding' : 'open'),
        pressure: snap?.pressure ?? 0,
        smoothedPressure: snap?.smoothedPressure ?? 0,
        eventLoopDelayP99Ms: Math.max(p99Ms, nowSec - lastSecond > 1 ? blockedMs : 0),
        eventLoopDelayMaxMs: Math.max(maxMs, nowSec - lastSecond > 1 ? blockedMs : 0),
        ...(decided === undefined ? {} : { decisions: decided }),
      });
    }
    eld.reset();
    lastSecond = nowSec;
  }, 50);
  timer.unref();
  return () => {
    clearInterval(timer);
    eld.disable();
  };
}

/** Starts the server in this process. */
export async function startServer(options: LiveServerOptions): Promise<RunningServer> {
  const mode = options.mode;
  if (!LIVE_MODES.includes(mode)) throw new ConfigError('mode', mode, `one of ${LIVE_MODES.join(', ')}`);
  const cpuMs = options.cpuMs ?? 2;
  if (!(cpuMs >= 0) || !Number.isFinite(cpuMs)) throw new ConfigError('cpuMs', cpuMs, 'a finite number >= 0');
  const h = handlerFor(options, cpuMs);
  const counts = new Counts(mode !== 'spillway');
  const setUpAt = epochNow();
  const m = await modeServer(options, h, counts);
  const server = m.server;
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 0;
  server.prependListener('request', counts.track);
  const stopSampling = sampleSeconds(counts, m);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    mode,
    readyAtEpochMs: m.readyAtEpochMs ?? setUpAt,
    stats: () => counts.stats(),
    async close() {
      stopSampling();
      m.stop?.();
      server.closeAllConnections();
      if (m.closeFramework) await m.closeFramework();
      else await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A fixed set of async slots (a connection pool): FIFO waiters, each slot held `holdMs`. */
class SlotPool {
  #free: number;
  readonly #holdMs: number;
  readonly #waiting: (() => void)[] = [];
  #head = 0;

  constructor(slots: number, holdMs: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new ConfigError('pool.slots', slots, 'an integer >= 1');
    if (!(holdMs >= 0) || !Number.isFinite(holdMs))
      throw new ConfigError('pool.holdMs', holdMs, 'a finite number >= 0');
    this.#free = slots;
    this.#holdMs = holdMs;
  }

  /** Runs `done` once a slot has been held for `holdMs`. */
  hold(done: () => void): void {
    if (this.#free > 0) {
      this.#free--;
      this.#run(done);
    } else this.#waiting.push(done);
  }

  #run(done: () => void): void {
    setTimeout(() => {
      done();
      if (this.#head < this.#waiting.length) {
        const next = this.#waiting[this.#head++]!;
        if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
          this.#waiting.splice(0, this.#head);
          this.#head = 0;
        }
        this.#run(next);
      } else this.#free++;
    }, this.#holdMs);
  }
}

/** Counts the guard's decisions from `spillway:decision`, a second at a time (see DecisionSecond). */
class DecisionRecorder {
  #admitted = 0;
  #refused: Record<string, number> = {};
  #keyFactor = Infinity;
  #keyLimit = Infinity;
  #waited = 0;
  #waitSum = 0;
  #waitMax = 0;
  readonly #onMessage = (m: unknown): void => {
    const d = m as DecisionMessage;
    if (d.outcome === 'queued') return;
    if (d.queueWaitMs !== undefined) {
      this.#waited++;
      this.#waitSum += d.queueWaitMs;
      if (d.queueWaitMs > this.#waitMax) this.#waitMax = d.queueWaitMs;
    }
    if (d.outcome === 'admitted') this.#admitted++;
    else if (d.outcome !== 'canceled') {
      const k = `${d.stage}:${d.reason}`;
      this.#refused[k] = (this.#refused[k] ?? 0) + 1;
    }
    // An admission carries the key limiter's decision (the quota), a key refusal its own.
    if ((d.outcome === 'admitted' || d.stage === 'key') && Number.isFinite(d.limit)) {
      if (d.factor < this.#keyFactor) this.#keyFactor = d.factor;
      if (d.limit < this.#keyLimit) this.#keyLimit = d.limit;
    }
  };

  start(): void {
    subscribe(DECISION_CHANNEL, this.#onMessage);
  }

  stop(): void {
    unsubscribe(DECISION_CHANNEL, this.#onMessage);
  }

  /** The counts since the last call, and a fresh start. */
  take(): DecisionSecond {
    const out: DecisionSecond = {
      admitted: this.#admitted,
      refused: this.#refused,
      keyFactor: Number.isFinite(this.#keyFactor) ? this.#keyFactor : null,
      keyLimit: Number.isFinite(this.#keyLimit) ? this.#keyLimit : null,
      waited: this.#waited,
      queueMeanMs: this.#waited > 0 ? this.#waitSum / this.#waited : 0,
      queueMaxMs: this.#waitMax,
    };
    this.#admitted = 0;
    this.#refused = {};
    this.#keyFactor = Infinity;
    this.#keyLimit = Infinity;
    this.#waited = 0;
    this.#waitSum = 0;
    this.#waitMax = 0;
    return out;
  }
}

interface TooBusy {
  (): boolean;
  shutdown(): void;
}
type OverloadProtectionFactory = (
  framework: 'http',
  config: Record<string, unknown>,
) => ((req: http.IncomingMessage, res: http.ServerResponse) => boolean) & { stop?: () => void };
interface FastifyReply {
  code(n: number): FastifyReply;
  type(t: string): FastifyReply;
  send(body?: unknown): FastifyReply;
}
interface FastifyApp {
  register(plugin: never, opts: Record<string, unknown>): Promise<unknown>;
  get(path: string, handler: (req: unknown, reply: FastifyReply) => unknown): void;
  ready(): Promise<unknown>;
  close(): Promise<void>;
  readonly server: http.Server;
}
type FastifyFactory = (opts: Record<string, unknown>) => FastifyApp;
