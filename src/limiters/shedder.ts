/**
 * Process-level admission driven by the throttle factor alone, for when nobody knows the capacity.
 *
 * While the factor is 1 the Shedder admits everything and measures what it admits, in slots of
 * 250 ms. When the governor first cuts, the base `R0` is the highest slot rate of the last
 * `learnWindowMs`, less `headroom`: the loop decides a request only when it reaches it, so while
 * pressure builds the admitted rate is what the process can do (its throughput), not what is
 * offered, and a long average would blend in the calmer load before the overload. Admission then
 * passes a token bucket of rate `R0·f` and capacity `R0·f·burstMs`. The governor keeps cutting while
 * pressure stays above its engage threshold, so `R0·f` settles where the process is busy but not
 * overloaded.
 *
 * Rebase: the first cut after the factor has risen (the governor recovered, and the recovery
 * overloaded the process again) sets `R0` again from what the process handled meanwhile, scaled to
 * factor 1, less `headroom`, and never above the old `R0`. So when the factor is back at 1 the
 * limit sits below the measured throughput instead of at the level that overloaded, and the
 * governor has no reason to cut again: one correction instead of a cut-and-recover cycle.
 *
 * When the factor is back at 1 the limit stays at `R0` for as long as it keeps refusing work (the
 * overload may still be there, and lifting the limit would let it back in at once: a flap). While it
 * refuses at factor 1 the base grows by `probePerSec`, slowly, so that capacity regained is found
 * without walking the queue back into overload every few seconds; after `releaseAfterMs` without a
 * refusal the limit is lifted and the Shedder admits freely again.
 *
 * With `ratePerSec` set (a known capacity), the base is fixed and always enforced.
 *
 * Completions: an adapter that knows when a response is sent calls `complete(cost)`. From the first
 * such report on, the rate learned is the rate the process completes, not the rate it admits: when
 * the bottleneck is a pool or a downstream service rather than the event loop, everything offered
 * is admitted at once and waits later, and a base learned from admissions is the offered rate.
 *
 * One request at any cut: the bucket at factor f holds `max(R0·burstMs, 1/f)·f` tokens, never less
 * than one request of cost 1, so a small learned base times a short bucket cannot refuse every
 * request of an idle process; the limit still refills at `R0·f`.
 *
 * Priorities: a request of priority p costs `cost·d/e_p` tokens, where `d` is the depth of
 * shedding, `min(f, limit / offered rate)` over the last `learnWindowMs`, and `e_p =
 * effectiveFactor(d, p)`: alone, a class is admitted at `R0·e_p`, so sheddable work feels a cut
 * first and critical work keeps a reserve down to the floor. The depth matters at factor 1: the
 * limit may still refuse two requests in three, and priorities must act there too. A request that
 * costs more than the bucket holds (`R0·f·burstMs`) is refused at once.
 */
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { clockOption, finiteNumber, fn, knownKeys, positiveNumber, ratio } from '../validate.js';
import { ManualFactor } from './factor.js';
import { effectiveFactor } from './priority.js';
import { TOKEN_EPSILON, TokenBucket } from './token-bucket.js';
import type { Decision, FactorSource, Priority } from './types.js';
import { ADMITTED_UNLIMITED } from './decisions.js';

export interface ShedderOptions {
  /**
   * Where the throttle factor comes from: a Governor (or a ManualFactor), or a fixed number from 0
   * to 1 (a constant source). Required.
   */
  factor: FactorSource | number;
  /** A known capacity in requests (cost units) per second. @default undefined (learned) */
  ratePerSec?: number;
  /**
   * The bucket holds this many milliseconds of the limited rate, for bursts. It is also the longest
   * queue a burst can add (at 2 ms a request, 50 ms of rate is 50 ms of work). @default 50
   */
  burstMs?: number;
  /**
   * The base is the highest rate of the 250 ms slots within this many ms before the cut (slots
   * of this length when shorter); also the span of the offered rate behind the depth. @default 2000
   */
  learnWindowMs?: number;
  /** The learned base never falls below this, per second. @default 1 */
  minRatePerSec?: number;
  /** How fast the base grows while it refuses at factor 1, as a share per second (0.001 = 0.1%/s). @default 0.001 */
  probePerSec?: number;
  /**
   * The share below the measured throughput at which the base is set when the governor cuts after
   * learning or after a rise, from 0 to 0.5: room for the queue to drain and stay short. @default 0.05
   */
  headroom?: number;
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

/** The largest `ratePerSec` and `minRatePerSec`: a billion cost units a second is no real process's capacity. */
export const MAX_RATE_PER_SEC = 1e9;
/** The largest `burstMs`: a bucket holding more than a minute of work is no longer a shedder. */
export const MAX_BURST_MS = 60_000;

/** The learned rate is the highest rate of slots this long (or `learnWindowMs`, if shorter), in ms. */
const LEARN_SLOT_MS = 250;

/** While refusing at factor 1 with the source's pressure above 0, the base falls this share per second (3%/s). */
export const PROBE_BACKOFF_PER_SEC = 0.03;

/** The pressure a factor source reports (a Governor's `pressure`), or undefined if it reports none. */
function sourcePressure(source: FactorSource): number | undefined {
  const p = (source as { readonly pressure?: unknown }).pressure;
  return typeof p === 'number' && Number.isFinite(p) ? p : undefined;
}

export const SHEDDER_DEFAULTS = Object.freeze({
  burstMs: 50,
  learnWindowMs: 2000,
  minRatePerSec: 1,
  probePerSec: 0.001,
  headroom: 0.05,
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
  'headroom',
  'releaseAfterMs',
  'shedRetryAfterMs',
  'clock',
] as const;

export class Shedder {
  readonly #source: FactorSource;
  readonly #clock: Clock;
  readonly #fixedRate: number | undefined;
  readonly #burstMs: number;
  readonly #windowMs: number;
  readonly #minRate: number;
  readonly #probePerSec: number;
  readonly #releaseAfterMs: number;
  readonly #headroom: number;
  readonly #shedRetryAfterMs: number;
  readonly #unsubscribe: () => void;

  // Measuring, always: admitted tokens (cost while learning) and offered cost per slot of
  // `#slotMs`; the closed slots within the last `#windowMs`, oldest first.
  readonly #slotMs: number;
  #slotStart: number;
  #slotCost = 0;
  #slotOffered = 0;
  /** Cost completed in the open slot, reported through `complete()`. */
  #slotDone = 0;
  /** Whether anyone has reported a completion: from then on the learned rate is the completion rate. */
  #usesCompletions = false;
  #slots: { startMs: number; endMs: number; rate: number; offered: number }[] = [];
  /** limit / offered rate over the window while limiting, at most 1: how deep the shedding goes. */
  #depth = 1;

  #bucket: TokenBucket | undefined;
  #base = 0;
  /** The base last learned (at a cut after learning or after a rise): the probe's fall stops under it. */
  #anchor = 0;
  #lastRefusal = -Infinity;
  #lastProbe = 0;
  /** Whether the factor has risen since the last cut (or since limiting began at factor 1). */
  #rose = false;

  constructor(options: ShedderOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object with a `factor` (a Governor or ManualFactor)');
    }
    knownKeys('Shedder', options, OPTIONS);
    const source =
      typeof options.factor === 'number' ? new ManualFactor(ratio('factor', options.factor)) : options.factor;
    if (typeof source !== 'object' || source === null || typeof source.factorFor !== 'function') {
      throw new ConfigError('factor', source, 'a FactorSource (a Governor or a ManualFactor)');
    }
    fn('factor.subscribe', source.subscribe);
    this.#source = source;
    this.#clock = clockOption('clock', options.clock, systemClock, false);
    this.#fixedRate =
      options.ratePerSec === undefined
        ? undefined
        : positiveNumber('ratePerSec', options.ratePerSec, 0, MAX_RATE_PER_SEC);
    const d = SHEDDER_DEFAULTS;
    this.#burstMs = positiveNumber('burstMs', options.burstMs ?? d.burstMs, 0, MAX_BURST_MS);
    this.#windowMs = positiveNumber('learnWindowMs', options.learnWindowMs ?? d.learnWindowMs);
    this.#slotMs = Math.min(LEARN_SLOT_MS, this.#windowMs);
    this.#minRate = positiveNumber(
      'minRatePerSec',
      options.minRatePerSec ?? d.minRatePerSec,
      0,
      MAX_RATE_PER_SEC,
    );
    this.#probePerSec = positiveNumber('probePerSec', options.probePerSec ?? d.probePerSec, 0, 10);
    this.#headroom = finiteNumber('headroom', options.headroom ?? d.headroom, 0, 0.5);
    this.#releaseAfterMs = positiveNumber('releaseAfterMs', options.releaseAfterMs ?? d.releaseAfterMs);
    this.#shedRetryAfterMs = positiveNumber(
      'shedRetryAfterMs',
      options.shedRetryAfterMs ?? d.shedRetryAfterMs,
    );
    this.#slotStart = this.#clock.now();
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
    this.#slotOffered += cost;
    let bucket = this.#bucket;
    if (bucket !== undefined && bucket.factor >= 1 && this.#fixedRate === undefined) {
      if (now - this.#lastRefusal >= this.#releaseAfterMs) {
        this.#release();
        bucket = undefined;
      }
    }
    if (bucket === undefined) {
      this.#slotCost += cost;
      if (now - this.#slotStart >= this.#slotMs) this.#closeSlot(now);
      return ADMITTED_UNLIMITED;
    }
    const f = bucket.factor;
    // Priorities follow the depth of shedding: the factor, or the share of the offered load the
    // limit lets through when that is less (at factor 1 a learned limit may still refuse most).
    const depth = Math.min(f, this.#depth);
    const e =
      options?.priority === undefined
        ? depth
        : depth === f
          ? this.#source.factorFor(options.priority)
          : effectiveFactor(depth, options.priority);
    const scaled = e === depth ? cost : e > 0 ? (cost * depth) / e : Infinity;
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
    const tokens = Math.min(scaled, bucket.burst);
    const d = bucket.take(tokens);
    if (now - this.#slotStart >= this.#slotMs) this.#closeSlot(now);
    if (d.allowed) {
      // Learned in tokens, the bucket's unit: a cheap critical request counts for less.
      this.#slotCost += tokens;
      return d;
    }
    this.#lastRefusal = now;
    if (f >= 1 && this.#fixedRate === undefined) this.#probe(now);
    return d.reason === 'shed' ? d : { ...d, reason: 'shed' };
  }

  /**
   * Reports that admitted work of `cost` has completed (its response was sent). Optional, and
   * better when given: from the first report on, the Shedder learns the rate the process
   * completes instead of the rate it admits. The two differ when the bottleneck is not the event
   * loop (a pool, a downstream service): there every request is admitted at once and waits later,
   * so the admitted rate is the offered rate, and a base learned from it sits far above what the
   * process can do (a cut then has no effect until the factor falls below capacity/offered).
   *
   * Reads no clock (after the first report): the completion counts in the slot open now, and slots
   * close where the Shedder reads its clock anyway (each admission, a factor change, `state`). A
   * slot is the span between two such readings, so its rate is what completed in it over its
   * length, wherever in it each completion fell; where nothing is admitted for a while (a pool
   * draining), the completions of that stretch are one longer slot, at their mean rate over it.
   * This saves a clock reading per response (~45 ns, a third of what reporting cost).
   */
  complete(cost = 1): void {
    if (typeof cost !== 'number' || !(cost > 0) || !Number.isFinite(cost)) {
      throw new ConfigError('cost', cost, 'a finite number > 0');
    }
    if (!this.#usesCompletions) {
      this.#usesCompletions = true;
      // The open slot so far counted admissions; start a clean one so the two are not mixed.
      this.#slotStart = this.#clock.now();
      this.#slotCost = 0;
      this.#slotOffered = 0;
      this.#slots = [];
    }
    this.#slotDone += cost;
  }

  /** Stops following the factor source. */
  close(): void {
    this.#unsubscribe();
  }

  #onFactor(f: number): void {
    const now = this.#clock.now();
    const bucket = this.#bucket;
    if (bucket === undefined) {
      if (f < 1) {
        this.#anchor = this.#rebase(now, Infinity, 1);
        this.#limit(this.#anchor, f);
      }
      return;
    }
    if (f >= 1 && this.#fixedRate === undefined && now - this.#lastRefusal >= this.#releaseAfterMs) {
      this.#release();
      return;
    }
    const previous = bucket.factor;
    if (f < previous && this.#rose && this.#fixedRate === undefined) {
      this.#rose = false;
      this.#anchor = this.#rebase(now, this.#base, previous);
      this.#limit(this.#anchor, f);
      return;
    }
    if (f > previous) this.#rose = true;
    else if (f < previous) this.#rose = false;
    // Rebuilt rather than re-factored, so that the capacity at the new factor still holds one
    // request (see #limit); the tokens carry over, so a rise brings no free burst.
    this.#limit(this.#base, f);
  }

  /**
   * The base at the first cut after a rise (or after learning): what the process handled lately,
   * scaled to factor 1, less the headroom, and never more than the current base.
   */
  #rebase(now: number, base: number, previousFactor: number): number {
    const handled = this.#currentRate(now) / previousFactor;
    return Math.max(this.#minRate, Math.min(base, handled * (1 - this.#headroom)));
  }

  /**
   * Enforces `base·f`. A bucket replacing another keeps its tokens: a new base brings no free burst.
   * The capacity at factor f is `max(base·burstMs, 1/f)·f`, never less than one request of cost 1:
   * a learned base of 4/s with a 50 ms bucket holds 0.2 tokens, and a bucket that can never hold a
   * whole request refuses everything however idle the process is. With one token it refills at
   * `base·f` and so admits at least one request per `1/(base·f)` seconds.
   */
  #limit(base: number, f: number): void {
    let burst = Math.max(1, (base * this.#burstMs) / 1000);
    if (f > 0 && burst * f < 1 && Number.isFinite(1 / f)) burst = 1 / f;
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

  #release(): void {
    this.#bucket = undefined;
  }

  /** At factor 1 and still refusing: the process copes with the base, so raise it, compounding per second. */
  #probe(now: number): void {
    const elapsed = now - this.#lastProbe;
    if (elapsed < 100) return;
    if (now - this.#lastRefusal > this.#releaseAfterMs) {
      this.#release();
      return;
    }
    // A source that reports pressure (a Governor) steers the probe: grow while every signal is at
    // or below its target, fall PROBE_BACKOFF_PER_SEC while one is past it. Without this the
    // base walks up 0.1%/s until it passes the throughput and a queue forms under a factor of 1.
    const pressure = sourcePressure(this.#source);
    const perSec = pressure === undefined || pressure <= 0 ? this.#probePerSec : -PROBE_BACKOFF_PER_SEC;
    // Falling undoes the probe's climb (and a little more); it never goes below the headroom under
    // the base last learned: pressure from elsewhere (CPU stolen by a neighbour) must not walk the
    // limit down to nothing while the factor says 1.
    const moved = this.#base * (1 + perSec) ** (elapsed / 1000);
    const lowest = Math.max(this.#minRate, this.#anchor * (1 - this.#headroom));
    const next = perSec < 0 ? Math.max(Math.min(this.#base, lowest), moved) : moved;
    this.#limit(next, 1);
  }

  /** Closes the open slot at `now`, forgets slots older than the window, and updates the depth. */
  #closeSlot(now: number): void {
    const elapsed = now - this.#slotStart;
    if (elapsed > 0) {
      this.#slots.push({
        startMs: this.#slotStart,
        endMs: now,
        rate: ((this.#usesCompletions ? this.#slotDone : this.#slotCost) * 1000) / elapsed,
        offered: this.#slotOffered,
      });
    }
    this.#slotStart = now;
    this.#slotCost = 0;
    this.#slotOffered = 0;
    this.#slotDone = 0;
    const from = now - this.#windowMs;
    let drop = 0;
    while (drop < this.#slots.length && this.#slots[drop]!.endMs <= from) drop++;
    if (drop > 0) this.#slots.splice(0, drop);
    this.#depth = 1;
    const bucket = this.#bucket;
    const first = this.#slots[0];
    if (bucket === undefined || first === undefined) return;
    let offered = 0;
    for (const s of this.#slots) offered += s.offered;
    const offeredRate = (offered * 1000) / (now - first.startMs);
    const limit = this.#base * bucket.factor;
    if (offeredRate > limit) this.#depth = limit / offeredRate;
  }

  /**
   * The learned rate per second: the highest rate of the slots closed within the last window, and
   * of the open slot once it is half a slot old (before any, the open slot's rate).
   */
  #currentRate(now: number): number {
    if (now - this.#slotStart >= this.#slotMs) this.#closeSlot(now);
    const from = now - this.#windowMs;
    let best = 0;
    let any = false;
    for (const s of this.#slots) {
      if (s.endMs <= from) continue;
      any = true;
      if (s.rate > best) best = s.rate;
    }
    const elapsed = now - this.#slotStart;
    if (elapsed > 0 && (elapsed >= this.#slotMs / 2 || !any)) {
      const open = this.#usesCompletions ? this.#slotDone : this.#slotCost;
      best = Math.max(best, (open * 1000) / elapsed);
    }
    return best;
  }
}
