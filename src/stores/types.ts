/**
 * The seam between a keyed limiter and where its bucket state lives. The in-memory store (the
 * default) answers synchronously; a shared store (Redis) answers with a promise. Pure types.
 *
 * A store keeps one token bucket per key. Every call carries the limits at factor 1 and the
 * caller's effective factor for this request, so each caller's current factor scales the shared
 * bucket: it refills at `ratePerSec·factor` up to `burst·factor` from the moment of the call on.
 */

/** A rate and a burst, both at factor 1. */
export interface StoreLimits {
  /** Tokens added per second at factor 1. A finite number > 0. */
  readonly ratePerSec: number;
  /** Capacity at factor 1. A finite number > 0. */
  readonly burst: number;
}

export interface StoreTakeRequest {
  /** The key, already bounded in length by the limiter. */
  readonly key: string;
  /** Tokens to take: a finite number > 0. */
  readonly cost: number;
  /** The key's limits at factor 1 (its tier's, or the limiter's). */
  readonly limits: StoreLimits;
  /** The effective factor for this request (its priority applied), from 0 to 1. */
  readonly factor: number;
}

export interface StoreDecision {
  readonly allowed: boolean;
  /** Tokens left in the key's bucket after this decision. */
  readonly remaining: number;
  /** 0 when admitted; else ms until `cost` tokens are there at this factor; Infinity if never. */
  readonly retryAfterMs: number;
  /** Ms until the bucket is full again at this factor. */
  readonly resetMs: number;
  /**
   * True on a refusal that the store made because it could not decide (Redis down under
   * `onError: 'closed'`): an outage, not the key's quota. A limiter reports it as `shed` (the
   * HTTP guard answers 503, not 429). Absent otherwise.
   */
  readonly unavailable?: boolean;
}

export interface Store {
  /** Takes `cost` tokens when they are there; answers either way. */
  take(request: StoreTakeRequest): StoreDecision | Promise<StoreDecision>;
  /** What `take` would answer, without charging. */
  peek(request: StoreTakeRequest): StoreDecision | Promise<StoreDecision>;
  /** Gives back `cost` tokens (never above the burst), e.g. when a later stage refused. */
  refund(request: StoreTakeRequest): void | Promise<void>;
  /** Forgets a key: its next take sees a full bucket. */
  reset(key: string): void | Promise<void>;
  /** Releases what the store holds (connections are the caller's and stay open). */
  close(): void | Promise<void>;
}
