/**
 * What the window algorithms share: their options, their cost check, exact waits, the refusal
 * reason, and the base class that holds the limit, the window, the clock and the factor.
 */
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { clockOption, knownKeys, positiveNumber, ratio } from '../validate.js';
import { type FactorOption, followFactor, type ResolvedFactor, resolveFactor } from './factor-option.js';
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
  /**
   * Where the throttle factor comes from: a FactorSource to follow (a Governor, a ManualFactor),
   * or a fixed number from 0 to 1. @default 1
   */
  factor?: FactorOption;
}

/** The window options after validation. */
export interface ResolvedWindowOptions {
  readonly limit: number;
  readonly windowMs: number;
  readonly clock: Clock;
  readonly factor: ResolvedFactor;
}

/** @internal Validates the options every window algorithm shares. */
export function windowOptions(where: string, options: WindowOptions): ResolvedWindowOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object with limit and windowMs');
  }
  knownKeys(where, options, ['limit', 'windowMs', 'clock', 'factor']);
  return {
    limit: positiveNumber('limit', options.limit),
    windowMs: positiveNumber('windowMs', options.windowMs),
    clock: clockOption('clock', options.clock, systemClock, false),
    factor: resolveFactor(options.factor),
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

/**
 * A window algorithm scaled by a throttle factor: `take` and `peek` check the cost and call
 * `decide`; `setFactor` applies a new factor from this moment on (the counts already kept count
 * against the new limit: a cut may leave a window over it, and then it admits nothing more until
 * enough of it has passed; a rise gives the room up to the new limit).
 */
export abstract class WindowAlgorithm implements RateAlgorithm {
  /** Cost admitted per window at factor 1. */
  readonly limit: number;
  /** Window length, in ms. */
  readonly windowMs: number;
  protected readonly clock: Clock;
  /** Tolerance of comparisons with the limit: WINDOW_EPSILON of it. */
  protected readonly eps: number;
  #factor: number;
  #unsubscribe: (() => void) | undefined;

  constructor(where: string, options: WindowOptions) {
    const o = windowOptions(where, options);
    this.limit = o.limit;
    this.windowMs = o.windowMs;
    this.clock = o.clock;
    this.#factor = o.factor.initial;
    this.eps = this.limit * WINDOW_EPSILON;
    this.#unsubscribe = followFactor(o.factor, (f) => this.setFactor(f));
  }

  /** Stops following the factor source. */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  get factor(): number {
    return this.#factor;
  }

  setFactor(factor: number): void {
    this.#factor = ratio('factor', factor);
  }

  take(cost = 1): Decision {
    checkCost(cost, this.limit, 'limit');
    return this.decide(cost, true);
  }

  peek(cost = 1): Decision {
    checkCost(cost, this.limit, 'limit');
    return this.decide(cost, false);
  }

  /** Decides for `cost` now, and records it when `charge` is true and it is admitted. */
  protected abstract decide(cost: number, charge: boolean): Decision;
}
