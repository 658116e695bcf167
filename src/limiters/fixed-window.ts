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

export class FixedWindow extends WindowAlgorithm {
  /** Index of the window `#count` belongs to. */
  #index = -Infinity;
  #count = 0;

  constructor(options: WindowOptions) {
    super('FixedWindow', options);
  }

  /** Cost admitted in the current window. */
  get count(): number {
    return this.#countAt(this.clock.now());
  }

  #countAt(t: number): number {
    return Math.floor(t / this.windowMs) === this.#index ? this.#count : 0;
  }

  protected decide(cost: number, charge: boolean): Decision {
    const now = this.clock.now();
    const w = this.windowMs;
    const index = Math.floor(now / w);
    const count = index === this.#index ? this.#count : 0;
    const f = this.factor;
    const scaled = this.limit * f;
    const untilNext = () => exactWait(now, (index + 1) * w - now, (t) => Math.floor(t / w) > index);
    if (count + cost <= scaled + this.eps) {
      const after = count + cost;
      if (charge) {
        this.#index = index;
        this.#count = after;
      }
      return {
        allowed: true,
        reason: 'ok',
        remaining: Math.max(0, scaled - after),
        limit: scaled,
        retryAfterMs: 0,
        resetMs: untilNext(),
        factor: f,
      };
    }
    // Refused: the next window starts empty, so the wait is to its start, unless the cost cannot
    // fit even an empty window at this factor.
    return {
      allowed: false,
      reason: refusalReason(count + cost, cost, this.limit, scaled, this.eps),
      remaining: Math.max(0, scaled - count),
      limit: scaled,
      retryAfterMs: cost > scaled + this.eps ? Infinity : untilNext(),
      resetMs: count > 0 ? untilNext() : 0,
      factor: f,
    };
  }
}
