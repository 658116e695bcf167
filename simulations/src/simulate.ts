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
import { ManualClock, type TimerHandle, type TimerOptions } from 'spillway';
import { Clients } from './clients.js';
import { RequestHandling } from './handling.js';
import { createProtection, type Protection, type ProtectionOverrides } from './protection.js';
import { deriveRandom, sampler } from './random.js';
import { Recorder } from './recorder.js';
import type { SimReport } from './report.js';
import type { Mode, Scenario } from './scenario.js';
import { EventLoop, loopClock, modelSignal, Pool, type ServerState } from './server.js';

export { episodeTotals, overloadedSeconds } from './episodes.js';

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
  const nSeconds = Math.ceil(scenario.durationSec);
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
  const waits = protection.pipeline.waits;
  const recorder = new Recorder(scenario, mode);
  const unsubscribe = protection.governor.subscribe((f) => recorder.factorChanged(clock.now(), f));

  loop.onWait((w) => recorder.loopWaited(clock.now(), w));

  for (let i = 0; i < nSeconds; i++) {
    clock.setTimeout(
      () => {
        const snap = protection.governor.snapshot();
        recorder.secondEnded(i, {
          factor: protection.factor(),
          pressure: snap.pressure,
          smoothedPressure: snap.smoothedPressure,
          dominant: snap.dominant && snap.dominant.pressure > 0 ? snap.dominant.name : null,
          oldestWaitMs: loop.oldestWaitMs(clock.now()),
          inFlight: state.inFlight,
        });
      },
      Math.min(durationMs, (i + 1) * 1000),
    );
  }

  // --- the server's handling of requests, and the clients -----------------------------------------
  const handling = new RequestHandling({
    clock,
    server: srv,
    loop,
    state,
    pool,
    protection,
    recorder,
    service,
    routing,
    headerRandom,
    retry: (a, retryAfterMs) => clients.retry(a, retryAfterMs),
  });
  const clients = new Clients({ scenario, seed, clock, recorder, waits, arrive: (a) => handling.arrive(a) });

  // --- run --------------------------------------------------------------------------------------
  clients.start();
  const stop = () => {
    unsubscribe();
    protection.stop();
  };
  return {
    clock,
    durationMs,
    waits,
    pending: () => handling.pending,
    abandon: stop,
    finish() {
      stop();
      return recorder.report(seed, options.label, state.inFlight, performance.now() - wallStart);
    },
  };
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
