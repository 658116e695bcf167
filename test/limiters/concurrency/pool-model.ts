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
  /**
   * With `stalls`: the loop's delay as a source reads it, the mean wait of a callback due at a
   * random moment since the previous read, `∫ wait(t) dt / W` over the stalls (in ms).
   */
  loopDelay: { readMs(): number };
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
    /**
     * A stalling event loop: it runs for an exponential time of mean `meanRunMs`, then runs nothing
     * for an exponential time of mean `meanStallMs`, and so on (seeded by `seed`, default 7); every
     * callback due in a stall (an arrival, a connection's timer) runs when the stall ends. The mean
     * wait of a callback due at a random moment is `meanStallMs² / (meanRunMs + meanStallMs)`.
     * @default none
     */
    stalls?: {
      readonly meanRunMs: number;
      readonly meanStallMs: number;
      readonly seed?: number;
      /**
       * `true`: a connection is free again only when the loop runs its timer (an in-process pool);
       * `false`: the downstream frees it on time and only the answer waits for the loop (a remote
       * service that keeps its own slots). @default true
       */
      readonly holdSlots?: boolean;
    };
  },
): PoolRun {
  const stalls: [number, number][] = [];
  if (opts.stalls !== undefined) {
    const r = seeded(opts.stalls.seed ?? 7);
    const total = opts.segments.reduce((a, s) => a + s.ms, 0) + 10_000;
    for (let t = clock.now(); t < clock.now() + total; ) {
      t += -Math.log(1 - r()) * opts.stalls.meanRunMs;
      const end = t + -Math.log(1 - r()) * opts.stalls.meanStallMs;
      stalls.push([t, end]);
      t = end;
    }
  }
  /** When a callback due at `t` runs: at the end of the stall it falls in, else at `t`. */
  const runsAt = (t: number) => {
    let lo = 0;
    let hi = stalls.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (stalls[mid]![1] <= t) lo = mid + 1;
      else hi = mid;
    }
    const s = stalls[lo];
    return s !== undefined && s[0] <= t ? s[1] : t;
  };
  let free = opts.slots;
  const poolQueue: (() => void)[] = [];
  let lastRead = clock.now();
  const loopDelay = {
    readMs() {
      const to = clock.now();
      const from = lastRead;
      lastRead = to;
      if (!(to > from)) return 0;
      // Inside a stall [a, b) a callback due at t waits b − t: over [from, to) that integrates to
      // ((b − x)² − (b − y)²) / 2 with [x, y) the stall's part within the interval.
      let area = 0;
      for (const [a, b] of stalls) {
        if (b <= from) continue;
        if (a >= to) break;
        const x = Math.max(a, from);
        const y = Math.min(b, to);
        area += ((b - x) ** 2 - (b - y) ** 2) / 2;
      }
      return area / (to - from);
    },
  };
  const run: PoolRun = {
    loopDelay,
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
      const now = clock.now();
      const due = now + opts.holdMs;
      if (opts.stalls?.holdSlots === false) {
        // The downstream is done on time; the answer runs when the loop gets to it.
        clock.setTimeout(() => {
          free++;
          const next = poolQueue.shift();
          if (next) next();
        }, opts.holdMs);
        clock.setTimeout(done, runsAt(due) - now);
        return;
      }
      clock.setTimeout(
        () => {
          free++;
          done();
          const next = poolQueue.shift();
          if (next) next();
        },
        runsAt(due) - now,
      );
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
      for (let k = 0; k < n; k++) clock.setTimeout(arrive, runsAt(t) - clock.now());
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
