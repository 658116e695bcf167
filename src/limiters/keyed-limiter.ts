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
import type { TimerHandle } from '../clock.js';
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
import { TierTable } from './keyed/tiers.js';
import type { Clock } from '../clock.js';

export type { KeyedDecision } from './keyed/engine.js';
export { FACTOR_LOG_SIZE } from './keyed/factor-timeline.js';
export type { KeyedAcquireOptions, KeyedLimiterOptions, TakeOptions } from './keyed/options.js';
export type { BucketLimits } from './keyed/tiers.js';

interface Pending {
  timer: TimerHandle;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

export class KeyedLimiter {
  /** The most keys held at once. */
  readonly maxKeys: number;
  /** Tokens per second of a key without a tier, at factor 1. */
  readonly ratePerSec: number;
  /** Capacity of a key without a tier, at factor 1. */
  readonly burst: number;
  readonly #clock: Clock;
  readonly #slots: SlotTable;
  readonly #timeline: FactorTimeline;
  readonly #engine: KeyedEngine;
  readonly #pending = new Set<Pending>();
  #unsubscribe: (() => void) | undefined;

  constructor(options: KeyedLimiterOptions) {
    const o = resolveKeyedOptions(options);
    this.maxKeys = o.maxKeys;
    this.ratePerSec = o.limits.ratePerSec;
    this.burst = o.limits.burst;
    this.#clock = o.clock;
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
    if (o.factor !== undefined) this.#unsubscribe = o.factor.subscribe((f) => this.#engine.onFactor(f));
  }

  /** Number of keys held now (at most `maxKeys`). */
  get size(): number {
    return this.#slots.size;
  }

  /** The throttle factor in force, from 0 to 1. */
  get factor(): number {
    return this.#timeline.factor;
  }

  /** Decides for `key` now, and charges its bucket (and the global one) only when admitted by both. */
  take(key: string, options?: TakeOptions): KeyedDecision {
    return options === undefined
      ? this.#engine.decide(key, 1, undefined, 'take', 0, undefined)
      : this.#engine.decide(key, options.cost ?? 1, options.priority, 'take', 0, undefined);
  }

  /** What `take` would answer now, without charging, counting a refusal or creating the key. */
  peek(key: string, options?: TakeOptions): KeyedDecision {
    return options === undefined
      ? this.#engine.decide(key, 1, undefined, 'peek', 0, undefined)
      : this.#engine.decide(key, options.cost ?? 1, options.priority, 'peek', 0, undefined);
  }

  /**
   * Admits now, or reserves: when the request would be admitted within `maxWaitMs`, its tokens are
   * charged now (the balance may go below 0) and the promise resolves with an admission after that
   * wait. Later callers queue behind the reservation, so waits are served in FIFO order. A request
   * that would wait longer (or forever, or is blocked) resolves at once with the refusal. When
   * `signal` aborts first, the tokens are refunded and the promise rejects with an AbortError.
   */
  acquire(key: string, options: KeyedAcquireOptions = {}): Promise<KeyedDecision> {
    const maxWaitMs = options.maxWaitMs ?? Infinity;
    if (typeof maxWaitMs !== 'number' || !(maxWaitMs >= 0)) {
      throw new ConfigError('maxWaitMs', maxWaitMs, 'a number >= 0 (or Infinity)');
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason));
    const reservation: Reservation = { slot: -1, charge: 0 };
    const d = this.#engine.decide(
      key,
      options.cost ?? 1,
      options.priority,
      'reserve',
      maxWaitMs,
      reservation,
    );
    const { slot, charge } = reservation;
    if (slot < 0) return Promise.resolve(d);
    return new Promise<KeyedDecision>((resolve, reject) => {
      const onAbort = (): void => {
        entry.timer.cancel();
        entry.cleanup();
        this.#engine.refund(key, slot, charge);
        reject(new AbortError(signal?.reason));
      };
      const entry: Pending = {
        timer: this.#clock.setTimeout(() => {
          entry.cleanup();
          resolve(this.#engine.admittedNow(key, slot));
        }, d.retryAfterMs),
        reject,
        cleanup: () => {
          this.#pending.delete(entry);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      this.#pending.add(entry);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Forgets `key`: its next request starts from a full bucket (and a fresh tier lookup). */
  delete(key: string): void {
    this.#slots.delete(key);
  }

  /** Forgets every key. The global bucket and the factor stay as they are. */
  clear(): void {
    this.#slots.clear();
    this.#engine.compactTiers();
  }

  /**
   * Stops following the factor source and cancels pending `acquire` waits (they reject with an
   * AbortError). Decisions still work afterwards, at the last factor.
   */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    for (const p of [...this.#pending]) {
      p.timer.cancel();
      p.cleanup();
      p.reject(new AbortError(new Error('limiter closed')));
    }
  }
}

/** A keyed limiter: one token bucket per key, an optional global bucket, scaled by a throttle factor. */
export function createLimiter(options: KeyedLimiterOptions): KeyedLimiter {
  return new KeyedLimiter(options);
}
