/**
 * The `onError: 'local'` fallback: token buckets in this process, bounded in number (least
 * recently used go first), with the same arithmetic as the Redis script but the process clock.
 * The limits it receives are already divided by the expected number of instances.
 */
import type { Clock } from '../../clock.js';
import type { StoreDecision } from '../types.js';
import { bucketDecision } from './decision.js';

interface Bucket {
  tokens: number;
  lastMs: number;
  ratePerMs: number;
  capacity: number;
}

export class LocalBuckets {
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(clock: Clock, maxKeys: number) {
    this.#clock = clock;
    this.#maxKeys = maxKeys;
  }

  get size(): number {
    return this.#buckets.size;
  }

  decide(
    op: 't' | 'p' | 'r',
    key: string,
    cost: number,
    ratePerSec: number,
    burst: number,
    factor: number,
  ): StoreDecision {
    const now = this.#clock.now();
    const rate = (ratePerSec / 1000) * factor;
    const cap = burst * factor;
    const b = this.#buckets.get(key);
    let tokens = cap;
    if (b !== undefined) {
      tokens = Math.min(b.capacity, cap, b.tokens + Math.max(0, now - b.lastMs) * b.ratePerMs);
      this.#buckets.delete(key); // re-inserted below: Map order is recency
    }
    let allowed = true;
    if (op === 'r') tokens = Math.min(cap, tokens + cost);
    else if (tokens + 1e-9 < cost) allowed = false;
    else if (op === 't') tokens = Math.max(0, tokens - cost);
    if (op === 'p') {
      if (b !== undefined) this.#buckets.set(key, b);
    } else if (op === 't' || b !== undefined) {
      const next = b ?? { tokens, lastMs: now, ratePerMs: rate, capacity: cap };
      next.tokens = tokens;
      next.lastMs = now;
      next.ratePerMs = rate;
      next.capacity = cap;
      this.#buckets.set(key, next);
      if (this.#buckets.size > this.#maxKeys) {
        this.#buckets.delete(this.#buckets.keys().next().value as string);
      }
    }
    return bucketDecision(allowed, tokens, cost, rate, cap);
  }

  reset(key: string): void {
    this.#buckets.delete(key);
  }

  clear(): void {
    this.#buckets.clear();
  }
}
