/**
 * The decision engine of a keyed limiter: one decision on the shared bucket arithmetic
 * (bucket-math.ts), over the slot table, the factor timeline, the tier table, the block policy
 * and the global bucket. It owns no key state of its own.
 *
 * The hot path is `takeOne` (a take of cost 1 without priority, for an existing key): it reads the
 * clock once, allocates only the decision it returns, and is small enough for V8 to inline into its
 * caller, where a decision that does not escape is not allocated at all. Everything else goes to
 * `decide`. Keep both that way: bench/limiter.mjs measures them against a minimal token bucket.
 */
import type { Clock } from '../../clock.js';
import { ConfigError } from '../../errors.js';
import { refill, waitMs } from '../bucket-math.js';
import { effectiveFactor, priorityLevel } from '../priority.js';
import { TOKEN_EPSILON } from '../token-bucket.js';
import type { Decision, Priority } from '../types.js';
import type { BlockPolicy } from './block.js';
import type { FactorTimeline } from './factor-timeline.js';
import type { GlobalBucket } from './global-bucket.js';
import { boundKey } from './key-bound.js';
import type { SlotTable } from './slot-table.js';
import type { BucketLimits, TierTable } from './tiers.js';

/** A decision of the keyed limiter: which bucket it speaks for. */
export interface KeyedDecision extends Decision {
  /**
   * `'global'` when the global bucket refused (the key's own bucket would have admitted);
   * `'key'` otherwise (admitted, or refused or blocked by the key's own bucket). `remaining`,
   * `limit` and `resetMs` always describe the key's own bucket.
   */
  readonly scope: 'key' | 'global';
}

/**
 * - `peek`: answer only; nothing is charged, counted or created.
 * - `take`: charge both buckets when both admit; count a refusal toward a block.
 * - `reserve`: like take, and when the wait fits `maxWaitMs`, charge now and let the caller wait.
 */
export type DecideMode = 'peek' | 'take' | 'reserve';

/** Filled by `decide` in mode 'reserve' when it reserved: the key as held, its slot and the charge. */
export interface Reservation {
  key: string;
  slot: number;
  charge: number;
}

export interface EngineParts {
  readonly clock: Clock;
  readonly slots: SlotTable;
  readonly timeline: FactorTimeline;
  readonly tiers: TierTable;
  /** Whether keys have tiers of their own (else every slot is tier 0). */
  readonly hasTiers: boolean;
  readonly block: BlockPolicy | undefined;
  readonly global: GlobalBucket | undefined;
}

export class KeyedEngine {
  readonly #clock: Clock;
  readonly #slots: SlotTable;
  readonly #timeline: FactorTimeline;
  readonly #tiers: TierTable;
  readonly #hasTiers: boolean;
  readonly #block: BlockPolicy | undefined;
  readonly #global: GlobalBucket | undefined;
  /**
   * No tiers, block or global bucket, and a burst that a cost of 1 fits: `takeOne` may decide
   * (else it hands every call to `decide`, after a map lookup of its own: call `takeSlow` then).
   */
  readonly plain: boolean;
  // The default limits (tier 0), per ms, read without the tier table on the hot path.
  readonly #rate: number;
  readonly #burst: number;
  readonly #eps: number;
  /** The default limits at the factor in force (set by #setScaled). */
  #scaled!: Scaled;
  /**
   * `#scaled` when `takeOne` may decide (no tiers, block or global bucket; a cost of 1 fits), else
   * SLOW_ONLY, with which it always hands over to `decide`.
   */
  #fast!: Scaled;
  /** Asked by the slot table during eviction; bound once, not per call. */
  readonly #canDrop: (slot: number, now: number) => boolean;
  readonly #compactTiers: () => void;

  constructor(parts: EngineParts) {
    this.#clock = parts.clock;
    this.#slots = parts.slots;
    this.#timeline = parts.timeline;
    this.#tiers = parts.tiers;
    this.#hasTiers = parts.hasTiers;
    this.#block = parts.block;
    this.#global = parts.global;
    this.#rate = parts.tiers.rate[0]!;
    this.#burst = parts.tiers.burst[0]!;
    this.#eps = this.#burst * TOKEN_EPSILON;
    this.plain =
      !parts.hasTiers && parts.block === undefined && parts.global === undefined && this.#burst >= 1;
    const f = parts.timeline.factor;
    this.#setScaled(f);
    this.#canDrop = (slot, now) => this.#droppable(slot, now);
    this.#compactTiers = () => this.compactTiers();
  }

  /**
   * `decide(key, 1, undefined, 'take', 0, undefined)`, the same answer and the same writes, in a
   * few lines when nothing but the key's own bucket is involved: a limiter without tiers, block or
   * global bucket, a factor at which a cost of 1 fits, a key that has a bucket, and no factor change
   * since that bucket's last settle. Anything else (a missing key, a key held under its digest, a
   * replay) goes to `decide`.
   *
   * Admission and refusal share one path and one decision: V8 inlines this method into its caller
   * only while it and everything it inlines stay within the inlining budget (920 bytes of bytecode
   * counted together, the clock's ~180 included), so every byte here counts.
   */
  takeOne(key: string): KeyedDecision {
    const d = this.#fast;
    const slots = this.#slots;
    // The map holds only strings (long ones under their digest): any other key misses here and is
    // validated and bounded by `decide`.
    const s = slots.map.get(key);
    const state = slots.state;
    let allowed: boolean;
    let reason: Decision['reason'];
    let remaining: number;
    let limit: number;
    let retryAfterMs: number;
    let resetMs: number;
    let factor: number;
    let scope: KeyedDecision['scope'];
    if (s === undefined || state[2 * s + 1]! < d.since) {
      // Copied field by field into the one decision built below. With one object flowing to the
      // return, a caller that only reads the decision (once this is inlined into it) allocates
      // none; a second one (decide's) would make V8 build every decision, as soon as keys are
      // being created.
      const r = this.takeSlow(key);
      allowed = r.allowed;
      reason = r.reason;
      remaining = r.remaining;
      limit = r.limit;
      retryAfterMs = r.retryAfterMs;
      resetMs = r.resetMs;
      factor = r.factor;
      scope = r.scope;
    } else {
      const now = this.#clock.now();
      const i = 2 * s;
      const last = state[i + 1]!;
      let x = state[i]!;
      if (now > last) {
        // #settle with no factor change to replay: refill's arithmetic
        x += d.rate * (now - last);
        if (x > d.cap) x = d.cap;
        state[i + 1] = now;
        this.#timeline.lastSettle = now;
      }
      slots.ref[s] = 1;
      allowed = x + d.eps >= 1;
      if (allowed) x = x > 1 ? x - 1 : 0;
      state[i] = x;
      // Refused: 'limited' when the fill level scaled up to factor 1 could not pay 1 (x + eps < f;
      // always so at factor 1, where refused means x + eps < 1), else 'shed': keyRefusal's rule.
      reason = allowed ? 'ok' : x + d.eps < d.f ? 'limited' : 'shed';
      remaining = x > 0 ? x : 0;
      limit = d.cap;
      retryAfterMs = allowed ? 0 : (1 - x) * d.inv;
      resetMs = (limit - x) * d.inv;
      factor = d.f;
      scope = 'key';
    }
    return { allowed, reason, remaining, limit, retryAfterMs, resetMs, factor, scope };
  }

  /**
   * `decide(key, 1, undefined, 'peek', 0, undefined)`, the same answer, on `takeOne`'s conditions
   * (else it hands over to `decide`): what `takeOne` would answer now, computed as it does, with
   * nothing written (no settle, no use mark). The HTTP guard peeks the key before the later stages
   * and charges it after them (all-or-nothing), so a request of cost 1 comes here first.
   */
  peekOne(key: string): KeyedDecision {
    const d = this.#fast;
    const slots = this.#slots;
    const s = slots.map.get(key);
    const state = slots.state;
    if (s === undefined || state[2 * s + 1]! < d.since)
      return this.decide(key, 1, undefined, 'peek', 0, undefined);
    const now = this.#clock.now();
    const last = state[2 * s + 1]!;
    let x = state[2 * s]!;
    if (now > last) {
      // #peekTokens with no factor change to replay: refill's arithmetic, as in takeOne
      x += d.rate * (now - last);
      if (x > d.cap) x = d.cap;
    }
    // takeOne's decision from here on, with nothing written.
    const allowed = x + d.eps >= 1;
    if (allowed) x = x > 1 ? x - 1 : 0;
    return {
      allowed,
      reason: allowed ? 'ok' : x + d.eps < d.f ? 'limited' : 'shed',
      remaining: x > 0 ? x : 0,
      limit: d.cap,
      retryAfterMs: allowed ? 0 : (1 - x) * d.inv,
      resetMs: (d.cap - x) * d.inv,
      factor: d.f,
      scope: 'key',
    };
  }

  /** What `takeOne` does not decide itself: `decide` for a take of cost 1. Kept out of it (size). */
  takeSlow(key: string): KeyedDecision {
    return this.decide(key, 1, undefined, 'take', 0, undefined);
  }

  /**
   * Decides for `key` now. In mode 'reserve' with `out`, a reservation fills `out` (else
   * `out.slot` stays -1).
   */
  decide(
    key: string,
    cost: number,
    priority: Priority | undefined,
    mode: DecideMode,
    maxWaitMs: number,
    out: Reservation | undefined,
  ): KeyedDecision {
    if (typeof key !== 'string') throw new ConfigError('key', key, 'a string');
    if (key.length > 85) key = boundKey(key); // 85 = MAX_INLINE_KEY_CHARS
    const now = this.#clock.now();
    const slots = this.#slots;
    const s = slots.map.get(key);
    let tier = 0;
    let rate = this.#rate;
    let burst = this.#burst;
    let eps = this.#eps;
    if (this.#hasTiers) {
      tier = s === undefined ? this.#tierFor(key, now) : slots.tierOf![s]!;
      rate = this.#tiers.rate[tier]!;
      burst = this.#tiers.burst[tier]!;
      eps = burst * TOKEN_EPSILON;
    }
    this.#checkCost(cost, burst);
    const f = this.#timeline.factor;
    const charge = priority === undefined ? cost : chargeFor(cost, priority, f);
    const cap = burst * f;
    const r = rate * f;
    // 1 / r: waits and reset times become products (cached for the default limits).
    const inv = this.#hasTiers ? (r > 0 ? 1 / r : 0) : this.#scaled.inv;

    let x: number;
    let blockedMs = 0;
    if (s === undefined) x = this.#tiers.idleTokens(tier, now);
    else {
      x = mode === 'peek' ? this.#peekTokens(s, now, rate, burst) : this.#settle(s, now, rate, burst);
      if (this.#block !== undefined) blockedMs = this.#blockedMs(s, now, x + eps, tier, mode);
    }

    const keyOk = f > 0 && charge <= cap + eps && x + eps >= charge;
    const g = this.#global;
    let gx = 0;
    let gOk = true;
    if (g !== undefined) {
      gx = g.tokensAt(now, f);
      if (mode !== 'peek') g.settle(gx, now);
      gOk = f > 0 && charge <= g.burst * f + g.eps && gx + g.eps >= charge;
    }

    if (keyOk && gOk && blockedMs === 0) {
      const remaining = x - charge > 0 ? x - charge : 0;
      if (mode !== 'peek') {
        this.#charge(key, s, now, tier, remaining);
        if (g !== undefined) g.tokens = gx - charge > 0 ? gx - charge : 0;
      }
      return decision(true, 'ok', remaining, cap, 0, (cap - remaining) * inv, f, 'key');
    }
    if (
      g === undefined &&
      blockedMs === 0 &&
      mode !== 'reserve' &&
      (mode === 'peek' || this.#block === undefined)
    ) {
      // The common refusal, by the key's own bucket alone, decided here (see #refuse for the rest).
      if (s !== undefined && mode === 'take') slots.ref[s] = 1;
      return keyRefusal(x, cost, charge, cap, eps, inv, f);
    }
    return this.#refuse(
      key,
      s,
      now,
      tier,
      x,
      gx,
      cost,
      charge,
      cap,
      inv,
      keyOk,
      gOk,
      blockedMs,
      mode,
      maxWaitMs,
      out,
    );
  }

  /** Refused (or reserved). Exact waits: after max(keyWait, globalWait) both buckets can pay. */
  #refuse(
    key: string,
    s: number | undefined,
    now: number,
    tier: number,
    x: number,
    gx: number,
    cost: number,
    charge: number,
    cap: number,
    inv: number,
    keyOk: boolean,
    gOk: boolean,
    blockedMs: number,
    mode: DecideMode,
    maxWaitMs: number,
    out: Reservation | undefined,
  ): KeyedDecision {
    const f = this.#timeline.factor;
    const eps = this.#hasTiers ? this.#tiers.burst[tier]! * TOKEN_EPSILON : this.#eps;
    const g = this.#global;
    const keyWait = keyOk ? 0 : f === 0 || charge > cap + eps ? Infinity : (charge - x) * inv;
    const gWait =
      g === undefined ? 0 : f > 0 ? waitMs(gx, charge, g.ratePerMs * f, g.burst * f, g.eps) : Infinity;
    let retryAfterMs = keyWait > gWait ? keyWait : gWait;
    let reason: Decision['reason'] = 'shed';
    let scope: 'key' | 'global' = 'key';
    if (!keyOk) {
      // 'limited' when the key is over its own quota: at factor 1, or when its fill level scaled up
      // to factor 1 (x/f) could not pay the unscaled cost either. Otherwise the cut is the factor's.
      if (keyWait !== Infinity && (f === 1 || x + eps < cost * f)) reason = 'limited';
    } else if (!gOk) {
      scope = 'global';
    }
    const slots = this.#slots;
    if (s !== undefined && mode !== 'peek') slots.ref[s] = 1;
    const remaining = x > 0 ? x : 0;

    if (blockedMs > 0) {
      if (blockedMs > retryAfterMs) retryAfterMs = blockedMs;
      return decision(false, 'blocked', remaining, cap, retryAfterMs, (cap - x) * inv, f, 'key');
    }

    if (mode === 'reserve' && retryAfterMs !== Infinity && retryAfterMs <= maxWaitMs) {
      // Reserve: charge both buckets now; the caller waits retryAfterMs before proceeding.
      const slot = this.#charge(key, s, now, tier, x - charge);
      if (g !== undefined) g.tokens = gx - charge;
      if (out !== undefined) {
        out.key = key;
        out.slot = slot;
        out.charge = charge;
      }
      return decision(false, reason, 0, cap, retryAfterMs, (cap - x + charge) * inv, f, scope);
    }

    const block = this.#block;
    if (reason === 'limited' && mode !== 'peek' && block !== undefined && s !== undefined) {
      const word = block.afterRefusal(slots.blk![s]!, now);
      slots.blk![s] = word;
      if (word > 0) {
        reason = 'blocked';
        if (block.durationMs > retryAfterMs) retryAfterMs = block.durationMs;
      }
    }
    return decision(false, reason, remaining, cap, retryAfterMs, (cap - x) * inv, f, scope);
  }

  /**
   * Stores `tokens` for `key` (creating its slot when it has none), marks it used, ends its streak
   * (remembering the streak it ended, for a refund: see #giveBack).
   */
  #charge(key: string, s: number | undefined, now: number, tier: number, tokens: number): number {
    const slots = this.#slots;
    if (s === undefined) {
      s = slots.create(key, now, tier, this.#canDrop);
      if (now > this.#timeline.lastSettle) this.#timeline.lastSettle = now;
    } else slots.ref[s] = 1;
    slots.state[2 * s] = tokens;
    const blk = slots.blk;
    if (blk !== undefined) {
      // Never blocked here (a blocked key is refused first): the word is 0 or minus a streak.
      const word = blk[s]!;
      slots.ended![s] = word < 0 ? (word > -0x7fffffff ? word : -0x7fffffff) : 0;
      blk[s] = 0;
    }
    return s;
  }

  /**
   * Gives `charge` back to slot `s` (holding `key`) at `now`: the bucket brought to `now` (replaying
   * the factor changes since its settle), plus `charge`, capped at a missing key's level (the
   * capacity, or less while growth of the factor has not refilled yet: growth creates no tokens).
   *
   * Why that cap: a settle is a chain of `y ↦ min(y + k, C)` steps, one per refill segment and
   * factor change, and a missing key's level is the same chain applied to a full bucket, so
   * `min(settled + charge, idle)` is the bucket the key would hold had the charge never been made,
   * through any factor changes (the timeline is only read), as long as the bucket did not refill to
   * its cap between the take and a later charge (then the refund gives back that much more than
   * the key would have kept, at most `charge`). At the same instant it is exactly the balance
   * before the take (to within the tolerance when the take had clamped a balance just short of the
   * cost to 0).
   *
   * The streak the charge ended is given back, joined to the refusals counted since (a block that
   * started since stays). A bucket back at a missing key's level with no streak decides like a
   * missing key: when the table is full it is forgotten, so that a request refused after charging
   * a new key (which may have evicted another) leaves a free slot rather than a table churned.
   */
  #giveBack(key: string, s: number, now: number, charge: number): void {
    const slots = this.#slots;
    const tier = this.#hasTiers ? slots.tierOf![s]! : 0;
    const burst = this.#tiers.burst[tier]!;
    const x = this.#settle(s, now, this.#tiers.rate[tier]!, burst) + charge;
    const idle = this.#tiers.idleTokens(tier, now);
    slots.state[2 * s] = x < idle ? x : idle;
    let quiet = true;
    const blk = slots.blk;
    if (blk !== undefined) {
      const word = blk[s]!;
      if (word <= 0) blk[s] = word + slots.ended![s]!;
      slots.ended![s] = 0;
      quiet = blk[s] === 0;
    }
    if (quiet && x + burst * TOKEN_EPSILON >= idle) this.#forgetIfFull(key, s);
  }

  /** Forgets `key` (slot `s`, deciding like a missing key) when the table is full and no waiter pins it. */
  #forgetIfFull(key: string, s: number): void {
    const slots = this.#slots;
    if (slots.size >= slots.maxKeys && !slots.isPinned(s)) slots.delete(key);
  }

  /**
   * `refundKey(key, 1, undefined)`, the same writes, on `takeOne`'s conditions (else it hands over
   * to `refundKey`): gives back what `takeOne` charged. Allocates nothing.
   */
  refundOne(key: string): void {
    const d = this.#fast;
    const slots = this.#slots;
    const s = slots.map.get(key);
    const state = slots.state;
    if (s === undefined || state[2 * s + 1]! < d.since) {
      this.refundKey(key, 1, undefined);
      return;
    }
    const now = this.#clock.now();
    const i = 2 * s;
    const last = state[i + 1]!;
    let x = state[i]!;
    if (now > last) {
      // #settle with no factor change to replay, as in takeOne
      x += d.rate * (now - last);
      if (x > d.cap) x = d.cap;
      state[i + 1] = now;
      this.#timeline.lastSettle = now;
    }
    x += 1;
    // #giveBack's cap (no tiers, no block here)
    const idle = this.#tiers.idleTokens(0, now);
    state[i] = x < idle ? x : idle;
    if (x + d.eps >= idle) this.#forgetIfFull(key, s);
  }

  /**
   * Gives back what an admitted `decide(key, cost, priority, 'take')` charged: to the key's bucket
   * (see #giveBack; nothing when the key is gone: it was evicted or deleted, which is a full bucket
   * already) and to the global bucket (capped at its capacity). A priority's charge (cost·f/e) is
   * computed at the factor in force now: exact while the factor has not moved since the take.
   */
  refundKey(key: string, cost: number, priority: Priority | undefined): void {
    if (typeof key !== 'string') throw new ConfigError('key', key, 'a string');
    if (key.length > 85) key = boundKey(key); // 85 = MAX_INLINE_KEY_CHARS
    if (typeof cost !== 'number' || !(cost > 0) || cost === Infinity) {
      throw new ConfigError('cost', cost, 'a finite number > 0');
    }
    const f = this.#timeline.factor;
    let charge = priority === undefined ? cost : chargeFor(cost, priority, f);
    // A priority that sees factor 0 now could not have been charged at it: give back its cost.
    if (charge === Infinity) charge = cost;
    const now = this.#clock.now();
    const s = this.#slots.map.get(key);
    if (s !== undefined) this.#giveBack(key, s, now, charge);
    this.#global?.refund(now, f, charge);
  }

  /**
   * Ms left in slot `s`'s block (0 when none). Outside peek, an expired block is cleared, and a
   * streak ends when the bucket (`level`: its tokens plus the tolerance) is back at a missing key's.
   */
  #blockedMs(s: number, now: number, level: number, tier: number, mode: DecideMode): number {
    const blk = this.#slots.blk!;
    const word = blk[s]!;
    if (word > 0) {
      const left = this.#block!.remainingMs(word, now);
      if (left > 0) return left;
      if (mode !== 'peek') blk[s] = 0;
    } else if (word < 0 && mode !== 'peek' && level >= this.#tiers.idleTokens(tier, now)) {
      // Refilled to the level of a missing key: the streak is over (so dropping such a bucket
      // changes no decision).
      blk[s] = 0;
    }
    return 0;
  }

  #checkCost(cost: number, burst: number): void {
    if (typeof cost !== 'number' || !(cost > 0) || cost > burst) {
      throw new ConfigError('cost', cost, `a finite number > 0 and <= the key's burst (${burst})`);
    }
    const g = this.#global;
    if (g !== undefined && cost > g.burst) {
      throw new ConfigError('cost', cost, `a finite number > 0 and <= global.burst (${g.burst})`);
    }
  }

  /** Brings slot `s` to `now` (replaying factor changes since its last settle) and returns its tokens. */
  #settle(s: number, now: number, rate: number, burst: number): number {
    const state = this.#slots.state;
    const tl = this.#timeline;
    const last = state[2 * s + 1]!;
    let x: number;
    if (last >= tl.lastChange) {
      if (!(now > last)) return state[2 * s]!;
      const f = tl.factor;
      x = refill(state[2 * s]!, now - last, rate * f, burst * f);
    } else {
      x = tl.replay(state[2 * s]!, last, now, rate, burst, false);
    }
    state[2 * s] = x;
    state[2 * s + 1] = now;
    tl.lastSettle = now;
    return x;
  }

  /** Like #settle, without writing anything. */
  #peekTokens(s: number, now: number, rate: number, burst: number): number {
    const state = this.#slots.state;
    return this.#timeline.tokensAt(state[2 * s]!, state[2 * s + 1]!, now, rate, burst);
  }

  /**
   * The limits at factor 1 of `key`'s tier, rate per second: a held key's own tier, else the one its
   * lookup gives (interned as a take would), else the defaults.
   */
  limitsOf(key: string): BucketLimits {
    if (typeof key !== 'string') throw new ConfigError('key', key, 'a string');
    let tier = 0;
    if (this.#hasTiers) {
      if (key.length > 85) key = boundKey(key); // 85 = MAX_INLINE_KEY_CHARS
      const s = this.#slots.map.get(key);
      tier = s === undefined ? this.#tierFor(key, this.#clock.now()) : this.#slots.tierOf![s]!;
    }
    return { ratePerSec: this.#tiers.rate[tier]! * 1000, burst: this.#tiers.burst[tier]! };
  }

  #tierFor(key: string, now: number): number {
    const slots = this.#slots;
    const idx = this.#tiers.tierFor(key, now, slots.size, this.#compactTiers);
    if (idx > 0xffff) slots.widenTiers();
    return idx;
  }

  /** Rebuilds the tier table from the tiers of the live keys. */
  compactTiers(): void {
    const slots = this.#slots;
    if (slots.tierOf !== undefined) this.#tiers.compact(slots.map.values(), slots.tierOf);
  }

  /** Droppable: no block and no streak, and as many tokens as a missing key would have. */
  #droppable(s: number, now: number): boolean {
    const slots = this.#slots;
    const tier = this.#hasTiers ? slots.tierOf![s]! : 0;
    const burst = this.#tiers.burst[tier]!;
    const x = this.#settle(s, now, this.#tiers.rate[tier]!, burst);
    const quiet = slots.blk === undefined || slots.blk[s] === 0;
    return quiet && x + burst * TOKEN_EPSILON >= this.#tiers.idleTokens(tier, now);
  }

  #setScaled(f: number): void {
    const scaled = new Scaled(this.#rate, this.#burst, this.#eps, f, this.#timeline.lastChange);
    this.#scaled = scaled;
    this.#fast = this.plain && scaled.oneFits ? scaled : SLOW_ONLY;
  }

  /** Follows a new factor from the source: every part brought to the change, then the change logged. */
  onFactor(next: number): void {
    if (typeof next !== 'number' || Number.isNaN(next)) return;
    const fNew = next < 0 ? 0 : Math.min(next, 1);
    const tl = this.#timeline;
    const fOld = tl.factor;
    if (fNew === fOld) return;
    const at = tl.changeTime(this.#clock.now());
    this.#global?.onFactor(at, fOld, fNew);
    // The idle buckets (one per tier) follow the change eagerly, like the global one.
    this.#tiers.onFactor(at, fNew);
    let sweep = at === tl.lastSettle;
    if (tl.isFull) {
      // Log full: bring every stale bucket up to `at` once; record() then starts an empty log.
      this.#settleAll(at);
      sweep = true;
    }
    tl.record(at, fNew);
    // Buckets settled at this very instant are not replayed (their last settle is not before the
    // change), so the shrink's clamp is applied to them here.
    if (sweep && fNew < fOld) this.#clampSettledAt(at, fNew);
    this.#setScaled(fNew);
  }

  #settleAll(at: number): void {
    const slots = this.#slots;
    for (const s of slots.map.values()) {
      if (slots.state[2 * s + 1]! < at) {
        const tier = this.#hasTiers ? slots.tierOf![s]! : 0;
        this.#settle(s, at, this.#tiers.rate[tier]!, this.#tiers.burst[tier]!);
      }
    }
  }

  #clampSettledAt(at: number, fNew: number): void {
    const slots = this.#slots;
    const state = slots.state;
    for (const s of slots.map.values()) {
      if (state[2 * s + 1]! >= at) {
        const tier = this.#hasTiers ? slots.tierOf![s]! : 0;
        const cap = this.#tiers.burst[tier]! * fNew;
        if (state[2 * s]! > cap) state[2 * s] = cap;
      }
    }
  }

  /**
   * Gives back a reservation's `charge` to `key` (if it still holds `slot`: see #giveBack) and the
   * global bucket.
   */
  refund(key: string, slot: number, charge: number): void {
    const now = this.#clock.now();
    if (this.#slots.map.get(key) === slot) this.#giveBack(key, slot, now, charge);
    this.#global?.refund(now, this.#timeline.factor, charge);
  }

  /**
   * Ms until `key`'s bucket (slot `slot`) holds `target` tokens at the current factor: 0 when it
   * does, Infinity when it never will at this factor, NaN when the slot no longer holds `key`.
   */
  keyWait(key: string, slot: number, target: number): number {
    const slots = this.#slots;
    if (slots.map.get(key) !== slot) return Number.NaN;
    const tier = this.#hasTiers ? slots.tierOf![slot]! : 0;
    const rate = this.#tiers.rate[tier]!;
    const burst = this.#tiers.burst[tier]!;
    const x = this.#settle(slot, this.#clock.now(), rate, burst);
    const f = this.#timeline.factor;
    return waitMs(x, target, rate * f, burst * f, burst * TOKEN_EPSILON);
  }

  /** Ms until the global bucket holds `target` tokens at the current factor (0 without one). */
  globalWait(target: number): number {
    const g = this.#global;
    if (g === undefined) return 0;
    const f = this.#timeline.factor;
    return waitMs(g.tokensAt(this.#clock.now(), f), target, g.ratePerMs * f, g.burst * f, g.eps);
  }

  /** The refusal a waiter resolves with when it can no longer be admitted in time. */
  refusedNow(key: string, slot: number, retryAfterMs: number): KeyedDecision {
    const now = this.#clock.now();
    const f = this.#timeline.factor;
    const slots = this.#slots;
    const own = slots.map.get(key) === slot;
    const tier = own && this.#hasTiers ? slots.tierOf![slot]! : 0;
    const rate = this.#tiers.rate[tier]!;
    const burst = this.#tiers.burst[tier]!;
    const x = own ? this.#settle(slot, now, rate, burst) : this.#tiers.idleTokens(tier, now);
    const cap = burst * f;
    const remaining = x > 0 ? x : 0;
    const reason = f < 1 ? 'shed' : 'limited';
    return decision(false, reason, remaining, cap, retryAfterMs, resetOf(cap, x, rate * f), f, 'key');
  }

  /** The admission a reservation resolves with once its wait is over. */
  admittedNow(key: string, slot: number): KeyedDecision {
    const now = this.#clock.now();
    const f = this.#timeline.factor;
    const slots = this.#slots;
    const tier = this.#hasTiers ? slots.tierOf![slot]! : 0;
    const rate = this.#tiers.rate[tier]!;
    const burst = this.#tiers.burst[tier]!;
    const x =
      slots.map.get(key) === slot ? this.#settle(slot, now, rate, burst) : this.#tiers.idleTokens(tier, now);
    const cap = burst * f;
    const remaining = x > 0 ? x : 0;
    return decision(true, 'ok', remaining, cap, 0, resetOf(cap, remaining, rate * f), f, 'key');
  }
}

/**
 * The default limits (tier 0) scaled by a factor `f`: what `takeOne` needs, computed once per change.
 *
 * A class whose numbers start as NaN, not an object literal: the first value a field holds fixes how
 * V8 stores it, and a field that starts as a small integer is read back as one. `cap` is a whole
 * number whenever the burst is (at factor 1), a full bucket is set to it, and from there `takeOne`'s
 * arithmetic on the tokens (`x - 1`, `x > 0`, `limit - x`) would learn small-integer types, which V8
 * compiles into float-to-integer and overflow checks on every call (kept even where the result is
 * unused), and deoptimises at the first fractional balance: 1–2 ns a call on a hot key whose bucket
 * stays full (docs/benchmarks.md). Started as NaN, the fields hold doubles, like the slot table's
 * Float64Array, and the arithmetic stays float (test/limiters/keyed/hot-path-types.test.ts).
 */
class Scaled {
  /** The factor, from 0 to 1. */
  readonly f: number = Number.NaN;
  /** Tokens per ms. */
  readonly rate: number = Number.NaN;
  /** Capacity. */
  readonly cap: number = Number.NaN;
  /** The tolerance (TOKEN_EPSILON of the unscaled burst). */
  readonly eps: number = Number.NaN;
  /** 1 / rate (waits and reset times become products); 0 at factor 0. */
  readonly inv: number = Number.NaN;
  /** Whether a cost of 1 can be admitted at all: f > 0 and 1 within the capacity (and tolerance). */
  readonly oneFits: boolean = false;
  /** The timeline's latest change when this was computed: a bucket settled before it needs a replay. */
  readonly since: number = Number.NaN;

  constructor(ratePerMs: number, burst: number, eps: number, f: number, since: number) {
    this.f = f;
    this.rate = ratePerMs * f;
    this.cap = burst * f;
    this.eps = eps;
    this.inv = f > 0 ? 1 / this.rate : 0;
    this.oneFits = f > 0 && 1 <= this.cap + eps;
    this.since = since;
  }
}

/**
 * For `takeOne`: every bucket was settled before `since`, so everything goes to `decide` (and
 * nothing here is read; factor 0: no rate, no capacity).
 */
const SLOW_ONLY = new Scaled(0, 0, 0, 0, Infinity);

/**
 * What a request pays in the bucket that runs at the base factor f: a priority that sees factor
 * e pays cost·f/e, so a class alone gets exactly rate·e.
 */
function chargeFor(cost: number, priority: Priority, f: number): number {
  const level = priorityLevel(priority);
  if (level === 0.5 || f >= 1) return cost;
  const e = effectiveFactor(f, level);
  return e > 0 ? cost * (f / e) : Infinity;
}

/**
 * A refusal by the key's own bucket alone (`x` tokens, capacity `cap`, `inv` = 1 / its scaled rate):
 * 'limited' when the key is over its own quota (at factor 1, or when its fill level scaled up to
 * factor 1 could not pay the unscaled cost either), 'shed' when the cut is the factor's.
 */
function keyRefusal(
  x: number,
  cost: number,
  charge: number,
  cap: number,
  eps: number,
  inv: number,
  f: number,
): KeyedDecision {
  const keyWait = f === 0 || charge > cap + eps ? Infinity : (charge - x) * inv;
  const reason = keyWait !== Infinity && (f === 1 || x + eps < cost * f) ? 'limited' : 'shed';
  return decision(false, reason, x > 0 ? x : 0, cap, keyWait, (cap - x) * inv, f, 'key');
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
