/**
 * The in-memory Store: token buckets in this process, bounded in number, on the keyed limiter's
 * slot table (typed arrays, CLOCK eviction) and the shared bucket arithmetic. It answers
 * synchronously.
 *
 * Per key it keeps the tokens, the time of the last write, and the rate and capacity in force
 * since then (the factor of the last caller applied): the elapsed interval refills at the rate
 * that was in force during it, and from this call on the caller's factor applies (the capacity
 * clamps at once). This is the arithmetic of the Redis store's script, so a limiter decides the
 * same on either. When the table is full the CLOCK hand evicts a key not used since it last passed,
 * or one whose bucket is full again (a missing key reads as a full bucket, so that loses nothing).
 */
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { refill } from '../limiters/bucket-math.js';
import { SlotTable } from '../limiters/keyed/slot-table.js';
import { TOKEN_EPSILON } from '../limiters/token-bucket.js';
import { clockOption, integer, knownKeys } from '../validate.js';
import type { Store, StoreDecision, StoreTakeRequest } from './types.js';

export interface MemoryStoreOptions {
  /**
   * The most keys held at once; past it a key not used recently (or one whose bucket is full
   * again) is evicted. An integer from 1 to 2^30. @default 100_000
   */
  maxKeys?: number;
  /** @default systemClock */
  clock?: Clock;
}

export const MEMORY_STORE_DEFAULTS = Object.freeze({ maxKeys: 100_000 });

// Per slot in the table's state: tokens, last write (ms), rate per ms in force, capacity in force.
const STRIDE = 4;

type Op = 'take' | 'peek' | 'refund';

export class MemoryStore implements Store {
  readonly maxKeys: number;
  readonly #clock: Clock;
  readonly #slots: SlotTable;
  readonly #canDrop: (slot: number, now: number) => boolean;

  constructor(options: MemoryStoreOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object { maxKeys?, clock? }');
    }
    knownKeys('MemoryStore', options, ['maxKeys', 'clock']);
    this.maxKeys = integer('maxKeys', options.maxKeys ?? MEMORY_STORE_DEFAULTS.maxKeys, 1, 2 ** 30);
    this.#clock = clockOption('clock', options.clock, systemClock, false);
    this.#slots = new SlotTable({ maxKeys: this.maxKeys, block: false, tiers: false, stride: STRIDE });
    this.#canDrop = (slot, now) => this.#isFull(slot, now);
  }

  /** Keys held now. */
  get size(): number {
    return this.#slots.size;
  }

  /** Whether the store holds state for `key` (a missing key reads as a full bucket). */
  has(key: string): boolean {
    return this.#slots.map.has(key);
  }

  take(request: StoreTakeRequest): StoreDecision {
    return this.#decide(request, 'take');
  }

  peek(request: StoreTakeRequest): StoreDecision {
    return this.#decide(request, 'peek');
  }

  refund(request: StoreTakeRequest): void {
    this.#decide(request, 'refund');
  }

  reset(key: string): void {
    this.#slots.delete(key);
  }

  close(): void {
    this.#slots.clear();
  }

  #decide(request: StoreTakeRequest, op: Op): StoreDecision {
    const { key, cost, limits, factor } = request;
    const now = this.#clock.now();
    const rate = (limits.ratePerSec / 1000) * factor;
    const cap = limits.burst * factor;
    const eps = limits.burst * TOKEN_EPSILON;
    const slots = this.#slots;
    const s = slots.map.get(key);
    let tokens = cap;
    if (s !== undefined) {
      const st = slots.state;
      const i = STRIDE * s;
      const last = st[i + 1]!;
      tokens = refill(st[i]!, now - last, st[i + 2]!, st[i + 3]!);
      if (tokens > cap) tokens = cap;
    }
    let allowed = true;
    if (op === 'refund') {
      tokens = tokens + cost < cap ? tokens + cost : cap;
    } else if (!(cost <= cap + eps && tokens + eps >= cost)) {
      allowed = false;
    } else if (op === 'take') {
      tokens = tokens - cost > 0 ? tokens - cost : 0;
    }
    // A peek writes nothing; a refund to a missing key changes nothing (it reads as full).
    if (op === 'take' ? allowed || s !== undefined : op === 'refund' && s !== undefined) {
      this.#write(key, s, now, tokens, rate, cap);
    }
    const retryAfterMs = allowed ? 0 : rate > 0 && cost <= cap + eps ? (cost - tokens) / rate : Infinity;
    const resetMs = rate > 0 ? (cap - tokens) / rate : tokens >= cap ? 0 : Infinity;
    return { allowed, remaining: tokens, retryAfterMs, resetMs };
  }

  #write(key: string, s: number | undefined, now: number, tokens: number, rate: number, cap: number): void {
    const slots = this.#slots;
    if (s === undefined) s = slots.create(key, now, 0, this.#canDrop);
    else slots.ref[s] = 1;
    const st = slots.state;
    const i = STRIDE * s;
    st[i] = tokens;
    if (now > st[i + 1]!) st[i + 1] = now;
    st[i + 2] = rate;
    st[i + 3] = cap;
  }

  /** A bucket full again decides like a missing key: it may go. */
  #isFull(s: number, now: number): boolean {
    const st = this.#slots.state;
    const i = STRIDE * s;
    const cap = st[i + 3]!;
    return refill(st[i]!, now - st[i + 1]!, st[i + 2]!, cap) >= cap * (1 - TOKEN_EPSILON);
  }
}
