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
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { knownKeys, positiveNumber, ratio } from '../validate.js';
import type { Decision, DecisionReason, RateAlgorithm } from './types.js';

/**
 * Admission compares with a tolerance of one part in 10^9 of the limit, so that fractional costs
 * that add up to the limit (0.1 + 0.2 + 0.7) are admitted despite floating-point rounding.
 */
export const WINDOW_EPSILON = 1e-9;

export interface WindowOptions {
  /** Cost admitted per window at factor 1 (requests, when every cost is 1). A finite number > 0. */
  limit: number;
  /** Window length, in ms. A finite number > 0. */
  windowMs: number;
  /** @default systemClock */
  clock?: Clock;
  /** The throttle factor at start, from 0 to 1. @default 1 */
  factor?: number;
}

/** @internal Validates the options every window algorithm shares. */
export function windowOptions(where: string, options: WindowOptions): Required<WindowOptions> {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object with limit and windowMs');
  }
  knownKeys(where, options, ['limit', 'windowMs', 'clock', 'factor']);
  return {
    limit: positiveNumber('limit', options.limit),
    windowMs: positiveNumber('windowMs', options.windowMs),
    clock: options.clock ?? systemClock,
    factor: ratio('factor', options.factor ?? 1),
  };
}

/** @internal Throws a ConfigError unless `cost` is a finite number > 0 and <= `max`. */
export function checkCost(cost: unknown, max: number, maxName: string): asserts cost is number {
  if (typeof cost !== 'number' || !Number.isFinite(cost) || !(cost > 0) || cost > max) {
    throw new ConfigError('cost', cost, `a finite number > 0 and <= ${maxName} (${max})`);
  }
}

/**
 * @internal The wait `d` from `now` after which `admits(now + d)` holds. `base` is the analytic
 * answer; `now + base` can land one rounding step short of the instant it was computed for (a
 * window edge, an expiry), so step up by ulps until the same predicate the limiter uses agrees.
 * That makes "advance by exactly retryAfterMs, then take" succeed.
 */
export function exactWait(now: number, base: number, admits: (t: number) => boolean): number {
  if (!Number.isFinite(base)) return base;
  let d = Math.max(0, base);
  let step = Math.max(Number.EPSILON * Math.max(Math.abs(now), Math.abs(d)), Number.MIN_VALUE);
  for (let i = 0; i < 80 && !admits(now + d); i++) {
    d += step;
    step *= 2;
  }
  return d;
}

/**
 * @internal Why a request of `cost` was refused. `shed` when only the factor stands in the way:
 * the cost exceeds the scaled limit (it can never pass at this factor), or it would pass at f = 1
 * with the same usage. `limited` when the key is over its own unscaled limit.
 */
export function refusalReason(
  usedPlusCost: number,
  cost: number,
  limit: number,
  scaledLimit: number,
  eps: number,
): DecisionReason {
  if (cost > scaledLimit + eps) return 'shed';
  return usedPlusCost > limit + eps ? 'limited' : 'shed';
}

const KNOWN = 'FixedWindow';

export class FixedWindow implements RateAlgorithm {
  readonly limit: number;
  readonly windowMs: number;
  readonly #clock: Clock;
  readonly #eps: number;
  #factor: number;
  /** Index of the window `#count` belongs to. */
  #index = -Infinity;
  #count = 0;

  constructor(options: WindowOptions) {
    const o = windowOptions(KNOWN, options);
    this.limit = o.limit;
    this.windowMs = o.windowMs;
    this.#clock = o.clock;
    this.#factor = o.factor;
    this.#eps = this.limit * WINDOW_EPSILON;
  }

  get factor(): number {
    return this.#factor;
  }

  /** Cost admitted in the current window. */
  get count(): number {
    return this.#countAt(this.#clock.now());
  }

  /**
   * Applies a new factor from this moment on: what the current window already admitted counts
   * against the new limit (a cut may leave it over, and then it admits nothing more until the
   * next window; a rise gives the rest of the window the room up to the new limit).
   */
  setFactor(factor: number): void {
    this.#factor = ratio('factor', factor);
  }

  take(cost = 1): Decision {
    checkCost(cost, this.limit, 'limit');
    return this.#decide(cost, true);
  }

  peek(cost = 1): Decision {
    checkCost(cost, this.limit, 'limit');
    return this.#decide(cost, false);
  }

  #countAt(t: number): number {
    return Math.floor(t / this.windowMs) === this.#index ? this.#count : 0;
  }

  #decide(cost: number, charge: boolean): Decision {
    const now = this.#clock.now();
    const w = this.windowMs;
    const index = Math.floor(now / w);
    const count = index === this.#index ? this.#count : 0;
    const f = this.#factor;
    const scaled = this.limit * f;
    const untilNext = () => exactWait(now, (index + 1) * w - now, (t) => Math.floor(t / w) > index);
    if (count + cost <= scaled + this.#eps) {
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
      reason: refusalReason(count + cost, cost, this.limit, scaled, this.#eps),
      remaining: Math.max(0, scaled - count),
      limit: scaled,
      retryAfterMs: cost > scaled + this.#eps ? Infinity : untilNext(),
      resetMs: count > 0 ? untilNext() : 0,
      factor: f,
    };
  }
}
