/**
 * The adaptive concurrency limit: a Vegas estimator (Brakmo & Peterson, "TCP Vegas: End to End
 * Congestion Avoidance on a Global Internet", IEEE JSAC 13(8), 1995), as Netflix's
 * concurrency-limits applies it to request concurrency (`VegasLimit`), over windows of samples.
 *
 * A sample is the time one unit of work held its slot (its round-trip time, `rtt`). With `L` the
 * limit, `rtt₀` the no-load rtt (the least seen) and `rtt` the window's mean:
 *
 *   queue = ⌈L · (1 − rtt₀ / rtt)⌉            the units waiting behind the limit, downstream
 *   λ(L)  = max(1, ⌊log₁₀ L⌋)                  α = 3λ, β = 6λ, threshold = λ
 *
 *   a drop in the window (release({ dropped: true }))  L' = L − λ
 *   max in flight · 2 < L (not using the limit)         L' = L     (no drift while idle)
 *   queue ≤ threshold                                   L' = L + β (nothing queues: grow fast)
 *   queue < α                                           L' = L + λ
 *   queue > β                                           L' = L − λ (latency builds: shrink)
 *   otherwise                                           L' = L     (α..β queued: the sweet spot)
 *
 *   L ← (1 − smoothing) · L + smoothing · clamp(L', minLimit, maxLimit)
 *
 * So the limit settles where α to β units wait downstream: a pool of 8 connections held 20 ms
 * settles near 11 to 14 in flight, the pool busy and ~30 ms per unit.
 *
 * A stalled event loop lengthens every rtt by its own delay, and that is not queueing downstream
 * (measured live: with the machine's load average near 9 the limit fell to 3 in front of a pool of
 * 8). So each window also reads the loop's delay over the window, `lag` (src/loop-delay.ts: the
 * mean time a callback that became due waited for the loop, in ms), and the loop may only stop a
 * cut, never cause growth:
 *
 *   rtt' = max(rtt₀, rtt − lag)
 *   L'   = min(step(rtt'), max(L, step(rtt)))
 *
 * When the raw window asks to grow or hold, nothing changes. When it asks to shrink, the limit
 * shrinks only if the window still asks to once the loop's delay is taken out of its rtt; otherwise
 * it holds. A drop (a timeout downstream) shrinks it either way.
 *
 * rtt₀ goes stale when the downstream becomes slower or faster for good. Every `probeIntervalMs`
 * while the limit is in use, one window runs at half the limit (ProbeRTT, as in BBR: Cardwell et
 * al., "BBR: Congestion-Based Congestion Control", ACM Queue 14(5), 2016) and the least rtt of the
 * units admitted during it becomes rtt₀. Otherwise rtt₀ is the least rtt seen.
 *
 * Pure: time and samples come in as arguments (and the loop's delay from an injected source).
 */
import type { LoopDelaySource } from '../../loop-delay.js';

export interface VegasOptions {
  /** The limit to start from, in units. @default 20 */
  readonly initialLimit: number;
  /** @default 1 */
  readonly minLimit: number;
  /** @default 1000 */
  readonly maxLimit: number;
  /** Weight of a new estimate, from 0 (exclusive) to 1. @default 1 */
  readonly smoothing: number;
  /** A window closes after at least this long, in ms... @default 100 */
  readonly windowMs: number;
  /** ...and at least this many samples. @default 10 */
  readonly minSamples: number;
  /** How often rtt₀ is measured again at half the limit, in ms. @default 10000 */
  readonly probeIntervalMs: number;
}

export const VEGAS_DEFAULTS = Object.freeze({
  initialLimit: 20,
  minLimit: 1,
  maxLimit: 1000,
  smoothing: 1,
  windowMs: 100,
  minSamples: 10,
  probeIntervalMs: 10_000,
});

/** λ(L) = max(1, ⌊log₁₀ L⌋), Netflix's `Log10RootFunction`. */
export function vegasLambda(limit: number): number {
  return Math.max(1, Math.floor(Math.log10(Math.max(1, limit))));
}

/** One Vegas step from `limit` given the window's mean and the no-load rtt (before clamping and smoothing). */
export function vegasStep(
  limit: number,
  rttMs: number,
  rttNoLoadMs: number,
  maxInFlight: number,
  dropped: boolean,
): number {
  const l = vegasLambda(limit);
  if (dropped) return limit - l;
  if (maxInFlight * 2 < limit) return limit;
  const queue = rttMs > 0 ? Math.ceil(limit * (1 - rttNoLoadMs / rttMs)) : 0;
  if (queue <= l) return limit + 6 * l;
  if (queue < 3 * l) return limit + l;
  if (queue > 6 * l) return limit - l;
  return limit;
}

/**
 * One Vegas step that the loop's delay may stop from cutting: `min(step(rtt'), max(L, step(rtt)))`
 * with `rtt' = max(rtt₀, rtt − lagMs)` (see the module comment).
 */
export function vegasStepWithLag(
  limit: number,
  rttMs: number,
  rttNoLoadMs: number,
  lagMs: number,
  maxInFlight: number,
  dropped: boolean,
): number {
  const raw = vegasStep(limit, rttMs, rttNoLoadMs, maxInFlight, dropped);
  if (!(lagMs > 0) || raw >= limit) return raw;
  const discounted = Math.max(rttNoLoadMs, rttMs - lagMs);
  return Math.min(vegasStep(limit, discounted, rttNoLoadMs, maxInFlight, dropped), limit);
}

export class VegasEstimator {
  readonly options: VegasOptions;
  #limit: number;
  #rttNoLoad = Infinity;
  #windowStart: number;
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #maxInFlight = 0;
  #dropped = false;
  #lastProbeAt: number;
  // While probing: the probe started at this time; only units admitted since count for rtt₀.
  #probeSince: number | undefined;
  #probeMin = Infinity;
  #probeCount = 0;

  readonly #loopDelay: LoopDelaySource | undefined;
  /** The loop's delay read when the last window closed, in ms. */
  #lastLagMs = 0;

  /** `loopDelay`: how late the event loop runs, read once per window (none: no discount). */
  constructor(options: VegasOptions, nowMs: number, loopDelay?: LoopDelaySource) {
    this.options = options;
    this.#loopDelay = loopDelay;
    this.#limit = options.initialLimit;
    this.#windowStart = nowMs;
    this.#lastProbeAt = nowMs;
  }

  /** The limit in force, in whole units (half of it while probing), never below 1. */
  get limit(): number {
    const l = Math.max(1, Math.floor(this.#limit));
    return this.#probeSince === undefined ? l : Math.max(1, this.options.minLimit, Math.floor(l / 2));
  }

  /** The estimated no-load rtt, in ms (Infinity before the first window). */
  get rttNoLoadMs(): number {
    return this.#rttNoLoad;
  }

  /** The event loop's delay over the last window, in ms (0 without a source). */
  get loopDelayMs(): number {
    return this.#lastLagMs;
  }

  get probing(): boolean {
    return this.#probeSince !== undefined;
  }

  /** Records how many units are in flight now (call on every admission). */
  inFlight(n: number): void {
    if (n > this.#maxInFlight) this.#maxInFlight = n;
  }

  /**
   * Records one unit's rtt (`admittedAt` tells whether it counts for a probe) and the units still
   * in flight after its release. Returns true when the limit may have changed.
   */
  sample(nowMs: number, rttMs: number, admittedAt: number, dropped: boolean, inFlightNow: number): boolean {
    if (this.#probeSince !== undefined) {
      if (admittedAt >= this.#probeSince) {
        this.#probeCount++;
        if (rttMs < this.#probeMin) this.#probeMin = rttMs;
      }
      if (this.#probeCount >= this.options.minSamples && nowMs - this.#probeSince >= this.options.windowMs) {
        this.#rttNoLoad = this.#probeMin;
        this.#probeSince = undefined;
        // The next window's delay is read from here on.
        this.#readLag();
        this.#lastProbeAt = nowMs;
        this.#resetWindow(nowMs, inFlightNow);
        return true;
      }
      return false;
    }
    this.#count++;
    this.#sum += rttMs;
    if (rttMs < this.#min) this.#min = rttMs;
    if (dropped) this.#dropped = true;
    if (this.#count < this.options.minSamples || nowMs - this.#windowStart < this.options.windowMs)
      return false;
    this.#update(nowMs, inFlightNow);
    return true;
  }

  #update(nowMs: number, inFlightNow: number): void {
    const o = this.options;
    if (this.#min < this.#rttNoLoad) this.#rttNoLoad = this.#min;
    const mean = this.#sum / this.#count;
    const inUse = this.#maxInFlight * 2 >= this.#limit;
    const lag = this.#readLag();
    const target = vegasStepWithLag(this.#limit, mean, this.#rttNoLoad, lag, this.#maxInFlight, this.#dropped);
    const clamped = Math.min(o.maxLimit, Math.max(o.minLimit, target));
    this.#limit = (1 - o.smoothing) * this.#limit + o.smoothing * clamped;
    this.#resetWindow(nowMs, inFlightNow);
    if (inUse && nowMs - this.#lastProbeAt >= o.probeIntervalMs) {
      this.#probeSince = nowMs;
      this.#probeMin = Infinity;
      this.#probeCount = 0;
    }
  }

  #readLag(): number {
    const lag = this.#loopDelay?.readMs() ?? 0;
    this.#lastLagMs = Number.isFinite(lag) && lag > 0 ? lag : 0;
    return this.#lastLagMs;
  }

  #resetWindow(nowMs: number, inFlightNow: number): void {
    this.#windowStart = nowMs;
    this.#count = 0;
    this.#sum = 0;
    this.#min = Infinity;
    this.#maxInFlight = inFlightNow;
    this.#dropped = false;
  }
}
