/**
 * A token bucket whose rate and capacity scale with a throttle factor.
 *
 * At factor f the bucket refills at `ratePerSec·f` up to a capacity of `burst·f`. Refill is lazy:
 * the bucket stores its tokens and the time it last settled them, and a decision settles them
 * first. A factor change settles at the old rate up to that moment, then applies the new factor
 * (never retroactively): shrinking clamps the tokens to the new capacity, growing adds none.
 */
import { type Clock, MAX_TIMER_MS, systemClock, type TimerHandle } from '../clock.js';
import { AbortError, ConfigError } from '../errors.js';
import {
  abortSignalOption,
  callOptions,
  clockOption,
  finiteNumber,
  knownKeys,
  positiveNumber,
  ratio,
  waitOption,
} from '../validate.js';
import { refill } from './bucket-math.js';
import { type FactorOption, followFactor, resolveFactor } from './factor-option.js';
import type { Decision, RateAlgorithm } from './types.js';

/**
 * Admission compares with a tolerance of one part in 10^9 of the burst, so that a take after
 * exactly `retryAfterMs` succeeds despite floating-point rounding in `rate·elapsed`.
 */
export const TOKEN_EPSILON = 1e-9;

export interface TokenBucketOptions {
  /** Tokens added per second at factor 1. A finite number > 0. */
  ratePerSec: number;
  /** Capacity at factor 1: the largest burst admitted at once. A finite number > 0. */
  burst: number;
  /** @default systemClock */
  clock?: Clock;
  /**
   * Where the throttle factor comes from: a FactorSource to follow (a Governor, a ManualFactor),
   * or a fixed number from 0 to 1. @default 1
   */
  factor?: FactorOption;
  /** Tokens at start, from 0 to `burst·factor`. @default burst·factor (full) */
  initialTokens?: number;
}

export interface AcquireOptions {
  /** The longest this call may wait, in ms. A wait that would be longer is refused at once. @default Infinity */
  maxWaitMs?: number;
  /** Cancels the wait: the promise rejects with an AbortError and the place in the queue is given up. */
  signal?: AbortSignal;
}

interface Waiter {
  cost: number;
  deadline: number;
  resolve: (d: Decision) => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const OPTIONS = ['ratePerSec', 'burst', 'clock', 'factor', 'initialTokens'] as const;
const KEEP_ALIVE = Object.freeze({ keepAlive: true });

export class TokenBucket implements RateAlgorithm {
  readonly ratePerSec: number;
  readonly burst: number;
  readonly #clock: Clock;
  readonly #ratePerMs: number;
  readonly #eps: number;
  #factor: number;
  #tokens: number;
  #last: number;
  readonly #queue: Waiter[] = [];
  #queuedCost = 0;
  #timer: TimerHandle | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(options: TokenBucketOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object with ratePerSec and burst');
    }
    knownKeys('TokenBucket', options, OPTIONS);
    this.ratePerSec = positiveNumber('ratePerSec', options.ratePerSec);
    this.burst = positiveNumber('burst', options.burst);
    this.#clock = clockOption('clock', options.clock, systemClock);
    const factor = resolveFactor(options.factor);
    this.#factor = factor.initial;
    this.#ratePerMs = this.ratePerSec / 1000;
    this.#eps = this.burst * TOKEN_EPSILON;
    const capacity = this.burst * this.#factor;
    this.#tokens =
      options.initialTokens === undefined
        ? capacity
        : finiteNumber('initialTokens', options.initialTokens, 0, capacity);
    this.#last = this.#clock.now();
    this.#unsubscribe = followFactor(factor, (f) => this.setFactor(f));
  }

  /** Stops following the factor source (waiting callers keep their places, at the last factor). */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  get factor(): number {
    return this.#factor;
  }

  /** Tokens in the bucket now. */
  get tokens(): number {
    this.#settle(this.#clock.now());
    return this.#tokens;
  }

  /** Total cost of the callers waiting in `acquire`. */
  get queuedCost(): number {
    return this.#queuedCost;
  }

  /** Number of callers waiting in `acquire`. */
  get waiting(): number {
    return this.#queue.length;
  }

  setFactor(factor: number): void {
    ratio('factor', factor);
    if (factor === this.#factor) return;
    this.#settle(this.#clock.now());
    this.#factor = factor;
    const capacity = this.burst * factor;
    if (this.#tokens > capacity) this.#tokens = capacity;
    if (this.#queue.length > 0) this.#reschedule();
  }

  take(cost = 1): Decision {
    this.#checkCost(cost);
    return this.#decide(cost, true);
  }

  peek(cost = 1): Decision {
    this.#checkCost(cost);
    return this.#decide(cost, false);
  }

  /**
   * Waits in FIFO order until `cost` tokens are available, then takes them. Resolves with the
   * decision: admitted, or refused at once when the wait would exceed `maxWaitMs` (or, after a
   * factor cut, when the new wait would pass the caller's deadline). Rejects only with an
   * AbortError when `signal` aborts.
   */
  acquire(cost = 1, options?: AcquireOptions): Promise<Decision> {
    this.#checkCost(cost);
    const o = callOptions(options);
    const maxWaitMs = waitOption('maxWaitMs', o.maxWaitMs, Infinity);
    const signal = abortSignalOption('signal', o.signal);
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason));

    const now = this.#clock.now();
    const d = this.#decide(cost, true);
    if (d.allowed || d.retryAfterMs > maxWaitMs) return Promise.resolve(d);

    return new Promise<Decision>((resolve, reject) => {
      const waiter: Waiter = { cost, deadline: now + maxWaitMs, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          this.#remove(waiter);
          reject(new AbortError(signal.reason));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#queue.push(waiter);
      this.#queuedCost += cost;
      this.#reschedule();
    });
  }

  #checkCost(cost: number): void {
    if (typeof cost !== 'number' || !Number.isFinite(cost) || !(cost > 0) || cost > this.burst) {
      throw new ConfigError('cost', cost, `a finite number > 0 and <= burst (${this.burst})`);
    }
  }

  #settle(now: number): void {
    if (now > this.#last) {
      const f = this.#factor;
      this.#tokens = refill(this.#tokens, now - this.#last, this.#ratePerMs * f, this.burst * f);
      this.#last = now;
    }
  }

  /**
   * Milliseconds until the callers ahead (`needed - cost` tokens in all) and then one of `cost`
   * have been served, at the current factor. The bucket never has to hold more than one caller's
   * cost at a time (each is served as soon as its tokens are there), so `needed` may exceed the
   * capacity; only a single `cost` above it can never be served.
   */
  #waitFor(needed: number, cost: number): number {
    const deficit = needed - this.#tokens;
    if (deficit <= this.#eps) return 0;
    const r = this.#ratePerMs * this.#factor;
    if (r === 0 || cost > this.burst * this.#factor + this.#eps) return Infinity;
    return deficit / r;
  }

  #decide(cost: number, charge: boolean): Decision {
    const now = this.#clock.now();
    this.#settle(now);
    // A real timer fires late under load: serve the waiters whose tokens are already there first,
    // so that this caller is neither refused behind them nor admitted ahead of them.
    const head = this.#queue[0];
    if (head !== undefined && this.#tokens + this.#eps >= head.cost) this.#reschedule();
    const f = this.#factor;
    const capacity = this.burst * f;
    // Waiting callers are ahead of this one: it is admitted only behind them (FIFO, no starvation).
    const ahead = this.#queuedCost;
    const needed = ahead + cost;
    const resetMs = f > 0 ? (capacity - this.#tokens) / (this.#ratePerMs * f) : 0;
    if (ahead === 0 && this.#tokens + this.#eps >= cost) {
      if (charge) this.#tokens = Math.max(0, this.#tokens - cost);
      const remaining = charge ? this.#tokens : this.#tokens - cost;
      return {
        allowed: true,
        reason: 'ok',
        remaining,
        limit: capacity,
        retryAfterMs: 0,
        resetMs: f > 0 ? (capacity - remaining) / (this.#ratePerMs * f) : 0,
        factor: f,
      };
    }
    // Over a cost that the unthrottled bucket could take, the refusal is the factor's doing.
    const retryAfterMs = cost > capacity + this.#eps && f < 1 ? Infinity : this.#waitFor(needed, cost);
    return {
      allowed: false,
      reason: f < 1 ? 'shed' : 'limited',
      remaining: this.#tokens,
      limit: capacity,
      retryAfterMs,
      resetMs,
      factor: f,
    };
  }

  /** Serves the head of the queue when it can be, and sets one timer for the next time it can. */
  #reschedule(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    const now = this.#clock.now();
    this.#settle(now);
    // Serve everything that can be served now, in order.
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (this.#tokens + this.#eps >= head.cost) {
        this.#shift();
        this.#tokens = Math.max(0, this.#tokens - head.cost);
        const capacity = this.burst * this.#factor;
        head.resolve({
          allowed: true,
          reason: 'ok',
          remaining: this.#tokens,
          limit: capacity,
          retryAfterMs: 0,
          resetMs: (capacity - this.#tokens) / (this.#ratePerMs * this.#factor),
          factor: this.#factor,
        });
        continue;
      }
      break;
    }
    // Refuse every waiter whose projected admission now falls past its deadline: a factor cut can
    // push it there. Those behind move up, so projections are recomputed in one pass.
    let cumulative = 0;
    for (let i = 0; i < this.#queue.length; i++) {
      const w = this.#queue[i]!;
      const at = now + this.#waitFor(cumulative + w.cost, w.cost);
      if (at > w.deadline + TOKEN_EPSILON) {
        this.#queue.splice(i, 1);
        this.#queuedCost -= w.cost;
        this.#detach(w);
        i--;
        w.resolve(this.#refusal(w.cost, at - now));
        continue;
      }
      cumulative += w.cost;
    }
    if (this.#queuedCost < this.#eps) this.#queuedCost = 0;
    const head = this.#queue[0];
    if (head === undefined) return;
    // A waiter is its caller's work in progress: its timer keeps the process alive (keepAlive).
    // At an unbounded wait (factor 0) the factor must rise first, and setFactor reschedules; a
    // timer of MAX_TIMER_MS still holds the process open for it meanwhile (it only re-checks).
    const wait = Math.min(this.#waitFor(head.cost, head.cost), MAX_TIMER_MS);
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.#reschedule();
      },
      wait,
      KEEP_ALIVE,
    );
  }

  #refusal(cost: number, retryAfterMs: number): Decision {
    const f = this.#factor;
    const capacity = this.burst * f;
    return {
      allowed: false,
      reason: f < 1 ? 'shed' : 'limited',
      remaining: this.#tokens,
      limit: capacity,
      retryAfterMs: cost > capacity + this.#eps && f < 1 ? Infinity : retryAfterMs,
      resetMs: f > 0 ? (capacity - this.#tokens) / (this.#ratePerMs * f) : 0,
      factor: f,
    };
  }

  #shift(): void {
    const w = this.#queue.shift()!;
    this.#queuedCost -= w.cost;
    if (this.#queuedCost < this.#eps) this.#queuedCost = 0;
    this.#detach(w);
  }

  #remove(w: Waiter): void {
    const i = this.#queue.indexOf(w);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    this.#queuedCost -= w.cost;
    if (this.#queuedCost < this.#eps) this.#queuedCost = 0;
    this.#detach(w);
    this.#reschedule();
  }

  #detach(w: Waiter): void {
    if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
  }
}
