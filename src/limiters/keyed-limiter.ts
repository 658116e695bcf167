/**
 * Keyed limiting: one token bucket per key (user, IP, tenant), an optional global bucket that every
 * request also passes, tiers, a block period for keys that keep hammering, all scaled by a throttle
 * factor, in bounded memory.
 *
 * State is compact: a `Map<string, number>` from key to a slot index (a small integer stored inline
 * in the Map entry), and per-slot typed arrays: tokens and last-settled time (Float64Array), a CLOCK
 * reference bit (Uint8Array), and only when configured a block word (Float64Array) and a tier index
 * (Uint16Array). The arrays grow by doubling up to `maxKeys`; freed slots are recycled. No per-key
 * object, no per-key timer.
 *
 * Eviction is CLOCK (second chance) over the Map's insertion order: a hand walks the keys; a key
 * used since the hand last passed loses its reference bit and is skipped, the first key without
 * one is evicted. A bucket that has refilled to full decides exactly like a missing one, so the hand
 * evicts a full bucket as soon as it meets it, used or not: such evictions change no decision.
 *
 * Factor changes are exact without touching every key: the limiter keeps a short log of changes
 * (time, new factor). A bucket settled before the latest change replays the segments since its own
 * last settle (accrue at each segment's factor up to that segment's capacity, clamp at each
 * change). When the log is full, every stale bucket is brought up to date once and the log emptied.
 */
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { AbortError, ConfigError } from '../errors.js';
import { fn, integer, knownKeys, positiveNumber, ratio } from '../validate.js';
import { refill, waitMs } from './bucket-math.js';
import { effectiveFactor, priorityLevel } from './priority.js';
import { TOKEN_EPSILON } from './token-bucket.js';
import type { Decision, FactorSource, Priority } from './types.js';

/** A decision of the keyed limiter: which bucket it speaks for. */
export interface KeyedDecision extends Decision {
  /**
   * `'global'` when the global bucket refused (the key's own bucket would have admitted);
   * `'key'` otherwise (admitted, or refused or blocked by the key's own bucket). `remaining`,
   * `limit` and `resetMs` always describe the key's own bucket.
   */
  readonly scope: 'key' | 'global';
}

/** A rate and a burst, both at factor 1. */
export interface BucketLimits {
  /** Tokens added per second at factor 1. A finite number > 0. */
  ratePerSec: number;
  /** Capacity at factor 1: the largest cost admitted at once. A finite number > 0. */
  burst: number;
}

export interface KeyedLimiterOptions {
  /** Tokens per second for each key at factor 1 (keys without a tier). A finite number > 0. */
  ratePerSec: number;
  /** Capacity of each key's bucket at factor 1 (keys without a tier). A finite number > 0. */
  burst: number;
  /**
   * The most keys held at once; past it the least recently used key is evicted (CLOCK), full
   * buckets first. An integer from 1 to 2^30. @default 100_000
   */
  maxKeys?: number;
  /**
   * A key's own rate and burst (free vs premium), or undefined for the defaults. Called when a
   * key's bucket is created; the answer is kept with the bucket until it is evicted or deleted
   * (delete the key to apply a new tier at once). @default none: every key gets ratePerSec, burst
   */
  tiers?: (key: string) => BucketLimits | undefined;
  /** A bucket every request also passes: a capacity for the whole process. @default none */
  global?: BucketLimits;
  /** Where the throttle factor comes from: a Governor or a ManualFactor. @default none (factor 1) */
  factor?: FactorSource;
  /**
   * Blocks a key refused `afterRefusals` times in a row (as 'limited') for `durationMs` ms: during the
   * block it is refused with reason 'blocked'. An admission, or a bucket refilling to full, ends the
   * streak. `afterRefusals`: an integer >= 1; `durationMs`: a finite number > 0 (ms). @default none
   */
  block?: { afterRefusals: number; durationMs: number };
  /** @default systemClock */
  clock?: Clock;
}

export interface TakeOptions {
  /** Tokens this request costs, before priority scaling: a finite number > 0 and <= the key's burst. @default 1 */
  cost?: number;
  /** How late this request is shed. @default 'normal' */
  priority?: Priority;
}

export interface KeyedAcquireOptions extends TakeOptions {
  /**
   * The longest this call may wait, in ms. A request that would wait longer is refused at once
   * (the promise resolves with the refusal). @default Infinity
   */
  maxWaitMs?: number;
  /** Cancels the wait: the promise rejects with an AbortError and the reserved tokens are refunded. */
  signal?: AbortSignal;
}

/** Number of factor changes kept before every stale bucket is brought up to date at once. */
export const FACTOR_LOG_SIZE = 64;
const DEFAULT_MAX_KEYS = 100_000;
const MAX_MAX_KEYS = 2 ** 30;
const INITIAL_SLOTS = 1024;

const OPTIONS = ['ratePerSec', 'burst', 'maxKeys', 'tiers', 'global', 'factor', 'block', 'clock'] as const;
const LIMITS = ['ratePerSec', 'burst'] as const;
const BLOCK = ['afterRefusals', 'durationMs'] as const;

const MODE_PEEK = 0;
const MODE_TAKE = 1;
const MODE_RESERVE = 2;

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
  readonly #map = new Map<string, number>();
  // Per-slot state. Slot indices come from #used (high-water mark) or from #free.
  /** Tokens at [2·slot], last-settled time at [2·slot + 1]: one cache line per key. */
  #state: Float64Array;
  #ref: Uint8Array;
  /** Block word: <= 0 is minus the refusal streak; > 0 is the block end minus #epoch. Only with `block`. */
  #blk: Float64Array | undefined;
  /** Index into the tier table. Only with `tiers`. */
  #tierOf: Uint16Array | Uint32Array | undefined;
  #capacity: number;
  #used = 0;
  readonly #free: number[] = [];
  /**
   * The CLOCK hand. Created only when an eviction needs it and dropped whenever the Map may grow:
   * a live Map iterator keeps every table the Map has outgrown alive (about 29 B per key).
   */
  #hand: Iterator<string> | undefined;
  /** The key the hand points at, read from the iterator but not yet examined. */
  #handKey: string | undefined;

  // Default limits, per ms.
  readonly #rate: number;
  readonly #burst: number;
  readonly #eps: number;

  // Tiers: table of distinct (rate per ms, burst); index 0 is the default (present without tiers too).
  readonly #tiers: ((key: string) => BucketLimits | undefined) | undefined;
  #tierRate: number[] = [];
  #tierBurst: number[] = [];
  #tierId: string[] = [];
  #tierIndex = new Map<string, number>();
  /**
   * Per tier, the tokens at #idleLast of a bucket left idle since #logStart: the state of a key
   * that has no bucket. It equals the capacity unless the factor rose recently (growth creates no
   * tokens, for missing keys either), and every stored bucket holds at most this much.
   */
  #idle: number[] = [];
  #idleLast: number;
  /** When the factor log was last emptied (construction, or overflow). */
  #logStart: number;

  // Global bucket.
  readonly #hasGlobal: boolean;
  readonly #gRate: number;
  readonly #gBurst: number;
  readonly #gEps: number;
  #gTokens = 0;
  #gLast = 0;

  // Block.
  readonly #blockAfter: number;
  readonly #blockMs: number;
  readonly #epoch: number;

  // Factor and its change log: from logT[i] on, the factor is logF[i]; before logT[0] it is #fPre.
  #f: number;
  /** 1 / (ratePerMs·f) for the default limits, 0 at factor 0. */
  #inv0 = 0;
  #fPre: number;
  readonly #logT = new Float64Array(FACTOR_LOG_SIZE);
  readonly #logF = new Float64Array(FACTOR_LOG_SIZE);
  #logLen = 0;
  #lastChange = -Infinity;
  /** The latest time any bucket was settled at (for changes at that same instant). */
  #lastNow = -Infinity;
  #unsubscribe: (() => void) | undefined;

  readonly #pending = new Set<Pending>();
  // Out-parameters of #decide in reserve mode.
  #resSlot = -1;
  #resCharge = 0;

  constructor(options: KeyedLimiterOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object with ratePerSec and burst');
    }
    knownKeys('createLimiter', options, OPTIONS);
    const ratePerSec = positiveNumber('ratePerSec', options.ratePerSec);
    this.#burst = positiveNumber('burst', options.burst);
    this.#rate = ratePerSec / 1000;
    this.ratePerSec = ratePerSec;
    this.burst = this.#burst;
    this.#eps = this.#burst * TOKEN_EPSILON;
    this.maxKeys = integer('maxKeys', options.maxKeys ?? DEFAULT_MAX_KEYS, 1, MAX_MAX_KEYS);

    if (options.tiers !== undefined) {
      this.#tiers = fn<(key: string) => BucketLimits | undefined>('tiers', options.tiers);
    }
    if (options.global !== undefined) {
      const g = options.global;
      if (typeof g !== 'object' || g === null) {
        throw new ConfigError('global', g, 'an object { ratePerSec, burst }');
      }
      knownKeys('global', g, LIMITS);
      this.#hasGlobal = true;
      this.#gRate = positiveNumber('global.ratePerSec', g.ratePerSec) / 1000;
      this.#gBurst = positiveNumber('global.burst', g.burst);
    } else {
      this.#hasGlobal = false;
      this.#gRate = 0;
      this.#gBurst = 0;
    }
    this.#gEps = this.#gBurst * TOKEN_EPSILON;

    if (options.block !== undefined) {
      const b = options.block;
      if (typeof b !== 'object' || b === null) {
        throw new ConfigError('block', b, 'an object { afterRefusals, durationMs }');
      }
      knownKeys('block', b, BLOCK);
      this.#blockAfter = integer('block.afterRefusals', b.afterRefusals, 1);
      this.#blockMs = positiveNumber('block.durationMs', b.durationMs);
    } else {
      this.#blockAfter = 0;
      this.#blockMs = 0;
    }

    const clock = options.clock ?? systemClock;
    if (
      typeof clock !== 'object' ||
      clock === null ||
      typeof clock.now !== 'function' ||
      typeof clock.setTimeout !== 'function'
    ) {
      throw new ConfigError('clock', clock, 'a Clock { now(), setTimeout() }');
    }
    this.#clock = clock;

    const source = options.factor;
    if (source !== undefined) {
      if (
        typeof source !== 'object' ||
        source === null ||
        typeof source.subscribe !== 'function' ||
        typeof source.factor !== 'number'
      ) {
        throw new ConfigError('factor', source, 'a FactorSource (a Governor or a ManualFactor)');
      }
      this.#f = ratio('factor.factor', source.factor);
    } else {
      this.#f = 1;
    }
    this.#fPre = this.#f;
    this.#inv0 = this.#f > 0 ? 1 / (this.#rate * this.#f) : 0;

    this.#capacity = Math.min(INITIAL_SLOTS, this.maxKeys);
    this.#state = new Float64Array(2 * this.#capacity);
    this.#ref = new Uint8Array(this.#capacity);
    if (this.#blockAfter > 0) this.#blk = new Float64Array(this.#capacity);
    if (this.#tiers !== undefined) this.#tierOf = new Uint16Array(this.#capacity);
    const now = clock.now();
    this.#idleLast = now;
    this.#logStart = now;
    this.#intern(`${ratePerSec}/${this.#burst}`, this.#rate, this.#burst, now);

    this.#epoch = now - 1; // block words are stored as (end - epoch), always > 0
    this.#gTokens = this.#gBurst * this.#f;
    this.#gLast = now;
    if (source !== undefined) this.#unsubscribe = source.subscribe((f) => this.#onFactor(f));
  }

  /** Number of keys held now (at most `maxKeys`). */
  get size(): number {
    return this.#map.size;
  }

  /** The throttle factor in force, from 0 to 1. */
  get factor(): number {
    return this.#f;
  }

  /** Decides for `key` now, and charges its bucket (and the global one) only when admitted by both. */
  take(key: string, options?: TakeOptions): KeyedDecision {
    return options === undefined
      ? this.#decide(key, 1, undefined, MODE_TAKE, 0)
      : this.#decide(key, options.cost ?? 1, options.priority, MODE_TAKE, 0);
  }

  /** What `take` would answer now, without charging, counting a refusal or creating the key. */
  peek(key: string, options?: TakeOptions): KeyedDecision {
    return options === undefined
      ? this.#decide(key, 1, undefined, MODE_PEEK, 0)
      : this.#decide(key, options.cost ?? 1, options.priority, MODE_PEEK, 0);
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
    this.#resSlot = -1;
    const d = this.#decide(key, options.cost ?? 1, options.priority, MODE_RESERVE, maxWaitMs);
    const slot = this.#resSlot;
    if (slot < 0) return Promise.resolve(d);
    this.#resSlot = -1;
    const charge = this.#resCharge;
    return new Promise<KeyedDecision>((resolve, reject) => {
      const onAbort = (): void => {
        entry.timer.cancel();
        entry.cleanup();
        this.#refund(key, slot, charge);
        reject(new AbortError(signal?.reason));
      };
      const entry: Pending = {
        timer: this.#clock.setTimeout(() => {
          entry.cleanup();
          resolve(this.#admittedNow(key, slot));
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
    const s = this.#map.get(key);
    if (s === undefined) return;
    this.#map.delete(key);
    this.#free.push(s);
  }

  /** Forgets every key. The global bucket and the factor stay as they are. */
  clear(): void {
    this.#map.clear();
    this.#used = 0;
    this.#free.length = 0;
    this.#hand = undefined;
    this.#handKey = undefined;
    if (this.#tiers !== undefined) this.#compactTiers();
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

  // ---------------------------------------------------------------------------------------------

  #decide(
    key: string,
    cost: number,
    priority: Priority | undefined,
    mode: number,
    maxWaitMs: number,
  ): KeyedDecision {
    if (typeof key !== 'string') throw new ConfigError('key', key, 'a string');
    const now = this.#clock.now();
    let s = this.#map.get(key);
    let rate = this.#rate;
    let burst = this.#burst;
    let eps = this.#eps;
    let tier = 0;
    if (this.#tierOf !== undefined) {
      tier = s === undefined ? this.#tierFor(key) : this.#tierOf[s]!;
      rate = this.#tierRate[tier]!;
      burst = this.#tierBurst[tier]!;
      eps = burst * TOKEN_EPSILON;
    }
    if (typeof cost !== 'number' || !(cost > 0) || cost > burst) {
      throw new ConfigError('cost', cost, `a finite number > 0 and <= the key's burst (${burst})`);
    }
    if (this.#hasGlobal && cost > this.#gBurst) {
      throw new ConfigError('cost', cost, `a finite number > 0 and <= global.burst (${this.#gBurst})`);
    }
    const f = this.#f;
    // The bucket runs at the base factor f; a request whose priority sees factor e pays cost·f/e,
    // so a class alone gets exactly rate·e.
    let charge = cost;
    if (priority !== undefined) {
      const level = priorityLevel(priority);
      if (level !== 0.5 && f < 1) {
        const e = effectiveFactor(f, level);
        charge = e > 0 ? cost * (f / e) : Infinity;
      }
    }
    const cap = burst * f;
    const r = rate * f;
    // 1 / r: waits and reset times become products (cached for the default limits).
    const inv = this.#tierOf === undefined ? this.#inv0 : r > 0 ? 1 / r : 0;

    let x: number;
    let blockedMs = 0;
    if (s === undefined) {
      x = this.#idleTokens(tier, now);
    } else {
      x = mode === MODE_PEEK ? this.#peekTokens(s, now, rate, burst) : this.#settle(s, now, rate, burst);
      const blk = this.#blk;
      if (blk !== undefined) {
        const v = blk[s]!;
        if (v > 0) {
          blockedMs = v - (now - this.#epoch);
          if (blockedMs <= 0) {
            blockedMs = 0;
            if (mode !== MODE_PEEK) blk[s] = 0;
          }
        } else if (v < 0 && mode !== MODE_PEEK && x + eps >= this.#idleTokens(tier, now)) {
          // Refilled to the level of a missing key: the streak is over (so dropping such a bucket
          // changes no decision).
          blk[s] = 0;
        }
      }
    }

    const keyOk = f > 0 && charge <= cap + eps && x + eps >= charge;
    let gx = 0;
    let gOk = true;
    if (this.#hasGlobal) {
      gx = refill(this.#gTokens, now - this.#gLast, this.#gRate * f, this.#gBurst * f);
      if (mode !== MODE_PEEK) {
        this.#gTokens = gx;
        if (now > this.#gLast) this.#gLast = now;
      }
      gOk = f > 0 && charge <= this.#gBurst * f + this.#gEps && gx + this.#gEps >= charge;
    }

    if (keyOk && gOk && blockedMs === 0) {
      let remaining = x - charge;
      if (remaining < 0) remaining = 0;
      if (mode !== MODE_PEEK) {
        if (s === undefined) s = this.#create(key, now, tier);
        else this.#ref[s] = 1;
        this.#state[2 * s] = remaining;
        if (this.#blk !== undefined) this.#blk[s] = 0;
        if (this.#hasGlobal) {
          const g = gx - charge;
          this.#gTokens = Math.max(g, 0);
        }
      }
      return decision(true, 'ok', remaining, cap, 0, (cap - remaining) * inv, f, 'key');
    }

    // Refused (or reserved). Exact waits: after max(keyWait, globalWait) both buckets can pay.
    const keyWait = keyOk ? 0 : f === 0 || charge > cap + eps ? Infinity : (charge - x) * inv;
    const gWait = this.#hasGlobal
      ? f > 0
        ? waitMs(gx, charge, this.#gRate * f, this.#gBurst * f, this.#gEps)
        : Infinity
      : 0;
    let retryAfterMs = Math.max(keyWait, gWait);
    let reason: Decision['reason'] = 'shed';
    let scope: 'key' | 'global' = 'key';
    if (!keyOk) {
      // 'limited' when the key is over its own quota: at factor 1, or when its fill level scaled up
      // to factor 1 (x/f) could not pay the unscaled cost either. Otherwise the cut is the factor's.
      if (keyWait !== Infinity && (f === 1 || x + eps < cost * f)) reason = 'limited';
    } else if (!gOk) {
      scope = 'global';
    }
    if (s !== undefined && mode !== MODE_PEEK) this.#ref[s] = 1;

    if (blockedMs > 0) {
      if (blockedMs > retryAfterMs) retryAfterMs = blockedMs;
      return decision(false, 'blocked', Math.max(x, 0), cap, retryAfterMs, (cap - x) * inv, f, 'key');
    }

    if (mode === MODE_RESERVE && retryAfterMs !== Infinity && retryAfterMs <= maxWaitMs) {
      // Reserve: charge both buckets now; the caller waits retryAfterMs before proceeding.
      if (s === undefined) s = this.#create(key, now, tier);
      this.#state[2 * s] = x - charge;
      if (this.#blk !== undefined) this.#blk[s] = 0;
      if (this.#hasGlobal) this.#gTokens = gx - charge;
      this.#resSlot = s;
      this.#resCharge = charge;
      return decision(false, reason, 0, cap, retryAfterMs, (cap - x + charge) * inv, f, scope);
    }

    if (reason === 'limited' && mode !== MODE_PEEK && this.#blk !== undefined && s !== undefined) {
      const streak = 1 - this.#blk[s]!;
      if (streak >= this.#blockAfter) {
        this.#blk[s] = now - this.#epoch + this.#blockMs;
        reason = 'blocked';
        if (this.#blockMs > retryAfterMs) retryAfterMs = this.#blockMs;
      } else {
        this.#blk[s] = -streak;
      }
    }
    return decision(false, reason, Math.max(x, 0), cap, retryAfterMs, (cap - x) * inv, f, scope);
  }

  /** Brings slot `s` to `now` (replaying factor changes since its last settle) and returns its tokens. */
  #settle(s: number, now: number, rate: number, burst: number): number {
    const last = this.#state[2 * s + 1]!;
    if (last >= this.#lastChange) {
      if (!(now > last)) return this.#state[2 * s]!;
      const f = this.#f;
      const x = refill(this.#state[2 * s]!, now - last, rate * f, burst * f);
      this.#state[2 * s] = x;
      this.#state[2 * s + 1] = now;
      this.#lastNow = now;
      return x;
    }
    const x = this.#replay(this.#state[2 * s]!, last, now, rate, burst);
    this.#state[2 * s] = x;
    this.#state[2 * s + 1] = now;
    this.#lastNow = now;
    return x;
  }

  /** Like #settle, without writing anything. */
  #peekTokens(s: number, now: number, rate: number, burst: number): number {
    const last = this.#state[2 * s + 1]!;
    if (last >= this.#lastChange) {
      const f = this.#f;
      return refill(this.#state[2 * s]!, now - last, rate * f, burst * f);
    }
    return this.#replay(this.#state[2 * s]!, last, now, rate, burst);
  }

  /**
   * Tokens at `now` of a bucket holding `x` at `last`, replaying the logged factor changes after
   * `last`: each segment accrues at its own factor up to its own capacity; each change clamps to the
   * new capacity (growth creates no tokens).
   */
  #replay(x: number, last: number, now: number, rate: number, burst: number, inclusive = false): number {
    const logT = this.#logT;
    const logF = this.#logF;
    let i = this.#logLen;
    while (i > 0 && (logT[i - 1]! > last || (inclusive && logT[i - 1]! === last))) i--;
    let f = i === 0 ? this.#fPre : logF[i - 1]!;
    let t = last;
    for (; i < this.#logLen; i++) {
      const ti = logT[i]!;
      x = refill(x, ti - t, rate * f, burst * f);
      f = logF[i]!;
      const cap = burst * f;
      if (x > cap) x = cap;
      t = ti;
    }
    return refill(x, now - t, rate * f, burst * f);
  }

  #onFactor(next: number): void {
    if (typeof next !== 'number' || Number.isNaN(next)) return;
    const fNew = next < 0 ? 0 : Math.min(next, 1);
    if (fNew === this.#f) return;
    const now = this.#clock.now();
    const T = Math.max(now, this.#lastNow); // never record a change in a bucket's past

    if (this.#hasGlobal) {
      const f = this.#f;
      const g = refill(this.#gTokens, T - this.#gLast, this.#gRate * f, this.#gBurst * f);
      const cap = this.#gBurst * fNew;
      this.#gTokens = Math.min(g, cap);
      if (T > this.#gLast) this.#gLast = T;
    }

    // The idle buckets (one per tier) follow the change eagerly, like the global one.
    {
      const f = this.#f;
      const dt = T - this.#idleLast;
      for (let i = 0; i < this.#idle.length; i++) {
        const b = this.#tierBurst[i]!;
        this.#idle[i] = Math.min(refill(this.#idle[i]!, dt, this.#tierRate[i]! * f, b * f), b * fNew);
      }
      this.#idleLast = T;
    }

    const tierOf = this.#tierOf;
    let sweep = T === this.#lastNow;
    if (this.#logLen === FACTOR_LOG_SIZE) {
      // Log full: bring every stale bucket up to T once, then start an empty log at the new factor.
      for (const s of this.#map.values()) {
        if (this.#state[2 * s + 1]! < T) {
          const tier = tierOf === undefined ? 0 : tierOf[s]!;
          const rate = tierOf === undefined ? this.#rate : this.#tierRate[tier]!;
          const burst = tierOf === undefined ? this.#burst : this.#tierBurst[tier]!;
          this.#settle(s, T, rate, burst);
        }
      }
      this.#logLen = 0;
      this.#lastChange = -Infinity;
      this.#fPre = fNew;
      this.#logStart = T;
      this.#lastNow = T;
      sweep = true;
    } else {
      this.#logT[this.#logLen] = T;
      this.#logF[this.#logLen] = fNew;
      this.#logLen++;
      this.#lastChange = T;
    }
    if (sweep && fNew < this.#f) {
      // Buckets settled at this very instant are not replayed (their last settle is not before the
      // change), so the shrink's clamp is applied to them here.
      for (const s of this.#map.values()) {
        if (this.#state[2 * s + 1]! >= T) {
          const burst = tierOf === undefined ? this.#burst : this.#tierBurst[tierOf[s]!]!;
          const cap = burst * fNew;
          if (this.#state[2 * s]! > cap) this.#state[2 * s] = cap;
        }
      }
    }
    this.#f = fNew;
    this.#inv0 = fNew > 0 ? 1 / (this.#rate * fNew) : 0;
  }

  #create(key: string, now: number, tier: number): number {
    let s: number;
    const evicting = this.#map.size >= this.maxKeys;
    if (evicting) s = this.#evict(now);
    else {
      this.#hand = undefined;
      this.#handKey = undefined;
      if (this.#free.length > 0) s = this.#free.pop()!;
      else {
        if (this.#used === this.#capacity) this.#grow();
        s = this.#used++;
      }
    }
    this.#map.set(key, s);
    // Step the hand now: if that insertion rehashed the Map, the iterator moves to the new table at
    // once instead of keeping the old one alive until the next eviction.
    if (evicting) this.#handKey = this.#advance();
    this.#state[2 * s + 1] = now;
    if (now > this.#lastNow) this.#lastNow = now;
    this.#ref[s] = 0; // a new key earns its second chance by being used again (scan resistance)
    if (this.#blk !== undefined) this.#blk[s] = 0;
    if (this.#tierOf !== undefined) this.#tierOf[s] = tier;
    return s;
  }

  /** CLOCK: the first key that is full (drops without changing any decision) or unreferenced. */
  #evict(now: number): number {
    const tierOf = this.#tierOf;
    const blk = this.#blk;
    for (;;) {
      const key = this.#handKey ?? this.#advance();
      this.#handKey = undefined;
      const s = this.#map.get(key);
      if (s === undefined) continue; // deleted since the hand reached it
      let evict = this.#ref[s] === 0;
      if (!evict) {
        const burst = tierOf === undefined ? this.#burst : this.#tierBurst[tierOf[s]!]!;
        const rate = tierOf === undefined ? this.#rate : this.#tierRate[tierOf[s]!]!;
        const x = this.#settle(s, now, rate, burst);
        // Droppable: no block and no streak, and as many tokens as a missing key would have.
        const quiet = blk === undefined || blk[s] === 0;
        if (
          quiet &&
          x + burst * TOKEN_EPSILON >= this.#idleTokens(tierOf === undefined ? 0 : tierOf[s]!, now)
        ) {
          evict = true;
        } else this.#ref[s] = 0;
      }
      if (evict) {
        this.#map.delete(key);
        return s;
      }
    }
  }

  /** Moves the hand one key on, wrapping around at the end. */
  #advance(): string {
    if (this.#hand === undefined) this.#hand = this.#map.keys();
    let n = this.#hand.next();
    if (n.done === true) {
      this.#hand = this.#map.keys();
      n = this.#hand.next();
    }
    return n.value as string;
  }

  #grow(): void {
    const cap = Math.min(this.#capacity * 2, this.maxKeys);
    const grow = <T extends Float64Array | Uint8Array | Uint16Array | Uint32Array>(
      a: T,
      make: (n: number) => T,
    ): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.#state = grow(this.#state, (n) => new Float64Array(2 * n));
    this.#ref = grow(this.#ref, (n) => new Uint8Array(n));
    if (this.#blk !== undefined) this.#blk = grow(this.#blk, (n) => new Float64Array(n));
    if (this.#tierOf !== undefined) {
      const t = this.#tierOf;
      this.#tierOf =
        t instanceof Uint16Array ? grow(t, (n) => new Uint16Array(n)) : grow(t, (n) => new Uint32Array(n));
    }
    this.#capacity = cap;
  }

  /** Looks up, validates and interns the tier of a key that has no bucket yet. */
  #tierFor(key: string): number {
    const t = this.#tiers!(key);
    if (t === undefined) return 0;
    const where = `tiers(${JSON.stringify(key)})`;
    if (typeof t !== 'object' || t === null) {
      throw new ConfigError(where, t, 'an object { ratePerSec, burst } or undefined');
    }
    const ratePerSec = positiveNumber(`${where}.ratePerSec`, t.ratePerSec);
    const burst = positiveNumber(`${where}.burst`, t.burst);
    const id = `${ratePerSec}/${burst}`;
    let idx = this.#tierIndex.get(id);
    if (idx === undefined) {
      // Distinct tiers only grow with distinct answers; compact when dead ones dominate.
      if (this.#tierRate.length >= 2 * this.#map.size + 1024) this.#compactTiers();
      idx = this.#intern(id, ratePerSec / 1000, burst, this.#clock.now());
      if (idx > 0xffff && this.#tierOf instanceof Uint16Array) this.#tierOf = Uint32Array.from(this.#tierOf);
    }
    return idx;
  }

  /**
   * Adds a tier to the table. Its idle bucket is one that was full when the log was last emptied,
   * brought up to #idleLast through the logged changes.
   */
  #intern(id: string, ratePerMs: number, burst: number, now: number): number {
    const idx = this.#tierRate.length;
    this.#tierRate.push(ratePerMs);
    this.#tierBurst.push(burst);
    this.#tierId.push(id);
    this.#tierIndex.set(id, idx);
    const start = burst * this.#fPre;
    const at = Math.min(this.#idleLast, now);
    this.#idle.push(
      this.#logLen === 0 ? burst * this.#f : this.#replay(start, this.#logStart, at, ratePerMs, burst, true),
    );
    return idx;
  }

  /** Tokens now of a key that has no bucket. */
  #idleTokens(tier: number, now: number): number {
    const f = this.#f;
    const b = this.#tierBurst[tier]!;
    return refill(this.#idle[tier]!, now - this.#idleLast, this.#tierRate[tier]! * f, b * f);
  }

  /** Rebuilds the tier table from the live keys only. */
  #compactTiers(): void {
    const tierOf = this.#tierOf!;
    const oldRate = this.#tierRate;
    const oldBurst = this.#tierBurst;
    const oldId = this.#tierId;
    const oldIdle = this.#idle;
    const remap = new Map<number, number>();
    this.#tierRate = [];
    this.#tierBurst = [];
    this.#tierId = [];
    this.#idle = [];
    this.#tierIndex = new Map();
    const keep = (old: number): number => {
      const idx = this.#tierRate.length;
      remap.set(old, idx);
      this.#tierRate.push(oldRate[old]!);
      this.#tierBurst.push(oldBurst[old]!);
      this.#tierId.push(oldId[old]!);
      this.#idle.push(oldIdle[old]!);
      this.#tierIndex.set(oldId[old]!, idx);
      return idx;
    };
    keep(0);
    for (const s of this.#map.values()) {
      const old = tierOf[s]!;
      tierOf[s] = remap.get(old) ?? keep(old);
    }
  }

  #limitsOf(s: number): [rate: number, burst: number] {
    const tierOf = this.#tierOf;
    if (tierOf === undefined) return [this.#rate, this.#burst];
    return [this.#tierRate[tierOf[s]!]!, this.#tierBurst[tierOf[s]!]!];
  }

  #refund(key: string, slot: number, charge: number): void {
    const now = this.#clock.now();
    const f = this.#f;
    if (this.#map.get(key) === slot) {
      const [rate, burst] = this.#limitsOf(slot);
      const x = this.#settle(slot, now, rate, burst) + charge;
      const cap = burst * f;
      this.#state[2 * slot] = Math.min(x, cap);
    }
    if (this.#hasGlobal) {
      const cap = this.#gBurst * f;
      const g = refill(this.#gTokens, now - this.#gLast, this.#gRate * f, cap) + charge;
      this.#gTokens = Math.min(g, cap);
      if (now > this.#gLast) this.#gLast = now;
    }
  }

  #admittedNow(key: string, slot: number): KeyedDecision {
    const now = this.#clock.now();
    const f = this.#f;
    let rate = this.#rate;
    let burst = this.#burst;
    let x: number;
    if (this.#map.get(key) === slot) {
      [rate, burst] = this.#limitsOf(slot);
      x = this.#settle(slot, now, rate, burst);
    } else {
      const tier = this.#tierOf === undefined ? 0 : this.#tierOf[slot]!;
      [rate, burst] = [this.#tierRate[tier]!, this.#tierBurst[tier]!];
      x = this.#idleTokens(tier, now);
    }
    const cap = burst * f;
    const remaining = Math.max(x, 0);
    return decision(true, 'ok', remaining, cap, 0, resetOf(cap, remaining, rate * f), f, 'key');
  }
}

function resetOf(cap: number, x: number, ratePerMs: number): number {
  return ratePerMs > 0 ? (cap - x) / ratePerMs : 0;
}

function decision(
  allowed: boolean,
  reason: Decision['reason'],
  remaining: number,
  limit: number,
  retryAfterMs: number,
  resetMs: number,
  factor: number,
  scope: 'key' | 'global',
): KeyedDecision {
  return { allowed, reason, remaining, limit, retryAfterMs, resetMs, factor, scope };
}

/** A keyed limiter: one token bucket per key, an optional global bucket, scaled by a throttle factor. */
export function createLimiter(options: KeyedLimiterOptions): KeyedLimiter {
  return new KeyedLimiter(options);
}
