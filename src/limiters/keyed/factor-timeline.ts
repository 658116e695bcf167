/**
 * The factor timeline of a keyed limiter: the factor in force and a short log of its changes, so
 * that a bucket settled before a change can be brought up to date exactly without every key being
 * touched at the change.
 *
 * From `logT[i]` on the factor is `logF[i]`; before `logT[0]` it is `before`. A bucket settled at
 * `last` replays the segments after `last`: it accrues at each segment's factor up to that
 * segment's capacity, and each change clamps it to the new capacity (growth creates no tokens).
 * When the log is full the owner brings every stale bucket up to date once (`record` answers
 * `'reset'`) and the log starts empty at the new factor.
 *
 * Pure arithmetic on numbers: no clock, no keys, testable alone.
 */
import { refill } from '../bucket-math.js';

/** Number of factor changes kept before every stale bucket is brought up to date at once. */
export const FACTOR_LOG_SIZE = 64;

/** What `record` did with a change: appended it, or found the log full and emptied it. */
export type RecordOutcome = 'logged' | 'reset';

export class FactorTimeline {
  /** The factor in force now, from 0 to 1. */
  factor: number;
  /** The factor before the first logged change. */
  before: number;
  /** Time of the latest logged change; -Infinity when the log is empty. */
  lastChange = -Infinity;
  /** The latest time any bucket was settled at (a change is never recorded in a bucket's past). */
  lastSettle = -Infinity;
  /** When the log was last emptied (construction, or overflow). */
  start: number;
  readonly #logT = new Float64Array(FACTOR_LOG_SIZE);
  readonly #logF = new Float64Array(FACTOR_LOG_SIZE);
  #len = 0;

  constructor(factor: number, now: number) {
    this.factor = factor;
    this.before = factor;
    this.start = now;
  }

  /** Number of changes in the log. */
  get length(): number {
    return this.#len;
  }

  /** When a change made now takes effect: never before the latest settle. */
  changeTime(now: number): number {
    return now > this.lastSettle ? now : this.lastSettle;
  }

  /**
   * Tokens at `now` of a bucket (limits at factor 1: `ratePerMs`, `burst`) that held `x` at `last`.
   * One refill at the current factor when no change happened since `last`, else a replay.
   */
  tokensAt(x: number, last: number, now: number, ratePerMs: number, burst: number): number {
    if (last >= this.lastChange) {
      const f = this.factor;
      return refill(x, now - last, ratePerMs * f, burst * f);
    }
    return this.replay(x, last, now, ratePerMs, burst, false);
  }

  /**
   * Tokens at `now` of a bucket holding `x` at `last`, through every logged change after `last`
   * (and at `last` too when `inclusive`).
   */
  replay(x: number, last: number, now: number, ratePerMs: number, burst: number, inclusive: boolean): number {
    const logT = this.#logT;
    const logF = this.#logF;
    const len = this.#len;
    let i = len;
    while (i > 0 && (logT[i - 1]! > last || (inclusive && logT[i - 1]! === last))) i--;
    let f = i === 0 ? this.before : logF[i - 1]!;
    let t = last;
    for (; i < len; i++) {
      const ti = logT[i]!;
      x = refill(x, ti - t, ratePerMs * f, burst * f);
      f = logF[i]!;
      const cap = burst * f;
      if (x > cap) x = cap;
      t = ti;
    }
    return refill(x, now - t, ratePerMs * f, burst * f);
  }

  /**
   * Records a change to `next` at time `at` (from `changeTime`). On `'reset'` the log was full:
   * the caller must have brought every stale bucket up to `at` first (see `isFull`); the log is
   * now empty and starts at `at`.
   */
  record(at: number, next: number): RecordOutcome {
    let outcome: RecordOutcome;
    if (this.#len === FACTOR_LOG_SIZE) {
      this.#len = 0;
      this.lastChange = -Infinity;
      this.before = next;
      this.start = at;
      this.lastSettle = at;
      outcome = 'reset';
    } else {
      this.#logT[this.#len] = at;
      this.#logF[this.#len] = next;
      this.#len++;
      this.lastChange = at;
      outcome = 'logged';
    }
    this.factor = next;
    return outcome;
  }

  /** True when the next `record` will empty the log. */
  get isFull(): boolean {
    return this.#len === FACTOR_LOG_SIZE;
  }
}
