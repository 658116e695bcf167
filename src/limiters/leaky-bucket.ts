/**
 * A leaky bucket used as a shaper: requests join a bounded queue and leave it at a steady
 * `ratePerSec·f`, so what comes out is smooth whatever comes in.
 *
 * The bucket holds a level (the cost still queued, in cost units), which drains at `ratePerSec·f`.
 * A request of `cost` joins when `level + cost <= capacity·f`; it leaves once everything ahead of
 * it has drained, `delayMs = level / (ratePerSec·f)` from now, and the next one leaves
 * `cost / (ratePerSec·f)` after it. A full queue refuses. Memory O(1) per key (plus one entry per
 * pending `schedule` promise).
 *
 * A factor change applies from its moment on: the level drains at the old rate up to now, then at
 * the new one. Queued work is never dropped: after a cut the level may exceed the new capacity,
 * and the bucket admits nothing until it has drained below it.
 */
import { type Clock, MAX_TIMER_MS, systemClock, type TimerHandle } from '../clock.js';
import { AbortError, ConfigError } from '../errors.js';
import {
  abortSignalOption,
  callOptions,
  clockOption,
  knownKeys,
  positiveNumber,
  ratio,
} from '../validate.js';
import { checkCost, exactWait, refusalReason } from './window.js';
import { type FactorOption, followFactor, resolveFactor } from './factor-option.js';
import type { Decision, RateAlgorithm } from './types.js';

/** Admission and departure compare with a tolerance of one part in 10^9 of the capacity. */
export const LEAKY_EPSILON = 1e-9;

export interface LeakyBucketOptions {
  /** Cost leaving the bucket per second at factor 1 (requests per second, when every cost is 1). A finite number > 0. */
  ratePerSec: number;
  /** Cost the queue holds at factor 1, the request that is leaving included. A finite number > 0. */
  capacity: number;
  /** @default systemClock */
  clock?: Clock;
  /**
   * Where the throttle factor comes from: a FactorSource to follow (a Governor, a ManualFactor),
   * or a fixed number from 0 to 1. @default 1
   */
  factor?: FactorOption;
}

/** A decision from a shaper: when admitted, how long the caller should wait before going ahead. */
export interface ShapedDecision extends Decision {
  /**
   * Milliseconds from now until this request leaves the bucket (everything ahead of it has left),
   * at the factor in force; 0 when the bucket was empty, and 0 when refused.
   */
  readonly delayMs: number;
}

export interface ScheduleOptions {
  /** Cancels the wait: the promise rejects with an AbortError and the request's place is given up. */
  signal?: AbortSignal;
}

interface Scheduled {
  /** Cumulative cost admitted before this request: it leaves when that much has drained. */
  position: number;
  cost: number;
  joinedAt: number;
  decision: ShapedDecision;
  resolve: (d: ShapedDecision) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const OPTIONS = ['ratePerSec', 'capacity', 'clock', 'factor'] as const;
const KEEP_ALIVE = Object.freeze({ keepAlive: true });

export class LeakyBucket implements RateAlgorithm {
  readonly ratePerSec: number;
  readonly capacity: number;
  readonly #clock: Clock;
  readonly #ratePerMs: number;
  readonly #eps: number;
  #factor: number;
  #level = 0;
  #last: number;
  /** Cumulative cost admitted; what has drained is `#admitted − #level`. Rebased when no one waits. */
  #admitted = 0;
  readonly #waiting: Scheduled[] = [];
  #timer: TimerHandle | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(options: LeakyBucketOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object with ratePerSec and capacity');
    }
    knownKeys('LeakyBucket', options, OPTIONS);
    this.ratePerSec = positiveNumber('ratePerSec', options.ratePerSec);
    this.capacity = positiveNumber('capacity', options.capacity);
    this.#clock = clockOption('clock', options.clock, systemClock);
    const factor = resolveFactor(options.factor);
    this.#factor = factor.initial;
    this.#ratePerMs = this.ratePerSec / 1000;
    this.#eps = this.capacity * LEAKY_EPSILON;
    this.#last = this.#clock.now();
    this.#unsubscribe = followFactor(factor, (f) => this.setFactor(f));
  }

  /** Stops following the factor source (waiting callers keep their places, at the last factor). */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  get factor(): number {
    return this.#factor;
  }

  /** Cost queued now (not yet drained). */
  get level(): number {
    this.#settle(this.#clock.now());
    return this.#level;
  }

  /** Number of `schedule` callers still waiting to leave. */
  get waiting(): number {
    return this.#waiting.length;
  }

  setFactor(factor: number): void {
    ratio('factor', factor);
    if (factor === this.#factor) return;
    this.#settle(this.#clock.now());
    this.#factor = factor;
    if (this.#waiting.length > 0) this.#reschedule();
  }

  /**
   * Joins the queue when `cost` fits and returns the delay after which the caller should go
   * ahead (`delayMs`); refuses when the queue is full, with the exact wait until it fits.
   */
  take(cost = 1): ShapedDecision {
    checkCost(cost, this.capacity, 'capacity');
    return this.#decide(cost, true);
  }

  peek(cost = 1): ShapedDecision {
    checkCost(cost, this.capacity, 'capacity');
    return this.#decide(cost, false);
  }

  /**
   * Joins the queue like `take`, and resolves when the request leaves the bucket, with the
   * decision (`delayMs` then says how long it waited). A refused request resolves at once with
   * the refusal. Waiting requests follow factor changes: a cut makes them leave later, a rise
   * sooner. Rejects only with an AbortError when `signal` aborts; the place is given up, and the
   * cost behind it moves up.
   */
  schedule(cost = 1, options?: ScheduleOptions): Promise<ShapedDecision> {
    checkCost(cost, this.capacity, 'capacity');
    const signal = abortSignalOption('signal', callOptions(options).signal);
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason));
    const position = this.#admitted;
    const d = this.#decide(cost, true);
    if (!d.allowed) return Promise.resolve(d);
    if (this.#waiting.length === 0 && d.delayMs === 0) return Promise.resolve(d);
    return new Promise<ShapedDecision>((resolve, reject) => {
      const entry: Scheduled = {
        position,
        cost,
        joinedAt: this.#clock.now(),
        decision: d,
        resolve,
        signal,
        onAbort: undefined,
      };
      if (signal) {
        entry.onAbort = () => {
          this.#cancel(entry);
          reject(new AbortError(signal.reason));
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#waiting.push(entry);
      this.#reschedule();
    });
  }

  #settle(now: number): void {
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#level = Math.max(0, this.#level - this.#ratePerMs * this.#factor * elapsed);
      this.#last = now;
    }
  }

  #levelAt(t: number): number {
    return Math.max(0, this.#level - this.#ratePerMs * this.#factor * Math.max(0, t - this.#last));
  }

  #decide(cost: number, charge: boolean): ShapedDecision {
    const now = this.#clock.now();
    this.#settle(now);
    const f = this.#factor;
    const scaled = this.capacity * f;
    const r = this.#ratePerMs * f;
    const level = this.#level;
    const eps = this.#eps;
    if (level + cost <= scaled + eps) {
      // scaled > 0 here, so r > 0.
      const after = level + cost;
      if (charge) {
        this.#level = after;
        this.#admitted += cost;
      }
      return {
        allowed: true,
        reason: 'ok',
        remaining: Math.max(0, scaled - after),
        limit: scaled,
        retryAfterMs: 0,
        resetMs: after / r,
        factor: f,
        delayMs: level <= eps ? 0 : level / r,
      };
    }
    let retryAfterMs = Infinity;
    if (cost <= scaled + eps && r > 0) {
      retryAfterMs = exactWait(
        now,
        (level + cost - scaled) / r,
        (t) => this.#levelAt(t) + cost <= scaled + eps,
      );
    }
    return {
      allowed: false,
      reason: refusalReason(level + cost, cost, this.capacity, scaled, eps),
      remaining: Math.max(0, scaled - level),
      limit: scaled,
      retryAfterMs,
      resetMs: r > 0 ? level / r : level > 0 ? Infinity : 0,
      factor: f,
      delayMs: 0,
    };
  }

  /** Releases the scheduled requests that have left, and sets one timer for the next one. */
  #reschedule(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    const now = this.#clock.now();
    this.#settle(now);
    const drained = this.#admitted - this.#level;
    while (this.#waiting.length > 0 && this.#waiting[0]!.position <= drained + this.#eps) {
      const w = this.#waiting.shift()!;
      this.#detach(w);
      w.resolve({ ...w.decision, delayMs: now - w.joinedAt });
    }
    const head = this.#waiting[0];
    if (head === undefined) {
      // Rebase the cumulative count so that it stays small and exact.
      this.#admitted = this.#level;
      return;
    }
    // A scheduled request is its caller's work in progress: the timer keeps the process alive.
    // Nothing drains at factor 0 (setFactor reschedules); a MAX_TIMER_MS timer holds the process
    // open meanwhile and only re-checks.
    const r = this.#ratePerMs * this.#factor;
    const wait = r > 0 ? Math.min((head.position - drained) / r, MAX_TIMER_MS) : MAX_TIMER_MS;
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.#reschedule();
      },
      wait,
      KEEP_ALIVE,
    );
  }

  #cancel(entry: Scheduled): void {
    const i = this.#waiting.indexOf(entry);
    if (i < 0) return;
    this.#waiting.splice(i, 1);
    this.#detach(entry);
    this.#settle(this.#clock.now());
    // Its cost has not started to drain (it waits for what is ahead): take it out of the queue.
    this.#level = Math.max(0, this.#level - entry.cost);
    this.#admitted -= entry.cost;
    for (let j = i; j < this.#waiting.length; j++) this.#waiting[j]!.position -= entry.cost;
    this.#reschedule();
  }

  #detach(w: Scheduled): void {
    if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
  }
}
