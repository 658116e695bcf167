/**
 * A model of issue 9's pool-bound server on virtual time, for the concurrency limiter's tests: a
 * FIFO pool of `slots` connections each held `holdMs`, behind the limiter; open-loop arrivals at
 * each segment's rate, evenly spaced or Poisson (seeded, so every run is the same).
 */
import type { ManualClock } from '../../../src/clock.js';
import { seeded } from '../../governor/helpers.js';
import type { ConcurrencyLimiter } from '../../../src/limiters/concurrency/limiter.js';

export interface Segment {
  /** How long the segment lasts, in ms. */
  readonly ms: number;
  /** Arrivals per second. */
  readonly perSec: number;
}

export interface PoolRun {
  admitted: number;
  refused: number;
  completed: number;
  maxLatencyMs: number;
  /** Latency of every completed request (arrival to release), in ms. */
  latenciesMs: number[];
  /** When each completed request released its slot, in clock ms. */
  completedAtMs: number[];
  /** When each refusal was answered, in clock ms. */
  refusedAtMs: number[];
  reasons: Record<string, number>;
}


/** Schedules the arrivals on `clock` and returns the run's counters, filled as time advances. */
export function runPool(
  l: ConcurrencyLimiter,
  clock: ManualClock,
  opts: {
    slots: number;
    holdMs: number;
    segments: readonly Segment[];
    /**
     * `uniform`: evenly spaced; `poisson`: independent arrivals; `batches`: Poisson batches of 1 to
     * 6 requests at once (mean 3.5), as a server reads several requests in one event-loop turn.
     * @default 'uniform'
     */
    arrivals?: 'uniform' | 'poisson' | 'batches';
    seed?: number;
  },
): PoolRun {
  let free = opts.slots;
  const poolQueue: (() => void)[] = [];
  const run: PoolRun = {
    admitted: 0,
    refused: 0,
    completed: 0,
    maxLatencyMs: 0,
    latenciesMs: [],
    completedAtMs: [],
    refusedAtMs: [],
    reasons: {},
  };
  const useConnection = (done: () => void) => {
    const start = () => {
      free--;
      clock.setTimeout(() => {
        free++;
        done();
        const next = poolQueue.shift();
        if (next) next();
      }, opts.holdMs);
    };
    if (free > 0) start();
    else poolQueue.push(start);
  };
  const arrive = () => {
    const t0 = clock.now();
    void l.acquire().then((d) => {
      if (!d.allowed) {
        run.refused++;
        run.refusedAtMs.push(clock.now());
        run.reasons[d.reason] = (run.reasons[d.reason] ?? 0) + 1;
        return;
      }
      run.admitted++;
      useConnection(() => {
        d.release();
        run.completed++;
        const latency = clock.now() - t0;
        run.latenciesMs.push(latency);
        run.completedAtMs.push(clock.now());
        run.maxLatencyMs = Math.max(run.maxLatencyMs, latency);
      });
    });
  };
  const rnd = seeded(opts.seed ?? 1);
  let t = clock.now();
  for (const s of opts.segments) {
    const end = t + s.ms;
    const batch = opts.arrivals === 'batches' ? 3.5 : 1;
    const meanGapMs = (1000 * batch) / s.perSec;
    for (;;) {
      const gap =
        opts.arrivals === undefined || opts.arrivals === 'uniform'
          ? meanGapMs
          : -Math.log(1 - rnd()) * meanGapMs;
      if (t + gap >= end) break;
      t += gap;
      const n = opts.arrivals === 'batches' ? 1 + Math.floor(rnd() * 6) : 1;
      for (let k = 0; k < n; k++) clock.setTimeout(arrive, t - clock.now());
    }
    t = end;
  }
  return run;
}

/** Moves virtual time on in small steps, letting promise continuations (admissions) run between them. */
export async function advance(clock: ManualClock, ms: number, stepMs = 0.5): Promise<void> {
  const end = clock.now() + ms;
  while (clock.now() < end) {
    clock.set(Math.min(end, clock.now() + stepMs));
    await Promise.resolve();
    await Promise.resolve();
  }
}

/** For each `sliceMs` slice of [fromMs, toMs): did any refusal come in it? */
export function refusedSlices(
  refusedAtMs: readonly number[],
  fromMs: number,
  toMs: number,
  sliceMs = 100,
): boolean[] {
  const slices = new Array<boolean>(Math.ceil((toMs - fromMs) / sliceMs)).fill(false);
  for (const t of refusedAtMs) {
    const i = Math.floor((t - fromMs) / sliceMs);
    if (i >= 0 && i < slices.length) slices[i] = true;
  }
  return slices;
}

/** On/off transitions of a refusing/not-refusing series that starts off: a clean overload is 2. */
export function onOffSwitches(slices: readonly boolean[]): number {
  let n = 0;
  let prev = false;
  for (const on of slices) {
    if (on !== prev) n++;
    prev = on;
  }
  return n;
}

/** The p-th percentile (0..100) of `xs`, nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))]!;
}
