/**
 * Per-key windows: a fixed window or a sliding-window counter for each key, on the same slot table
 * (typed arrays, CLOCK eviction) as the per-key token buckets, deciding with the very functions
 * `FixedWindow` and `SlidingWindowCounter` use. For a user who wants "100 requests per minute per
 * client" in the HTTP guard rather than a rate and a burst.
 *
 * A key whose windows have run out decides like a missing key, so eviction drops it first. A
 * request's priority applies through its effective factor: it is admitted while the window's count
 * plus its cost fits `limit·e(f, priority)`.
 */
import { type Clock, systemClock } from '../../clock.js';
import { ConfigError } from '../../errors.js';
import { clockOption, integer, knownKeys, oneOf, positiveNumber } from '../../validate.js';
import { type FactorOption, followFactor, resolveFactor } from '../factor-option.js';
import { decideFixedWindow, fixedWindowIdle, type WindowShape } from '../fixed-window.js';
import { effectiveFactor, priorityLevel } from '../priority.js';
import { decideSlidingWindow, slidingWindowIdle } from '../sliding-window.js';
import type { Decision } from '../types.js';
import { WINDOW_EPSILON } from '../window.js';
import type { KeyedDecision } from './engine.js';
import { boundKey } from './key-bound.js';
import { KEYED_DEFAULTS, type TakeOptions } from './options.js';
import { SlotTable } from './slot-table.js';

/** The per-key algorithms `createLimiter` offers. */
export type KeyedAlgorithm = 'token-bucket' | 'fixed-window' | 'sliding-window';

export interface KeyedWindowLimiterOptions {
  /** `'fixed-window'` (aligned windows, one counter per key) or `'sliding-window'` (the two-window counter). */
  algorithm: 'fixed-window' | 'sliding-window';
  /** Cost admitted per window for each key at factor 1. A finite number > 0. */
  limit: number;
  /** Window length, in ms. A finite number > 0. */
  windowMs: number;
  /** The most keys held at once (CLOCK eviction, idle keys first). An integer from 1 to 2^30. @default 100_000 */
  maxKeys?: number;
  /** A FactorSource to follow, or a fixed factor from 0 to 1. @default 1 */
  factor?: FactorOption;
  /** @default systemClock */
  clock?: Clock;
}

const OPTIONS = ['algorithm', 'limit', 'windowMs', 'maxKeys', 'factor', 'clock'] as const;

type Decide = typeof decideFixedWindow;

export class KeyedWindowLimiter {
  readonly algorithm: 'fixed-window' | 'sliding-window';
  readonly limit: number;
  readonly windowMs: number;
  readonly maxKeys: number;
  readonly #clock: Clock;
  readonly #slots: SlotTable;
  readonly #shape: WindowShape;
  readonly #decide: Decide;
  readonly #idle: (state: Float64Array, at: number, windowMs: number, now: number) => boolean;
  readonly #stride: number;
  readonly #canDrop: (slot: number, now: number) => boolean;
  #f: number;
  #unsubscribe: (() => void) | undefined;

  constructor(options: KeyedWindowLimiterOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object with algorithm, limit and windowMs');
    }
    knownKeys('createLimiter', options, OPTIONS);
    this.algorithm = oneOf('algorithm', options.algorithm, ['fixed-window', 'sliding-window']);
    this.limit = positiveNumber('limit', options.limit);
    this.windowMs = positiveNumber('windowMs', options.windowMs);
    this.maxKeys = integer('maxKeys', options.maxKeys ?? KEYED_DEFAULTS.maxKeys, 1, 2 ** 30);
    this.#clock = clockOption('clock', options.clock, systemClock);
    const fixed = this.algorithm === 'fixed-window';
    this.#decide = fixed ? decideFixedWindow : decideSlidingWindow;
    this.#idle = fixed ? fixedWindowIdle : slidingWindowIdle;
    this.#stride = fixed ? 2 : 3;
    this.#shape = { windowMs: this.windowMs, limit: this.limit, eps: this.limit * WINDOW_EPSILON };
    this.#slots = new SlotTable({ maxKeys: this.maxKeys, block: false, tiers: false, stride: this.#stride });
    this.#canDrop = (slot, now) => this.#idle(this.#slots.state, this.#stride * slot, this.windowMs, now);
    const factor = resolveFactor(options.factor);
    this.#f = factor.initial;
    this.#unsubscribe = followFactor(factor, (f) => {
      this.#f = f;
    });
  }

  /** Keys held now. */
  get size(): number {
    return this.#slots.size;
  }

  /** The throttle factor in force, from 0 to 1. */
  get factor(): number {
    return this.#f;
  }

  /** Decides for `key` now, and counts the cost in its window when admitted. */
  take(key: string, options?: TakeOptions): KeyedDecision {
    return this.#run(key, options, true);
  }

  /** What `take` would answer now, without counting or creating the key. */
  peek(key: string, options?: TakeOptions): KeyedDecision {
    return this.#run(key, options, false);
  }

  /**
   * Gives back what an admitted `take(key, options)` counted (a later stage refused the request,
   * or its client left before it ran): the cost comes off the count of the window it went into,
   * never below 0, and nothing comes off once that window has passed (for a sliding window: once
   * it is older than the previous one). The window is found from the key's state: a take since the
   * next window began moves the state there, and a refund after that counts off the new window
   * (an edge case bounded by one cost per refund). At the same instant the key's counts are what
   * they were before the take. A key back at empty counts when the table is full is forgotten (its
   * slot freed). The priority does not matter: a window counts the cost whatever the priority.
   */
  refund(key: string, options?: TakeOptions): void {
    if (typeof key !== 'string') throw new ConfigError('key', key, 'a string');
    if (key.length > 85) key = boundKey(key);
    const cost = this.#costOf(options);
    const slots = this.#slots;
    const s = slots.map.get(key);
    if (s === undefined) return;
    const state = slots.state;
    const at = this.#stride * s;
    const index = Math.floor(this.#clock.now() / this.windowMs);
    const held = state[at]!;
    // The count of the window the charge went into: the fixed window's own, the sliding one's
    // current count (the previous window's, seen from the next one).
    const c = this.#stride === 2 ? (held === index ? at + 1 : -1) : held === index || held === index - 1 ? at + 2 : -1;
    if (c < 0) return;
    const left = state[c]! - cost;
    state[c] = left > 0 ? left : 0;
    // Empty counts as seen now: decides like a missing key.
    const empty = this.#stride === 2 ? state[at + 1] === 0 : state[at + 2] === 0 && (held < index || state[at + 1] === 0);
    if (empty && slots.size >= slots.maxKeys) slots.delete(key);
  }

  /** Forgets `key`: its next request starts with empty windows. */
  delete(key: string): void {
    this.#slots.delete(boundKey(key));
  }

  /** Forgets every key. */
  clear(): void {
    this.#slots.clear();
  }

  /** Stops following the factor source. */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  #run(key: string, options: TakeOptions | undefined, charge: boolean): KeyedDecision {
    if (typeof key !== 'string') throw new ConfigError('key', key, 'a string');
    if (key.length > 85) key = boundKey(key);
    const cost = this.#costOf(options);
    let e = this.#f;
    if (options?.priority !== undefined) e = effectiveFactor(e, priorityLevel(options.priority));
    const now = this.#clock.now();
    const slots = this.#slots;
    let s = slots.map.get(key);
    if (s === undefined) {
      // Decide on an empty scratch state; create the key only when something is counted.
      const scratch = this.#fresh();
      const d = this.#decide(scratch, 0, this.#shape, now, e, cost, charge);
      if (charge && d.allowed) {
        s = slots.create(key, now, 0, this.#canDrop);
        slots.state.set(scratch, this.#stride * s);
      }
      return keyed(d);
    }
    if (charge) slots.ref[s] = 1;
    return keyed(this.#decide(slots.state, this.#stride * s, this.#shape, now, e, cost, charge));
  }

  /** The options' cost, validated (1 when left out). */
  #costOf(options: TakeOptions | undefined): number {
    let cost: unknown = 1;
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) {
        throw new ConfigError('options', options, 'an object { cost?, priority? } or undefined');
      }
      if (options.cost !== undefined) cost = options.cost;
    }
    if (typeof cost !== 'number' || !Number.isFinite(cost) || !(cost > 0) || cost > this.limit) {
      throw new ConfigError('cost', cost, `a finite number > 0 and <= limit (${this.limit})`);
    }
    return cost;
  }

  #fresh(): Float64Array {
    return this.#stride === 2 ? new Float64Array([-Infinity, 0]) : new Float64Array([-Infinity, 0, 0]);
  }
}

function keyed(d: Decision): KeyedDecision {
  return {
    allowed: d.allowed,
    reason: d.reason,
    remaining: d.remaining,
    limit: d.limit,
    retryAfterMs: d.retryAfterMs,
    resetMs: d.resetMs,
    factor: d.factor,
    scope: 'key',
  };
}
