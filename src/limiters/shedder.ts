/**
 * Process-level admission driven by the throttle factor alone, for when nobody knows the capacity.
 *
 * While the factor is 1 the Shedder admits everything and learns the admitted rate (a
 * time-weighted average over `learnWindowMs`). When the governor first cuts, that rate is taken as
 * the base `R0` (the rate the process was handling when pressure started) and admission passes a
 * token bucket of rate `R0·f` and capacity `R0·f·burstMs`. The governor keeps cutting while
 * pressure stays above its engage threshold, so `R0·f` settles where the process is busy but not
 * overloaded, whatever `R0` was.
 *
 * When the factor is back at 1 the limit stays at `R0` for as long as it keeps refusing work (the
 * overload may still be there, and lifting the limit would let it back in at once: a flap). While it
 * refuses at factor 1 the base grows by `probePerSec` (the process is fine at `R0`, so try more);
 * after `releaseAfterMs` without a refusal the limit is lifted and learning starts again.
 *
 * With `ratePerSec` set (a known capacity), the base is fixed and always enforced.
 *
 * Priorities: a request of priority p costs `cost·f/e_p` tokens, where `e_p = factorFor(p)`: alone,
 * a class is admitted at exactly `R0·e_p`, so sheddable work feels a cut first and critical work
 * keeps a reserve down to the floor.
 */
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { fn, knownKeys, positiveNumber } from '../validate.js';
import { TOKEN_EPSILON, TokenBucket } from './token-bucket.js';
import type { Decision, FactorSource, Priority } from './types.js';

export interface ShedderOptions {
  /** Where the throttle factor comes from: a Governor (or a ManualFactor). Required. */
  factor: FactorSource;
  /** A known capacity in requests (cost units) per second. @default undefined (learned) */
  ratePerSec?: number;
  /** The bucket holds this many milliseconds of the limited rate, for bursts. @default 250 */
  burstMs?: number;
  /** Time constant of the learned-rate average, in ms. @default 2000 */
  learnWindowMs?: number;
  /** The learned base never falls below this, per second. @default 1 */
  minRatePerSec?: number;
  /** How fast the base grows while it refuses at factor 1, as a share per second (0.1 = 10%/s). @default 0.1 */
  probePerSec?: number;
  /** Refusal-free time at factor 1 after which the learned limit is lifted, in ms. @default 5000 */
  releaseAfterMs?: number;
  /** Retry-After for a request that cannot be admitted at the current factor at all, in ms. @default 1000 */
  shedRetryAfterMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

export interface AdmitOptions {
  /** @default 1 */
  cost?: number;
  /** @default 'normal' */
  priority?: Priority;
}

/** What the Shedder is doing: admitting freely while it learns, or enforcing a rate. */
export type ShedderState =
  | { readonly mode: 'learning'; readonly learnedRatePerSec: number }
  | { readonly mode: 'limiting'; readonly baseRatePerSec: number; readonly limitPerSec: number };

export const SHEDDER_DEFAULTS = Object.freeze({
  burstMs: 250,
  learnWindowMs: 2000,
  minRatePerSec: 1,
  probePerSec: 0.1,
  releaseAfterMs: 5000,
  shedRetryAfterMs: 1000,
});

const OPTIONS = [
  'factor',
  'ratePerSec',
  'burstMs',
  'learnWindowMs',
  'minRatePerSec',
  'probePerSec',
  'releaseAfterMs',
  'shedRetryAfterMs',
  'clock',
] as const;

const ALLOWED_FREE: Decision = Object.freeze({
  allowed: true,
  reason: 'ok',
  remaining: Infinity,
  limit: Infinity,
  retryAfterMs: 0,
  resetMs: 0,
  factor: 1,
});

export class Shedder {
  readonly #source: FactorSource;
  readonly #clock: Clock;
  readonly #fixedRate: number | undefined;
  readonly #burstMs: number;
  readonly #tauMs: number;
  readonly #minRate: number;
  readonly #probePerSec: number;
  readonly #releaseAfterMs: number;
  readonly #shedRetryAfterMs: number;
  readonly #unsubscribe: () => void;

  // Learning: admitted cost since `#windowStart`, folded into `#learned` (per second) by a
  // time-weighted average whenever a window of at least a tenth of the time constant closes.
  #learned = 0;
  #learnedValid = false;
  #windowStart: number;
  #windowCost = 0;

  #bucket: TokenBucket | undefined;
  #base = 0;
  #lastRefusal = -Infinity;
  #lastProbe = 0;

  constructor(options: ShedderOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object with a `factor` (a Governor or ManualFactor)');
    }
    knownKeys('Shedder', options, OPTIONS);
    const source = options.factor;
    if (typeof source !== 'object' || source === null || typeof source.factorFor !== 'function') {
      throw new ConfigError('factor', source, 'a FactorSource (a Governor or a ManualFactor)');
    }
    fn('factor.subscribe', source.subscribe);
    this.#source = source;
    this.#clock = options.clock ?? systemClock;
    this.#fixedRate =
      options.ratePerSec === undefined ? undefined : positiveNumber('ratePerSec', options.ratePerSec);
    const d = SHEDDER_DEFAULTS;
    this.#burstMs = positiveNumber('burstMs', options.burstMs ?? d.burstMs);
    this.#tauMs = positiveNumber('learnWindowMs', options.learnWindowMs ?? d.learnWindowMs);
    this.#minRate = positiveNumber('minRatePerSec', options.minRatePerSec ?? d.minRatePerSec);
    this.#probePerSec = positiveNumber('probePerSec', options.probePerSec ?? d.probePerSec, 0, 10);
    this.#releaseAfterMs = positiveNumber('releaseAfterMs', options.releaseAfterMs ?? d.releaseAfterMs);
    this.#shedRetryAfterMs = positiveNumber(
      'shedRetryAfterMs',
      options.shedRetryAfterMs ?? d.shedRetryAfterMs,
    );
    this.#windowStart = this.#clock.now();
    if (this.#fixedRate !== undefined) this.#limit(this.#fixedRate, source.factor);
    else if (source.factor < 1) this.#limit(this.#minRate, source.factor);
    this.#unsubscribe = source.subscribe((f) => this.#onFactor(f));
  }

  /** Learning freely, or limiting at a rate. */
  get state(): ShedderState {
    if (this.#bucket === undefined) {
      return { mode: 'learning', learnedRatePerSec: this.#currentRate(this.#clock.now()) };
    }
    return { mode: 'limiting', baseRatePerSec: this.#base, limitPerSec: this.#base * this.#bucket.factor };
  }

  /** Decides one request. Refusals have reason 'shed': the process, not the client, is the limit. */
  admit(options?: AdmitOptions): Decision {
    const cost = options?.cost ?? 1;
    if (typeof cost !== 'number' || !(cost > 0) || !Number.isFinite(cost)) {
      throw new ConfigError('cost', cost, 'a finite number > 0');
    }
    const now = this.#clock.now();
    let bucket = this.#bucket;
    if (bucket !== undefined && bucket.factor >= 1 && this.#fixedRate === undefined) {
      if (now - this.#lastRefusal >= this.#releaseAfterMs) {
        this.#release(now);
        bucket = undefined;
      }
    }
    if (bucket === undefined) {
      this.#windowCost += cost;
      if (now - this.#windowStart >= this.#tauMs / 10) this.#currentRate(now);
      return ALLOWED_FREE;
    }
    const f = bucket.factor;
    const e = options?.priority === undefined ? f : this.#source.factorFor(options.priority);
    const scaled = e === f ? cost : e > 0 ? (cost * f) / e : Infinity;
    if (!(scaled <= bucket.burst * f * (1 + TOKEN_EPSILON))) {
      this.#lastRefusal = now;
      return {
        allowed: false,
        reason: 'shed',
        remaining: 0,
        limit: bucket.burst * f,
        retryAfterMs: this.#shedRetryAfterMs,
        resetMs: 0,
        factor: e,
      };
    }
    const d = bucket.take(Math.min(scaled, bucket.burst));
    if (d.allowed) return d;
    this.#lastRefusal = now;
    if (f >= 1 && this.#fixedRate === undefined) this.#probe(now);
    return d.reason === 'shed' ? d : { ...d, reason: 'shed' };
  }

  /** Stops following the factor source. */
  close(): void {
    this.#unsubscribe();
  }

  #onFactor(f: number): void {
    const now = this.#clock.now();
    if (this.#bucket === undefined) {
      if (f < 1) this.#limit(Math.max(this.#minRate, this.#currentRate(now)), f);
      return;
    }
    if (f >= 1 && this.#fixedRate === undefined && now - this.#lastRefusal >= this.#releaseAfterMs) {
      this.#release(now);
      return;
    }
    this.#bucket.setFactor(f);
    this.#lastProbe = now;
  }

  /** Enforces `base·f`. A bucket replacing another keeps its tokens: a new base brings no free burst. */
  #limit(base: number, f: number): void {
    const burst = Math.max(1, (base * this.#burstMs) / 1000);
    const previous = this.#bucket;
    this.#base = base;
    this.#bucket = new TokenBucket({
      ratePerSec: base,
      burst,
      factor: f,
      clock: this.#clock,
      initialTokens: previous === undefined ? burst * f : Math.min(previous.tokens, burst * f),
    });
    this.#lastProbe = this.#clock.now();
  }

  #release(now: number): void {
    this.#bucket = undefined;
    this.#learned = this.#base;
    this.#learnedValid = true;
    this.#windowStart = now;
    this.#windowCost = 0;
  }

  /** At factor 1 and still refusing: the process copes with the base, so raise it, compounding per second. */
  #probe(now: number): void {
    const elapsed = now - this.#lastProbe;
    if (elapsed < 100) return;
    if (now - this.#lastRefusal > this.#releaseAfterMs) {
      this.#release(now);
      return;
    }
    const grown = this.#base * (1 + this.#probePerSec) ** (elapsed / 1000);
    this.#limit(grown, 1);
  }

  /** The learned admitted rate per second, folding in the open window. */
  #currentRate(now: number): number {
    const elapsed = now - this.#windowStart;
    if (elapsed <= 0) return this.#learned;
    const windowRate = (this.#windowCost * 1000) / elapsed;
    if (!this.#learnedValid) {
      if (elapsed >= this.#tauMs / 10) {
        this.#learned = windowRate;
        this.#learnedValid = true;
        this.#windowStart = now;
        this.#windowCost = 0;
      }
      return windowRate;
    }
    const alpha = 1 - Math.exp(-elapsed / this.#tauMs);
    const blended = this.#learned + alpha * (windowRate - this.#learned);
    if (elapsed >= this.#tauMs / 10) {
      this.#learned = blended;
      this.#windowStart = now;
      this.#windowCost = 0;
    }
    return blended;
  }
}
