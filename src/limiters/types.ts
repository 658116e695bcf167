/** The shapes every limiter shares. Pure types: no runtime code. */

/**
 * How late a request is shed. Named classes, or a number from 0 (shed first) to 1 (shed last):
 * `sheddable` is 0, `normal` 0.5, `critical` 1.
 */
export type Priority = 'critical' | 'normal' | 'sheddable' | number;

/**
 * Why a decision came out as it did.
 * - `ok`: admitted.
 * - `limited`: the key is over its own quota (HTTP 429). It would be refused with no throttling too.
 * - `shed`: refused only because the throttle factor reduced the limit: the process is overloaded (HTTP 503).
 * - `blocked`: the key kept hammering after a refusal and sits out its block period (HTTP 429).
 */
export type DecisionReason = 'ok' | 'limited' | 'shed' | 'blocked';

/** An admission decision. A value, never an exception: the refused path costs what the admitted one does. */
export interface Decision {
  readonly allowed: boolean;
  readonly reason: DecisionReason;
  /** Tokens (or requests) left in the window after this decision. */
  readonly remaining: number;
  /** The limit in force for this decision: the capacity after scaling by the factor. */
  readonly limit: number;
  /**
   * Milliseconds until the same request would be admitted, if nothing else takes first and the
   * factor stays as it is; 0 when admitted. Exact: a retry after exactly this wait succeeds.
   * `Infinity` when it can never be admitted at the current factor (for example a factor of 0).
   */
  readonly retryAfterMs: number;
  /** Milliseconds until the limiter is back to full capacity (the window resets). */
  readonly resetMs: number;
  /** The throttle factor applied to this decision, from 0 to 1. */
  readonly factor: number;
}

/** Where a limiter reads the throttle factor from: a Governor, or a fixed/settable factor. */
export interface FactorSource {
  /** The throttle factor now, from 0 to 1 (1 is no throttling). */
  readonly factor: number;
  /** The effective factor for one priority, from 0 to 1 (see `effectiveFactor`). */
  factorFor(priority: Priority): number;
  /** Calls `listener` after every factor change, with the new factor. Returns an unsubscribe function. */
  subscribe(listener: (factor: number) => void): () => void;
}

/** A single-key rate-limiting algorithm, scaled by a factor. TokenBucket, windows and leaky bucket implement it. */
export interface RateAlgorithm {
  /** Decides synchronously and charges `cost` when admitted. */
  take(cost?: number): Decision;
  /** What `take(cost)` would answer now, without charging. */
  peek(cost?: number): Decision;
  /** The factor in force, from 0 to 1. */
  readonly factor: number;
  /** Applies a new factor from this moment on (never retroactively). */
  setFactor(factor: number): void;
}
