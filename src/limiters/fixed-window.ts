/**
 * A fixed-window counter whose limit scales with a throttle factor.
 *
 * Time is cut into windows aligned on the clock: window k covers `[k·windowMs, (k+1)·windowMs)`.
 * Each window counts the cost it admitted; a request of `cost` is admitted while
 * `count + cost <= limit·f`. There is no rounding: `limit·f` may be fractional (limit 10 at
 * f = 0.55 admits 5 requests of cost 1, since 6 > 5.5). Memory is one counter per key.
 *
 * The window's edge is its weakness: up to `limit` at the end of one window and `limit` again at
 * the start of the next, so 2·limit within a few milliseconds.
 */
import type { Decision } from './types.js';
import { exactWait, refusalReason, WindowAlgorithm, type WindowOptions } from './window.js';

export type { WindowOptions } from './window.js';

/** The fixed limits of one window decision: window length, limit at factor 1, tolerance. */
export interface WindowShape {
  readonly windowMs: number;
  readonly limit: number;
  readonly eps: number;
}

/**
 * @internal One fixed-window decision over state kept elsewhere: `state[at]` is the index of the
 * window `state[at + 1]` counts. Charges the state when `charge` and admitted. Shared by
 * `FixedWindow` (one key) and the keyed limiter's per-key windows.
 */
export function decideFixedWindow(
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
  const count = index === state[at] ? state[at + 1]! : 0;
  const scaled = shape.limit * f;
  const eps = shape.eps;
  if (count + cost <= scaled + eps) {
    const after = count + cost;
    if (charge) {
      state[at] = index;
      state[at + 1] = after;
    }
    return {
      allowed: true,
      reason: 'ok',
      remaining: Math.max(0, scaled - after),
      limit: scaled,
      retryAfterMs: 0,
      resetMs: untilNextWindow(now, index, w),
      factor: f,
    };
  }
  // Refused: the next window starts empty, so the wait is to its start, unless the cost cannot
  // fit even an empty window at this factor.
  return {
    allowed: false,
    reason: refusalReason(count + cost, cost, shape.limit, scaled, eps),
    remaining: Math.max(0, scaled - count),
    limit: scaled,
    retryAfterMs: cost > scaled + eps ? Infinity : untilNextWindow(now, index, w),
    resetMs: count > 0 ? untilNextWindow(now, index, w) : 0,
    factor: f,
  };
}

/** @internal Whether a fixed-window state counts nothing at `now` (it decides like a new key). */
export function fixedWindowIdle(state: Float64Array, at: number, windowMs: number, now: number): boolean {
  return state[at]! < Math.floor(now / windowMs);
}

function untilNextWindow(now: number, index: number, w: number): number {
  return exactWait(now, (index + 1) * w - now, (t) => Math.floor(t / w) > index);
}

export class FixedWindow extends WindowAlgorithm {
  /** The window index and the cost it admitted (see decideFixedWindow). */
  readonly #state = new Float64Array([-Infinity, 0]);

  readonly #shape: WindowShape;

  constructor(options: WindowOptions) {
    super('FixedWindow', options);
    this.#shape = { windowMs: this.windowMs, limit: this.limit, eps: this.eps };
  }

  /** Cost admitted in the current window. */
  get count(): number {
    return Math.floor(this.clock.now() / this.windowMs) === this.#state[0] ? this.#state[1]! : 0;
  }

  protected decide(cost: number, charge: boolean): Decision {
    return decideFixedWindow(this.#state, 0, this.#shape, this.clock.now(), this.factor, cost, charge);
  }
}
