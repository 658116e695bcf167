/** The shapes of the concurrency limiter. Pure types: no runtime code. */
import type { Priority } from '../types.js';

/**
 * Why a unit of work was not admitted:
 * - `queue-full`: the wait queue held `maxQueue` waiters (or a higher-priority newcomer took this one's place).
 * - `deadline`: it waited `maxWaitMs` (or could not wait at all: `maxWaitMs` 0) without a slot.
 * - `codel`: the queue stood for an interval and this waiter's sojourn reached the target.
 * - `shed`: the throttle factor shortened the queue for its priority.
 * - `aborted`: its AbortSignal fired while it waited (or before).
 * - `closed`: the limiter was closed.
 */
export type ConcurrencyRefusalReason = 'queue-full' | 'deadline' | 'codel' | 'shed' | 'aborted' | 'closed';

export interface ReleaseOptions {
  /**
   * The work failed in a way that says the downstream is overloaded (a timeout): the adaptive
   * limit shrinks. @default false
   */
  readonly dropped?: boolean;
  /** Leave this unit out of the latency estimate (it failed fast, it was cancelled). @default true */
  readonly sample?: boolean;
}

interface DecisionBase {
  /** Time spent in the wait queue, in ms (0 when admitted or refused at once). */
  readonly waitedMs: number;
  /** The concurrency limit for this request's priority when decided (after the factor). */
  readonly limit: number;
  /** The throttle factor when decided, from 0 to 1. */
  readonly factor: number;
  readonly priority: Priority;
}

/** Admitted: one slot (of `cost` units) is held until `release` is called. */
export interface ConcurrencyPermit extends DecisionBase {
  readonly allowed: true;
  readonly reason: 'ok';
  readonly retryAfterMs: 0;
  readonly cost: number;
  /**
   * Gives the slot back. Idempotent: the first call releases and returns true, later calls
   * return false and change nothing.
   */
  release(options?: ReleaseOptions): boolean;
}

export interface ConcurrencyRefusal extends DecisionBase {
  readonly allowed: false;
  readonly reason: ConcurrencyRefusalReason;
  /** A suggested wait before trying again, in ms (>= 1): the mean hold time times the queue ahead. */
  readonly retryAfterMs: number;
}

export type ConcurrencyDecision = ConcurrencyPermit | ConcurrencyRefusal;

export interface ConcurrencyAcquireOptions {
  /** @default 'normal' */
  priority?: Priority;
  /** Units of concurrency this work holds, an integer >= 1. @default 1 */
  cost?: number;
  /** The longest this request may wait for a slot, in ms; 0 refuses at once when none is free. @default the limiter's maxWaitMs */
  maxWaitMs?: number;
  /** Gives up the wait: the decision is a refusal with reason `aborted`. */
  signal?: AbortSignal;
  /**
   * Who the work is for (a tenant, a client): with keys, the limiter refuses the keys that send
   * more than their fair share first (see ConcurrencyLimiter, "Fair between keys"). @default none
   * (no fairness)
   */
  key?: string;
}

/** What a limiter emits, for metrics, logs and the queue-time signal. */
export interface ConcurrencyEvents {
  queued: (e: { readonly priority: Priority; readonly waiting: number }) => void;
  admitted: (e: {
    readonly priority: Priority;
    readonly waitedMs: number;
    readonly inFlight: number;
    readonly limit: number;
  }) => void;
  refused: (e: {
    readonly priority: Priority;
    readonly reason: ConcurrencyRefusalReason;
    readonly waitedMs: number;
    readonly retryAfterMs: number;
    readonly limit: number;
  }) => void;
  released: (e: { readonly heldMs: number; readonly inFlight: number }) => void;
  /** The (unscaled) limit changed: the adaptive estimate moved, or `update` set a new fixed limit. */
  limit: (e: { readonly limit: number; readonly previous: number }) => void;
}

export interface ConcurrencySnapshot {
  readonly inFlight: number;
  readonly waiting: number;
  /** The limit before the factor (learned or fixed). */
  readonly limit: number;
  /** The limit for `normal` priority after the factor. */
  readonly effectiveLimit: number;
  readonly factor: number;
  readonly adaptive: boolean;
  /** True while the queue stands (CoDel engaged, newest served first). */
  readonly standingQueue: boolean;
  /** Age of the oldest waiter, in ms (0 when none waits). */
  readonly oldestWaitMs: number;
  /** Mean hold time (EWMA), in ms; 0 before the first release. */
  readonly holdMs: number;
  /** The adaptive estimator's no-load rtt, in ms, when adaptive. */
  readonly rttNoLoadMs?: number;
  /** The event loop's delay over the adaptive estimator's last window, in ms, when adaptive. */
  readonly loopDelayMs?: number;
  readonly closed: boolean;
}
