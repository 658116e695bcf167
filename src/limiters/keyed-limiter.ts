/**
 * Keyed limiting: one token bucket per key (user, IP, tenant), an optional global bucket that every
 * request also passes, tiers, a block period for keys that keep hammering, all scaled by a throttle
 * factor, in bounded memory.
 *
 * `KeyedLimiter` is a thin facade over named parts in `./keyed/`:
 * - `slot-table.ts`: keys to slots, per-slot typed arrays, CLOCK eviction;
 * - `factor-timeline.ts`: the factor, the log of its changes and their replay;
 * - `tiers.ts`, `block.ts`, `global-bucket.ts`: the per-key policies and the process-wide bucket;
 * - `engine.ts`: the decision on the shared bucket arithmetic (`bucket-math.ts`);
 * - `options.ts`: the options, their defaults and validation.
 * docs/architecture.md draws how they fit.
 */
import { AbortError, ConfigError } from '../errors.js';
import { BlockPolicy } from './keyed/block.js';
import { type KeyedDecision, KeyedEngine, type Reservation } from './keyed/engine.js';
import { FactorTimeline } from './keyed/factor-timeline.js';
import { GlobalBucket } from './keyed/global-bucket.js';
import {
  type KeyedAcquireOptions,
  type KeyedLimiterOptions,
  resolveKeyedOptions,
  type TakeOptions,
} from './keyed/options.js';
import { SlotTable } from './keyed/slot-table.js';
import { type BucketLimits, TierTable } from './keyed/tiers.js';
import { KeyedWaiters } from './keyed/waiters.js';
import { KeyedWindowLimiter, type KeyedWindowLimiterOptions } from './keyed/window-limiter.js';
import { StoreLimiter, type StoreLimiterOptions } from './store-limiter.js';
import { boundKey, MAX_INLINE_KEY_CHARS } from './keyed/key-bound.js';

export type { KeyedDecision } from './keyed/engine.js';
export { FACTOR_LOG_SIZE } from './keyed/factor-timeline.js';
export type { KeyedAcquireOptions, KeyedLimiterOptions, TakeOptions } from './keyed/options.js';
export type { BucketLimits } from './keyed/tiers.js';
export {
  type KeyedAlgorithm,
  KeyedWindowLimiter,
  type KeyedWindowLimiterOptions,
} from './keyed/window-limiter.js';
import { abortSignalOption, waitOption } from '../validate.js';
export { StoreLimiter, type StoreLimiterOptions } from './store-limiter.js';
export { boundKey, MAX_KEY_BYTES } from './keyed/key-bound.js';

export class KeyedLimiter {
  /** The most keys held at once. */
  readonly maxKeys: number;
  /** Tokens per second of a key without a tier, at factor 1. */
  readonly ratePerSec: number;
  /** Capacity of a key without a tier, at factor 1. */
  readonly burst: number;
  /** Whether keys may have limits of their own (`tiers`): see `limitsOf`. */
  readonly hasTiers: boolean;
  readonly #slots: SlotTable;
  readonly #timeline: FactorTimeline;
  readonly #engine: KeyedEngine;
  readonly #waiters: KeyedWaiters;
  /** The engine's `plain`: `take(key)` goes to its `takeOne`. */
  readonly #plain: boolean;
  #unsubscribe: (() => void) | undefined;

  constructor(options: KeyedLimiterOptions) {
    const o = resolveKeyedOptions(options);
    this.maxKeys = o.maxKeys;
    this.ratePerSec = o.limits.ratePerSec;
    this.burst = o.limits.burst;
    this.hasTiers = o.tiers !== undefined;
    this.#slots = new SlotTable({
      maxKeys: o.maxKeys,
      block: o.block !== undefined,
      tiers: o.tiers !== undefined,
    });
    const now = o.clock.now();
    this.#timeline = new FactorTimeline(o.initialFactor, now);
    this.#engine = new KeyedEngine({
      clock: o.clock,
      slots: this.#slots,
      timeline: this.#timeline,
      tiers: new TierTable(o.limits, o.tiers, this.#timeline, now),
      hasTiers: o.tiers !== undefined,
      block: o.block === undefined ? undefined : new BlockPolicy(o.block, now),
      global: o.global === undefined ? undefined : new GlobalBucket(o.global, o.initialFactor, now),
    });
    this.#plain = this.#engine.plain;
    this.#waiters = new KeyedWaiters(o.clock, this.#engine, this.#slots);
    if (o.factor !== undefined) {
      this.#unsubscribe = o.factor.subscribe((f) => {
        this.#engine.onFactor(f);
        this.#waiters.reschedule();
      });
    }
  }

  /** Number of keys held now (at most `maxKeys`). */
  get size(): number {
    return this.#slots.size;
  }

  /** The throttle factor in force, from 0 to 1. */
  get factor(): number {
    return this.#timeline.factor;
  }

  /** Callers waiting in `acquire` now. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Decides for `key` now, and charges its bucket (and the global one) only when admitted by both.
   * A key longer than 256 bytes (UTF-8) is held under its SHA-256 digest (see `boundKey`), so a
   * key costs bounded memory whatever its length.
   */
  take(key: string, options?: TakeOptions): KeyedDecision {
    // Kept this small so that V8 inlines it whole (and the engine's hot path into it).
    return options === undefined && this.#plain ? this.#engine.takeOne(key) : this.#takeWith(key, options);
  }

  #takeWith(key: string, options: TakeOptions | undefined): KeyedDecision {
    if (options === undefined) return this.#engine.takeSlow(key);
    if (typeof options !== 'object' || options === null) throw badOptions(options);
    return this.#engine.decide(key, costOf(options), options.priority, 'take', 0, undefined);
  }

  /**
   * Gives back what an admitted `take(key, options)` charged (a later stage refused the request, or
   * its client left before it ran), with the same `cost` and `priority`. At the same clock instant
   * the key is left as it was before the take: its tokens, the refusal streak the admission ended
   * (joined to refusals counted since; a block that started since stays), the global bucket. Later,
   * the charge is added back capped at what a missing key would hold now (the capacity at the
   * factor in force, less while a factor increase has not refilled yet). A key that the take
   * created ends with a missing key's bucket, and when the table is full it is forgotten (its slot
   * freed). A priority's charge is computed at the factor in force now: exact while the factor has
   * not moved since the take (a normal priority's charge is its cost at any factor). Refunding a
   * charge that was never made gives tokens away: call it once per admitted take.
   */
  refund(key: string, options?: TakeOptions): void {
    // Kept small like take: `refund(key)` goes to the engine's `refundOne`, which allocates nothing.
    if (options === undefined && this.#plain) this.#engine.refundOne(key);
    else this.#refundWith(key, options);
  }

  #refundWith(key: string, options: TakeOptions | undefined): void {
    if (options === undefined) this.#engine.refundKey(key, 1, undefined);
    else if (typeof options !== 'object' || options === null) throw badOptions(options);
    else this.#engine.refundKey(key, costOf(options), options.priority);
  }

  /**
   * `key`'s limits at factor 1: its tier's (`tiers`), else the limiter's `ratePerSec` and `burst`.
   * The HTTP guard reads the `RateLimit-Policy` window (`w`, burst / rate) of a key from it.
   */
  limitsOf(key: string): BucketLimits {
    return this.#engine.limitsOf(key);
  }

  /** What `take` would answer now, without charging, counting a refusal or creating the key. */
  peek(key: string, options?: TakeOptions): KeyedDecision {
    if (options === undefined) {
      return this.#plain
        ? this.#engine.peekOne(key)
        : this.#engine.decide(key, 1, undefined, 'peek', 0, undefined);
    }
    if (typeof options !== 'object' || options === null) throw badOptions(options);
    return this.#engine.decide(key, costOf(options), options.priority, 'peek', 0, undefined);
  }

  /**
   * Admits now, or reserves: when the request would be admitted within `maxWaitMs`, its tokens are
   * charged now (the balance may go below 0) and the promise resolves with an admission once the
   * refill has paid for it. Later callers queue behind the reservation, so waits are served in FIFO
   * order per key. A request that would wait longer (or forever, or is blocked) resolves at once
   * with the refusal. The wait follows the factor: every change recomputes it, and a waiter whose
   * admission would now fall past `maxWaitMs` is refused then (its tokens refunded); at factor 0
   * nobody is admitted. When `signal` aborts first, the tokens are refunded and the promise rejects
   * with an AbortError. A pending acquire keeps the process alive.
   */
  acquire(key: string, options: KeyedAcquireOptions = {}): Promise<KeyedDecision> {
    if (typeof options !== 'object' || options === null) throw badOptions(options);
    const maxWaitMs = waitOption('maxWaitMs', options.maxWaitMs, Infinity);
    const signal = abortSignalOption('signal', options.signal);
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason));
    const r: Reservation = { key: '', slot: -1, charge: 0 };
    const d = this.#engine.decide(key, costOf(options), options.priority, 'reserve', maxWaitMs, r);
    if (r.slot < 0) return Promise.resolve(d);
    return this.#waiters.add(r.key, r.slot, r.charge, maxWaitMs, d.retryAfterMs, signal);
  }

  /**
   * Forgets `key`: its next request starts from a full bucket (and a fresh tier lookup). Callers
   * waiting on it in `acquire` are refused with `retryAfterMs: 0`.
   */
  delete(key: string): void {
    if (typeof key === 'string' && key.length > MAX_INLINE_KEY_CHARS) key = boundKey(key);
    if (this.#slots.delete(key) >= 0 && this.#waiters.size > 0) this.#waiters.reschedule();
  }

  /**
   * Forgets every key (waiting callers are refused with `retryAfterMs: 0`). The global bucket and
   * the factor stay as they are.
   */
  clear(): void {
    this.#slots.clear();
    this.#engine.compactTiers();
    if (this.#waiters.size > 0) this.#waiters.reschedule();
  }

  /**
   * Stops following the factor source and cancels pending `acquire` waits (they reject with an
   * AbortError). Decisions still work afterwards, at the last factor.
   */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#waiters.closeAll();
  }
}

/** `cost` left out means 1; `null` (like any non-number) is refused by the engine's cost check. */
function costOf(options: TakeOptions): number {
  return options.cost === undefined ? 1 : options.cost;
}

function badOptions(options: unknown): ConfigError {
  return new ConfigError('options', options, 'an object { cost?, priority? } or undefined');
}

/**
 * A keyed limiter: one token bucket per key, an optional global bucket, scaled by a throttle factor.
 * Without `store`, the buckets live in this process (synchronous decisions, exact factor replay);
 * with a `store` (a MemoryStore, a RedisStore...) they live there and decisions are promises.
 */
export function createLimiter(options: StoreLimiterOptions): StoreLimiter;
export function createLimiter(options: KeyedWindowLimiterOptions): KeyedWindowLimiter;
export function createLimiter(options: KeyedLimiterOptions): KeyedLimiter;
export function createLimiter(
  options: KeyedLimiterOptions | StoreLimiterOptions | KeyedWindowLimiterOptions,
): KeyedLimiter | StoreLimiter | KeyedWindowLimiter {
  if (typeof options === 'object' && options !== null) {
    if ('store' in options && options.store !== undefined) return new StoreLimiter(options);
    const algorithm = (options as { algorithm?: unknown }).algorithm;
    if (algorithm === 'fixed-window' || algorithm === 'sliding-window') {
      return new KeyedWindowLimiter(options as KeyedWindowLimiterOptions);
    }
  }
  return new KeyedLimiter(options as KeyedLimiterOptions);
}
