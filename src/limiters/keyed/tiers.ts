/**
 * Per-key limits (tiers) of a keyed limiter: a table of distinct (rate, burst) pairs, each key's
 * slot holding an index into it. Index 0 is the limiter's default limits and is present without
 * `tiers` too.
 *
 * Each tier also keeps its idle bucket: the tokens of a key that has no bucket, brought up to date
 * eagerly at every factor change. It equals the capacity unless the factor rose recently (growth
 * creates no tokens, for missing keys either), and every stored bucket holds at most this much, so
 * a bucket back at this level can be dropped without changing any decision.
 */
import { ConfigError } from '../../errors.js';
import { positiveNumber } from '../../validate.js';
import { refill } from '../bucket-math.js';
import type { FactorTimeline } from './factor-timeline.js';

/** A rate and a burst, both at factor 1. */
export interface BucketLimits {
  /** Tokens added per second at factor 1. A finite number > 0. */
  ratePerSec: number;
  /** Capacity at factor 1: the largest cost admitted at once. A finite number > 0. */
  burst: number;
}

export type TierLookup = (key: string) => BucketLimits | undefined;

export class TierTable {
  /** Rate per ms at factor 1, per tier. */
  rate: number[] = [];
  /** Burst at factor 1, per tier. */
  burst: number[] = [];
  #id: string[] = [];
  #index = new Map<string, number>();
  /** Per tier, the tokens at `idleLast` of a key that has no bucket. */
  #idle: number[] = [];
  #idleLast: number;
  readonly #lookup: TierLookup | undefined;
  readonly #timeline: FactorTimeline;

  constructor(defaults: BucketLimits, lookup: TierLookup | undefined, timeline: FactorTimeline, now: number) {
    this.#lookup = lookup;
    this.#timeline = timeline;
    this.#idleLast = now;
    this.#intern(`${defaults.ratePerSec}/${defaults.burst}`, defaults.ratePerSec / 1000, defaults.burst, now);
  }

  /** Number of distinct tiers held. */
  get length(): number {
    return this.rate.length;
  }

  /**
   * Looks up, validates and interns the tier of a key that has no bucket yet. `liveKeys` lets the
   * table compact itself (through `compact`) when dead tiers dominate; `onCompact` does it.
   */
  tierFor(key: string, now: number, liveKeys: number, onCompact: () => void): number {
    const t = this.#lookup!(key);
    if (t === undefined) return 0;
    const where = `tiers(${JSON.stringify(key)})`;
    if (typeof t !== 'object' || t === null) {
      throw new ConfigError(where, t, 'an object { ratePerSec, burst } or undefined');
    }
    const ratePerSec = positiveNumber(`${where}.ratePerSec`, t.ratePerSec);
    const burst = positiveNumber(`${where}.burst`, t.burst);
    const id = `${ratePerSec}/${burst}`;
    let idx = this.#index.get(id);
    if (idx === undefined) {
      // Distinct tiers only grow with distinct answers; compact when dead ones dominate.
      if (this.rate.length >= 2 * liveKeys + 1024) onCompact();
      idx = this.#intern(id, ratePerSec / 1000, burst, now);
    }
    return idx;
  }

  /** Tokens now of a key of tier `tier` that has no bucket. */
  idleTokens(tier: number, now: number): number {
    const f = this.#timeline.factor;
    const b = this.burst[tier]!;
    return refill(this.#idle[tier]!, now - this.#idleLast, this.rate[tier]! * f, b * f);
  }

  /** Brings every idle bucket to `at` under the old factor, then clamps it to the new capacity. */
  onFactor(at: number, next: number): void {
    const f = this.#timeline.factor;
    const dt = at - this.#idleLast;
    for (let i = 0; i < this.#idle.length; i++) {
      const b = this.burst[i]!;
      this.#idle[i] = Math.min(refill(this.#idle[i]!, dt, this.rate[i]! * f, b * f), b * next);
    }
    this.#idleLast = at;
  }

  /**
   * Rebuilds the table from the tiers in use: `slots` are the live slots, `tierOf` their column
   * (rewritten in place). Index 0 stays the default.
   */
  compact(slots: Iterable<number>, tierOf: Uint16Array | Uint32Array): void {
    const oldRate = this.rate;
    const oldBurst = this.burst;
    const oldId = this.#id;
    const oldIdle = this.#idle;
    const remap = new Map<number, number>();
    this.rate = [];
    this.burst = [];
    this.#id = [];
    this.#idle = [];
    this.#index = new Map();
    const keep = (old: number): number => {
      const idx = this.rate.length;
      remap.set(old, idx);
      this.rate.push(oldRate[old]!);
      this.burst.push(oldBurst[old]!);
      this.#id.push(oldId[old]!);
      this.#idle.push(oldIdle[old]!);
      this.#index.set(oldId[old]!, idx);
      return idx;
    };
    keep(0);
    for (const s of slots) {
      const old = tierOf[s]!;
      tierOf[s] = remap.get(old) ?? keep(old);
    }
  }

  /**
   * Adds a tier. Its idle bucket is one that was full when the factor log was last emptied,
   * brought up to the idle time through the logged changes.
   */
  #intern(id: string, ratePerMs: number, burst: number, now: number): number {
    const idx = this.rate.length;
    this.rate.push(ratePerMs);
    this.burst.push(burst);
    this.#id.push(id);
    this.#index.set(id, idx);
    const tl = this.#timeline;
    const at = Math.min(this.#idleLast, now);
    this.#idle.push(
      tl.length === 0
        ? burst * tl.factor
        : tl.replay(burst * tl.before, tl.start, at, ratePerMs, burst, true),
    );
    return idx;
  }
}
