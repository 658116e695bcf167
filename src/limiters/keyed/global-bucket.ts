/**
 * The global bucket of a keyed limiter: one bucket every request also passes, a capacity for the
 * whole process. It follows factor changes eagerly (it is one bucket, not one per key).
 */
import { refill } from '../bucket-math.js';
import { TOKEN_EPSILON } from '../token-bucket.js';
import type { BucketLimits } from './tiers.js';

export class GlobalBucket {
  /** Rate per ms at factor 1. */
  readonly ratePerMs: number;
  /** Burst at factor 1. */
  readonly burst: number;
  /** Comparison tolerance: TOKEN_EPSILON of the burst. */
  readonly eps: number;
  tokens: number;
  last: number;

  constructor(limits: BucketLimits, factor: number, now: number) {
    this.ratePerMs = limits.ratePerSec / 1000;
    this.burst = limits.burst;
    this.eps = this.burst * TOKEN_EPSILON;
    this.tokens = this.burst * factor;
    this.last = now;
  }

  /** Tokens at `now` at factor `f`, without writing. */
  tokensAt(now: number, f: number): number {
    return refill(this.tokens, now - this.last, this.ratePerMs * f, this.burst * f);
  }

  /** Stores `tokens` as the balance at `now` (never moving the settle time back). */
  settle(tokens: number, now: number): void {
    this.tokens = tokens;
    if (now > this.last) this.last = now;
  }

  /** Brings the bucket to `at` under factor `f`, then clamps it to the capacity at `next`. */
  onFactor(at: number, f: number, next: number): void {
    this.settle(Math.min(this.tokensAt(at, f), this.burst * next), at);
  }

  /** Gives back `charge` tokens at `now` (never above the capacity at `f`). */
  refund(now: number, f: number, charge: number): void {
    const cap = this.burst * f;
    this.settle(Math.min(refill(this.tokens, now - this.last, this.ratePerMs * f, cap) + charge, cap), now);
  }
}
