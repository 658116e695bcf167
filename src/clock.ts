/**
 * Time for everything in Spillway. No other module reads the real clock: the governor, the
 * limiters and the simulator all take a `Clock`, so tests and simulations run on exact,
 * virtual time.
 */
import { performance } from 'node:perf_hooks';

/** A scheduled callback that can be cancelled. Cancelling twice, or after it fired, is harmless. */
export interface TimerHandle {
  cancel(): void;
}

/** How a timer is scheduled. */
export interface TimerOptions {
  /**
   * Keep the process alive while the timer is pending. For waits a caller awaits (`acquire`),
   * which are work in progress; background timers (sampling, cleanup) leave it off.
   * @default false
   */
  readonly keepAlive?: boolean;
}

export interface Clock {
  /** Milliseconds from a monotonic source. Only differences are meaningful. */
  now(): number;
  /**
   * Calls `fn` once, `ms` milliseconds from now (0 or less, or NaN: as soon as possible). A delay of
   * any length is honoured, never shortened; `Infinity` never fires.
   */
  setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerHandle;
}

/**
 * The longest delay one Node.js timer holds: 2^31 − 1 ms (about 24.8 days). Node fires a longer one
 * after 1 ms (with a TimeoutOverflowWarning), so longer delays are chained from timers of this size.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** What `createSystemClock` builds on: the platform's clock and timers (injectable for tests). */
export interface TimerHost<H = unknown> {
  now(): number;
  setTimeout(fn: () => void, ms: number): H;
  clearTimeout(handle: H): void;
  /** Lets the process exit while `handle` is pending. */
  unref(handle: H): void;
}

/**
 * The pin of `systemClock.now()` (see `pinSystemTime`): a reading (>= 0) it answers, PINNING while
 * pinned but not yet read (the first read inside the pin becomes the reading), NOT_PINNED otherwise.
 */
const NOT_PINNED = -1;
const PINNING = -2;
let pinnedMs = NOT_PINNED;

/**
 * Makes `systemClock.now()` answer one reading, the first taken from now on, until
 * `unpinSystemTime` is called with what this returned: one admission decision, one instant. The HTTP
 * guard pins around a request's synchronous pipeline run, whose stages (key limiter peeked then
 * charged, loop-turn budget, shedder, the governor feed) each read the clock: one
 * `performance.now()` instead of five (~40 ns each), and every stage decides at the same time;
 * nothing is read when no stage reads. Always unpin in a `finally`: the pin must not outlive the
 * synchronous call (anything awaited later reads the real clock). Nested pins keep the outer
 * instant. Returns the previous pin.
 */
export function pinSystemTime(): number {
  const previous = pinnedMs;
  if (previous === NOT_PINNED) pinnedMs = PINNING;
  return previous;
}

/**
 * Ends a pin: `previous` is what `pinSystemTime` returned. Only the outermost pin lets the clock
 * run again: an inner one leaves the reading (perhaps taken inside it) to the outer pin.
 */
export function unpinSystemTime(previous: number): void {
  if (previous === NOT_PINNED) pinnedMs = NOT_PINNED;
}

function nodeNow(): number {
  if (pinnedMs >= 0) return pinnedMs;
  const t = performance.now();
  if (pinnedMs === PINNING) pinnedMs = t;
  return t;
}

const NODE_HOST: TimerHost<ReturnType<typeof setTimeout>> = {
  now: nodeNow,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h),
  unref: (h) => {
    h.unref();
  },
};

/** A timer that never fires: the answer to `setTimeout(fn, Infinity)`. */
const NEVER: TimerHandle = Object.freeze({ cancel: () => {} });

/**
 * A real clock on `host`. A delay up to MAX_TIMER_MS is one host timer. A longer one is chained:
 * timers of at most MAX_TIMER_MS, each re-reading `now()` to compute what is left, and the last one
 * of exactly what is left; so `fn` never runs before its due time, and a wait of years costs one
 * timer every ~24.8 days. Timers are `unref()`ed unless `keepAlive` is set.
 */
export function createSystemClock<H>(host: TimerHost<H>): Clock {
  return Object.freeze({
    now: () => host.now(),
    setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerHandle {
      if (ms === Infinity) return NEVER;
      const delay = ms > 0 ? ms : 0;
      const keepAlive = options?.keepAlive === true;
      const arm = (wait: number, next: () => void): H => {
        const h = host.setTimeout(next, wait);
        if (!keepAlive) host.unref(h);
        return h;
      };
      if (delay <= MAX_TIMER_MS) {
        const h = arm(delay, fn);
        return { cancel: () => host.clearTimeout(h) };
      }
      const due = host.now() + delay;
      let cancelled = false;
      let current: H;
      const step = (): void => {
        if (cancelled) return;
        const left = due - host.now();
        current = left > MAX_TIMER_MS ? arm(MAX_TIMER_MS, step) : arm(Math.max(0, left), fn);
      };
      current = arm(MAX_TIMER_MS, step);
      return {
        cancel: () => {
          cancelled = true;
          host.clearTimeout(current);
        },
      };
    },
  });
}

/**
 * The real clock: `performance.now()` and `unref()`ed timers (unless `keepAlive`), so a pending
 * background timer never keeps a process alive. Delays beyond MAX_TIMER_MS are chained.
 */
export const systemClock: Clock = createSystemClock(NODE_HOST);

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * Virtual time for tests and simulations. Time moves only when `advance` or `set` is called;
 * due timers then fire in time order (ties in the order they were scheduled), each seeing
 * `now()` equal to its own due time, including timers scheduled by other timers.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  // A binary min-heap ordered by (at, seq): simulations schedule millions of timers.
  #heap: ManualTimer[] = [];

  constructor(startMs = 0) {
    if (!Number.isFinite(startMs)) {
      throw new TypeError(`ManualClock: startMs must be a finite number, got ${String(startMs)}`);
    }
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number, _options?: TimerOptions): TimerHandle {
    if (ms === Infinity) return NEVER;
    const timer: ManualTimer = {
      at: this.#now + (ms > 0 ? ms : 0),
      seq: this.#seq++,
      fn,
      cancelled: false,
    };
    this.#push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Number of timers waiting to fire (cancelled ones excluded). */
  get pendingTimers(): number {
    let n = 0;
    for (const t of this.#heap) if (!t.cancelled) n++;
    return n;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`ManualClock.advance: ms must be a finite number >= 0, got ${String(ms)}`);
    }
    this.set(this.#now + ms);
  }

  /** Moves time forward to `timeMs` (never backwards), firing due timers on the way. */
  set(timeMs: number): void {
    if (!(timeMs >= this.#now) || !Number.isFinite(timeMs)) {
      throw new RangeError(
        `ManualClock.set: timeMs must be finite and >= now (${this.#now}), got ${String(timeMs)}`,
      );
    }
    for (;;) {
      const next = this.#heap[0];
      if (next === undefined || next.at > timeMs) break;
      this.#pop();
      if (next.cancelled) continue;
      this.#now = next.at;
      next.fn();
    }
    this.#now = timeMs;
  }

  /** Fires timers one by one until none is left or `limitMs` of virtual time has passed. */
  runAll(limitMs = 3_600_000): void {
    const end = this.#now + limitMs;
    for (;;) {
      const next = this.#heap[0];
      if (next === undefined || next.at > end) break;
      this.set(next.at);
    }
  }

  #less(a: ManualTimer, b: ManualTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(t: ManualTimer): void {
    const h = this.#heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
