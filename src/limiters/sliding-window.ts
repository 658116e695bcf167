/**
 * Two sliding-window limiters whose limit scales with a throttle factor.
 *
 * - `SlidingWindowCounter`: the two-window weighted approximation (Cloudflare's). It keeps the
 *   cost admitted in the current aligned window and in the previous one, and assumes the previous
 *   window's traffic was spread evenly over it:
 *
 *       estimate(t) = prev·(1 − elapsed/windowMs) + current,   elapsed = t − start of current window
 *
 *   and admits while `estimate + cost <= limit·f`. Memory O(1). Within any interval of length
 *   Δ ≤ windowMs it admits at most `limit·f·(1 + Δ/windowMs)` (a burst at a window edge is about
 *   `limit·f`, not the fixed window's 2·limit), and it can refuse a request that an exact window
 *   would admit when the previous window's traffic came early.
 * - `SlidingWindowLog`: exact. It stores the time and cost of every admission still in the window
 *   `(t − windowMs, t]` and admits while their sum plus `cost` is at most `limit·f`. Memory
 *   O(limit / smallest cost) entries (admissions at the same instant share one).
 */
import type { Decision } from './types.js';
import type { WindowShape } from './fixed-window.js';
import { exactWait, refusalReason, WindowAlgorithm, type WindowOptions } from './window.js';

export type { WindowOptions } from './window.js';

/** Previous and current counts as seen from window `index` (state: index, previous, current). */
function countsFor(state: Float64Array, at: number, index: number, which: 0 | 1): number {
  const i = state[at]!;
  if (index === i) return state[at + 1 + which]!;
  if (index === i + 1) return which === 0 ? state[at + 2]! : 0;
  return 0;
}

function estimateAt(state: Float64Array, at: number, w: number, t: number): number {
  const index = Math.floor(t / w);
  const elapsed = t - index * w;
  return countsFor(state, at, index, 0) * (1 - elapsed / w) + countsFor(state, at, index, 1);
}

/**
 * @internal One sliding-window-counter decision over state kept elsewhere: `state[at]` is the
 * current window's index, `state[at + 1]` the previous window's count, `state[at + 2]` the
 * current one's. Shared by `SlidingWindowCounter` and the keyed limiter's per-key windows.
 */
export function decideSlidingWindow(
  state: Float64Array,
  at: number,
  shape: WindowShape,
  now: number,
  f: number,
  cost: number,
  charge: boolean,
): Decision {
  const w = shape.windowMs;
  const index = Math.floor(now / w);
  const prev = countsFor(state, at, index, 0);
  const cur = countsFor(state, at, index, 1);
  const elapsed = now - index * w;
  const estimate = prev * (1 - elapsed / w) + cur;
  const scaled = shape.limit * f;
  const eps = shape.eps;
  if (estimate + cost <= scaled + eps) {
    if (charge) {
      state[at] = index;
      state[at + 1] = prev;
      state[at + 2] = cur + cost;
    }
    const after = estimate + cost;
    return {
      allowed: true,
      reason: 'ok',
      remaining: Math.max(0, scaled - after),
      limit: scaled,
      retryAfterMs: 0,
      resetMs: resetMs(now, w, index, prev, charge ? cur + cost : cur),
      factor: f,
    };
  }
  let retryAfterMs = Infinity;
  if (cost <= scaled + eps) {
    // The estimate falls linearly as the previous window's weight runs out, then jumps to the
    // current count becoming the previous one; solve estimate(t) + cost = scaled.
    const room = Math.max(0, scaled - cost);
    const base =
      cur <= room
        ? w * (1 - (room - cur) / prev) - elapsed // within this window (prev > 0 here)
        : w - elapsed + w * (1 - room / cur); // in the next one, where `cur` is the previous
    retryAfterMs = exactWait(now, base, (t) => estimateAt(state, at, w, t) + cost <= scaled + eps);
  }
  return {
    allowed: false,
    reason: refusalReason(estimate + cost, cost, shape.limit, scaled, eps),
    remaining: Math.max(0, scaled - estimate),
    limit: scaled,
    retryAfterMs,
    resetMs: resetMs(now, w, index, prev, cur),
    factor: f,
  };
}

/** @internal Whether a sliding-window state counts nothing at `now` (it decides like a new key). */
export function slidingWindowIdle(state: Float64Array, at: number, windowMs: number, now: number): boolean {
  return state[at]! + 1 < Math.floor(now / windowMs);
}

/** Until the estimate is 0: the end of the next window when the current one has counts. */
function resetMs(now: number, w: number, index: number, prev: number, cur: number): number {
  if (cur > 0) return exactWait(now, (index + 2) * w - now, (t) => Math.floor(t / w) >= index + 2);
  if (prev > 0) return exactWait(now, (index + 1) * w - now, (t) => Math.floor(t / w) >= index + 1);
  return 0;
}

export class SlidingWindowCounter extends WindowAlgorithm {
  /** Window index, previous count, current count (see decideSlidingWindow). */
  readonly #state = new Float64Array([-Infinity, 0, 0]);

  readonly #shape: WindowShape;

  constructor(options: WindowOptions) {
    super('SlidingWindowCounter', options);
    this.#shape = { windowMs: this.windowMs, limit: this.limit, eps: this.eps };
  }

  /** The weighted estimate of the cost admitted in the last `windowMs`, now. */
  get estimate(): number {
    return estimateAt(this.#state, 0, this.windowMs, this.clock.now());
  }

  protected decide(cost: number, charge: boolean): Decision {
    return decideSlidingWindow(this.#state, 0, this.#shape, this.clock.now(), this.factor, cost, charge);
  }
}

export class SlidingWindowLog extends WindowAlgorithm {
  // Admission times and costs, oldest first, from #head on (a queue over two arrays).
  #times: number[] = [];
  #costs: number[] = [];
  #head = 0;
  #sum = 0;

  constructor(options: WindowOptions) {
    super('SlidingWindowLog', options);
  }

  /** Cost admitted in the last `windowMs`, exactly. */
  get count(): number {
    this.#evict(this.clock.now());
    return this.#sum;
  }

  /** Entries held (the memory in use): at most one per distinct admission instant in the window. */
  get entries(): number {
    this.#evict(this.clock.now());
    return this.#times.length - this.#head;
  }

  /** Drops the admissions that left the window: an entry at `t0` counts while `now < t0 + windowMs`. */
  #evict(now: number): void {
    const times = this.#times;
    while (this.#head < times.length && times[this.#head]! + this.windowMs <= now) {
      this.#sum -= this.#costs[this.#head]!;
      this.#head++;
    }
    if (this.#head === times.length) {
      // Empty: reset, which also clears the rounding a long run of += and -= leaves in the sum.
      this.#times = [];
      this.#costs = [];
      this.#head = 0;
      this.#sum = 0;
    } else if (this.#head > 1024 && this.#head * 2 > times.length) {
      this.#times = times.slice(this.#head);
      this.#costs = this.#costs.slice(this.#head);
      this.#head = 0;
    }
  }

  protected decide(cost: number, charge: boolean): Decision {
    const now = this.clock.now();
    this.#evict(now);
    const f = this.factor;
    const scaled = this.limit * f;
    const eps = this.eps;
    const sum = this.#sum;
    const times = this.#times;
    if (sum + cost <= scaled + eps) {
      if (charge) {
        const last = times.length - 1;
        if (last >= this.#head && times[last] === now) this.#costs[last]! += cost;
        else {
          times.push(now);
          this.#costs.push(cost);
        }
        this.#sum = sum + cost;
      }
      const after = sum + cost;
      return {
        allowed: true,
        reason: 'ok',
        remaining: Math.max(0, scaled - after),
        limit: scaled,
        retryAfterMs: 0,
        resetMs: this.#resetMs(now, charge ? now : undefined),
        factor: f,
      };
    }
    let retryAfterMs = Infinity;
    if (cost <= scaled + eps) {
      // Walk the oldest admissions until enough have expired for this cost to fit.
      let s = sum;
      for (let i = this.#head; i < times.length; i++) {
        s -= this.#costs[i]!;
        if (s + cost <= scaled + eps) {
          const expiry = times[i]! + this.windowMs;
          retryAfterMs = exactWait(now, expiry - now, (t) => t >= expiry);
          break;
        }
      }
    }
    return {
      allowed: false,
      reason: refusalReason(sum + cost, cost, this.limit, scaled, eps),
      remaining: Math.max(0, scaled - sum),
      limit: scaled,
      retryAfterMs,
      resetMs: this.#resetMs(now, undefined),
      factor: f,
    };
  }

  /** Until the newest admission leaves the window. */
  #resetMs(now: number, admittedAt: number | undefined): number {
    const newest =
      admittedAt ?? (this.#times.length > this.#head ? this.#times[this.#times.length - 1] : undefined);
    if (newest === undefined) return 0;
    const expiry = newest + this.windowMs;
    return exactWait(now, expiry - now, (t) => t >= expiry);
  }
}
