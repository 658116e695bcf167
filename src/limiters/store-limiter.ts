/**
 * A keyed limiter whose per-key buckets live in a Store (memory, Redis...): the limiter keeps the
 * factor, the priorities, the tiers and the global bucket; the store keeps each key's bucket and
 * answers one request at a time. Decisions are promises, since a shared store answers over the
 * network.
 *
 * Priority works through the store's factor: a request of priority p asks the store at its
 * effective factor e(f, p), so its key's bucket refills at rate·e up to burst·e for it. The global
 * bucket stays in this process (it is a capacity of this process) and is charged like the
 * in-memory limiter's: cost·f/e at the base factor f.
 */
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { AbortError, ConfigError } from '../errors.js';
import type { Store, StoreDecision, StoreTakeRequest } from '../stores/types.js';
import { abortSignalOption, clockOption, fn, knownKeys, positiveNumber, waitOption } from '../validate.js';
import { waitMs } from './bucket-math.js';
import { clampFactor, type FactorOption, resolveFactor } from './factor-option.js';
import type { KeyedDecision } from './keyed/engine.js';
import { GlobalBucket } from './keyed/global-bucket.js';
import { boundKey } from './keyed/key-bound.js';
import type { KeyedAcquireOptions, TakeOptions } from './keyed/options.js';
import type { BucketLimits, TierLookup } from './keyed/tiers.js';
import { effectiveFactor, priorityLevel } from './priority.js';
import { TOKEN_EPSILON } from './token-bucket.js';
import type { Priority } from './types.js';

export interface StoreLimiterOptions {
  /** Where each key's bucket lives: a MemoryStore, a RedisStore, or your own Store. */
  store: Store;
  /** Tokens per second for each key at factor 1 (keys without a tier). A finite number > 0. */
  ratePerSec: number;
  /** Capacity of each key's bucket at factor 1 (keys without a tier). A finite number > 0. */
  burst: number;
  /** A key's own rate and burst, or undefined for the defaults. Asked on every decision. @default none */
  tiers?: (key: string) => BucketLimits | undefined;
  /** A bucket every request also passes, held in this process. @default none */
  global?: BucketLimits;
  /** A FactorSource to follow, or a fixed factor from 0 to 1. @default 1 */
  factor?: FactorOption;
  /** @default systemClock */
  clock?: Clock;
}

const OPTIONS = ['store', 'ratePerSec', 'burst', 'tiers', 'global', 'factor', 'clock'] as const;

interface Asked {
  readonly request: StoreTakeRequest;
  /** What the global bucket is charged (cost·f/e). */
  readonly charge: number;
  /** The base factor when asked. */
  readonly f: number;
}

export class StoreLimiter {
  readonly ratePerSec: number;
  readonly burst: number;
  readonly store: Store;
  readonly #limits: BucketLimits;
  readonly #tiers: TierLookup | undefined;
  readonly #global: GlobalBucket | undefined;
  readonly #clock: Clock;
  #f: number;
  #unsubscribe: (() => void) | undefined;
  /** Wakes every waiting acquire (a factor change or close). */
  readonly #wake = new Set<() => void>();
  #closed = false;

  constructor(options: StoreLimiterOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object with store, ratePerSec and burst');
    }
    knownKeys('createLimiter', options, OPTIONS);
    const store = options.store;
    if (typeof store !== 'object' || store === null || typeof store.take !== 'function') {
      throw new ConfigError('store', store, 'a Store { take, peek, refund, reset, close }');
    }
    this.store = store;
    this.ratePerSec = positiveNumber('ratePerSec', options.ratePerSec);
    this.burst = positiveNumber('burst', options.burst);
    this.#limits = { ratePerSec: this.ratePerSec, burst: this.burst };
    this.#tiers = options.tiers === undefined ? undefined : fn<TierLookup>('tiers', options.tiers);
    this.#clock = clockOption('clock', options.clock, systemClock);
    const factor = resolveFactor(options.factor);
    this.#f = factor.initial;
    if (options.global !== undefined) {
      const g = options.global;
      if (typeof g !== 'object' || g === null)
        throw new ConfigError('global', g, 'an object { ratePerSec, burst }');
      knownKeys('global', g, ['ratePerSec', 'burst']);
      const limits = {
        ratePerSec: positiveNumber('global.ratePerSec', g.ratePerSec),
        burst: positiveNumber('global.burst', g.burst),
      };
      this.#global = new GlobalBucket(limits, this.#f, this.#clock.now());
    }
    if (factor.source !== undefined) this.#unsubscribe = factor.source.subscribe((f) => this.#onFactor(f));
  }

  /** The throttle factor in force, from 0 to 1. */
  get factor(): number {
    return this.#f;
  }

  /** Decides for `key` now, and charges its bucket (and the global one) only when admitted by both. */
  async take(key: string, options?: TakeOptions): Promise<KeyedDecision> {
    const asked = this.#ask(key, options);
    return this.#take(asked);
  }

  /** What `take` would answer now, without charging. */
  async peek(key: string, options?: TakeOptions): Promise<KeyedDecision> {
    const asked = this.#ask(key, options);
    const sd = await this.store.peek(asked.request);
    const g = this.#global;
    if (g !== undefined && sd.allowed) {
      const gWait = this.#globalWait(asked);
      if (gWait > 0) return this.#decision(asked, sd, false, gWait, 'global');
    }
    return this.#decision(asked, sd, sd.allowed, sd.retryAfterMs, 'key');
  }

  /**
   * Gives back what `take(key, options)` charged, when the request will not run after all (a
   * later admission stage refused it, or its client left): `cost` tokens to the key's bucket in
   * the store (never above its burst) and its share to the global bucket. Pass the options the
   * take had. The HTTP guard calls it; it charges nothing.
   */
  async refund(key: string, options?: TakeOptions): Promise<void> {
    const asked = this.#ask(key, options);
    const g = this.#global;
    if (g !== undefined && this.#f > 0) g.refund(Math.max(this.#clock.now(), g.last), this.#f, asked.charge);
    await this.store.refund(asked.request);
  }

  /**
   * Admits now, or waits: when the store says the tokens will be there within `maxWaitMs`, waits
   * that long and asks again, until admitted or past the deadline (then it resolves with the
   * refusal). Unlike the in-memory limiter it reserves nothing, so waits are not FIFO. A factor
   * change wakes every waiter to ask again. `signal` aborts (AbortError). Keeps the process alive.
   */
  async acquire(key: string, options: KeyedAcquireOptions = {}): Promise<KeyedDecision> {
    if (typeof options !== 'object' || options === null) throw badOptions(options);
    const maxWaitMs = waitOption('maxWaitMs', options.maxWaitMs, Infinity);
    const signal = abortSignalOption('signal', options.signal);
    const deadline = this.#clock.now() + maxWaitMs;
    for (;;) {
      if (signal?.aborted) throw new AbortError(signal.reason);
      if (this.#closed) throw new AbortError(new Error('limiter closed'));
      const d = await this.#take(this.#ask(key, options));
      if (d.allowed) return d;
      const left = deadline - this.#clock.now();
      if (d.retryAfterMs > left) return d;
      await this.#sleep(d.retryAfterMs, signal);
    }
  }

  /** Forgets `key` in the store: its next request starts from a full bucket. */
  async delete(key: string): Promise<void> {
    await this.store.reset(boundKey(key));
  }

  /**
   * Stops following the factor source and rejects waiting `acquire`s with an AbortError. The store
   * is the caller's: close it yourself when no limiter uses it any more.
   */
  close(): void {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    for (const wake of [...this.#wake]) wake();
  }

  #ask(key: string, options: TakeOptions | undefined): Asked {
    if (typeof key !== 'string') throw new ConfigError('key', key, 'a string');
    if (options !== undefined && (typeof options !== 'object' || options === null)) throw badOptions(options);
    const bounded = boundKey(key);
    const limits = this.#tiers === undefined ? this.#limits : this.#tierOf(bounded, key);
    const cost = options?.cost === undefined ? 1 : options.cost;
    if (typeof cost !== 'number' || !(cost > 0) || cost > limits.burst) {
      throw new ConfigError('cost', cost, `a finite number > 0 and <= the key's burst (${limits.burst})`);
    }
    const g = this.#global;
    if (g !== undefined && cost > g.burst) {
      throw new ConfigError('cost', cost, `a finite number > 0 and <= global.burst (${g.burst})`);
    }
    const priority: Priority | undefined = options?.priority;
    const f = this.#f;
    const level = priorityLevel(priority);
    const e = level === 0.5 ? f : effectiveFactor(f, level);
    const charge = level === 0.5 || f >= 1 ? cost : e > 0 ? cost * (f / e) : Infinity;
    return { request: { key: bounded, cost, limits, factor: e }, charge, f };
  }

  /** Whether keys may have limits of their own (`tiers`): see `limitsOf`. */
  get hasTiers(): boolean {
    return this.#tiers !== undefined;
  }

  /**
   * `key`'s limits at factor 1: its tier's (`tiers`), else the limiter's `ratePerSec` and `burst`.
   * The HTTP guard reads the `RateLimit-Policy` window (`w`, burst / rate) of a key from it.
   */
  limitsOf(key: string): BucketLimits {
    if (typeof key !== 'string') throw new ConfigError('key', key, 'a string');
    return this.#tiers === undefined ? { ...this.#limits } : this.#tierOf(boundKey(key), key);
  }

  #tierOf(bounded: string, key: string): BucketLimits {
    const t = this.#tiers!(key);
    if (t === undefined) return this.#limits;
    const where = `tiers(${JSON.stringify(bounded)})`;
    if (typeof t !== 'object' || t === null) {
      throw new ConfigError(where, t, 'an object { ratePerSec, burst } or undefined');
    }
    return {
      ratePerSec: positiveNumber(`${where}.ratePerSec`, t.ratePerSec),
      burst: positiveNumber(`${where}.burst`, t.burst),
    };
  }

  async #take(asked: Asked): Promise<KeyedDecision> {
    const g = this.#global;
    if (g !== undefined) {
      const gWait = this.#globalWait(asked);
      if (gWait > 0) {
        // The global bucket refuses: ask the store without charging, to say whose refusal it is.
        const sd = await this.store.peek(asked.request);
        return this.#decision(
          asked,
          sd,
          false,
          sd.allowed ? gWait : Math.max(gWait, sd.retryAfterMs),
          sd.allowed ? 'global' : 'key',
        );
      }
    }
    const sd = await this.store.take(asked.request);
    if (!sd.allowed || g === undefined) return this.#decision(asked, sd, sd.allowed, sd.retryAfterMs, 'key');
    // Time passed while the store answered: charge the global bucket only if it still can pay.
    const now = this.#clock.now();
    const f = this.#f;
    const gx = g.tokensAt(now, f);
    if (f > 0 && gx + g.eps >= asked.charge) {
      g.settle(gx - asked.charge > 0 ? gx - asked.charge : 0, now);
      return this.#decision(asked, sd, true, 0, 'key');
    }
    await this.store.refund(asked.request);
    return this.#decision(asked, sd, false, this.#globalWait(asked), 'global');
  }

  #globalWait(asked: Asked): number {
    const g = this.#global!;
    const f = this.#f;
    if (!(f > 0)) return Infinity;
    return waitMs(g.tokensAt(this.#clock.now(), f), asked.charge, g.ratePerMs * f, g.burst * f, g.eps);
  }

  #decision(
    asked: Asked,
    sd: StoreDecision,
    allowed: boolean,
    retryAfterMs: number,
    scope: 'key' | 'global',
  ): KeyedDecision {
    const { cost, limits, factor: e } = asked.request;
    let reason: KeyedDecision['reason'] = 'ok';
    if (!allowed) {
      // 'limited' when the key is over its own quota even unthrottled (its fill level scaled to
      // factor 1 could not pay the cost either); otherwise the factor's cut ('shed'). A store that
      // refused because it could not decide (Redis down, `onError: 'closed'`) is no quota either.
      const eps = limits.burst * TOKEN_EPSILON;
      const keyOver =
        !sd.allowed &&
        sd.unavailable !== true &&
        sd.retryAfterMs !== Infinity &&
        (e >= 1 || sd.remaining + eps < cost * e);
      reason = scope === 'key' && keyOver ? 'limited' : 'shed';
    }
    return {
      allowed,
      reason,
      remaining: Math.max(0, sd.remaining),
      limit: limits.burst * e,
      retryAfterMs: allowed ? 0 : retryAfterMs,
      resetMs: sd.resetMs,
      factor: e,
      scope,
    };
  }

  #onFactor(next: number): void {
    const f = clampFactor(next);
    if (f === undefined || f === this.#f) return;
    const g = this.#global;
    if (g !== undefined) g.onFactor(Math.max(this.#clock.now(), g.last), this.#f, f);
    this.#f = f;
    for (const wake of [...this.#wake]) wake();
  }

  /** Waits `ms` (keeping the process alive), or less when woken or aborted. */
  #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const cleanup = (): void => {
        timer?.cancel();
        this.#wake.delete(done);
        signal?.removeEventListener('abort', onAbort);
      };
      const done = (): void => {
        cleanup();
        resolve();
      };
      const onAbort = (): void => {
        cleanup();
        reject(new AbortError(signal?.reason));
      };
      if (ms < Infinity) timer = this.#clock.setTimeout(done, ms, { keepAlive: true });
      this.#wake.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function badOptions(options: unknown): ConfigError {
  return new ConfigError('options', options, 'an object { cost?, priority? } or undefined');
}
