/**
 * The loop-turn budget: refuses new work once the current event-loop turn has already run for
 * `budgetMs`.
 *
 * Under a sudden overload, requests pile up in socket buffers while the loop is busy. When it next
 * polls, libuv hands it every ready socket at once (up to 48 batches of 1,024 events), and Node runs
 * all their handlers in that one turn: seen here, a 3× step to a 2 ms handler gave a first turn of
 * 1.7 s. No timer fires inside a turn, so the governor (which samples on a timer) cannot see the
 * overload until the turn is over, and every request admitted late in the turn has already waited
 * most of it. The budget acts inside the turn: the first requests are admitted, and once the turn
 * has run `budgetMs` the rest are refused at the cost of a refusal, not of a handler. It is the fast
 * inner loop; the governor's factor is the slow outer one.
 *
 * A turn ends when the check phase runs a `setImmediate` callback scheduled by its first request.
 * Priorities scale the budget: sheddable work gets half of it, critical work twice
 * (`budgetMs · 2^(2p − 1)` for a priority level p from 0 to 1). Work that yields (awaits I/O)
 * spends little of a turn, so the budget only ever refuses when the loop itself is the bottleneck.
 *
 * **Refusing early.** Refused at the end of a long turn, a request has waited through the whole
 * turn's admitted work before hearing 503: measured live at 3× CPU-bound overload, 503s waited
 * longer than 2xx (p50 42 ms against 28 ms). Under a standing overload each turn looks like the one
 * before (it holds what arrived while the last one ran), so the budget carries the last turn's
 * refusals forward: once two turns in a row overran (or one overran within RECENT_OVERRUN_TURNS
 * turns of another: the overload is near), the next refuses its *first* requests, as many as the
 * last turn refused (of the priorities it refused), at the cost of a refusal each, and admits from
 * there until the budget runs out (a single overrun, a burst, carries nothing). The refused hear at once; the admitted are the newest of the
 * turn, whose clients have waited least. When a turn ends within its budget, the carried count
 * shrinks in proportion (`carried · turnMs / budgetMs`), so once the overload ends it is gone after a
 * turn or two. `refuseEarly: false` keeps the old rule (refuse only the tail).
 *
 * **Two turns in a row.** A request waits through two turns: the rest of the one it arrives in,
 * then its place in the next. So a turn that follows an overrun (it refused or graced past its
 * budget) gets its budget cut by that overrun (`budgetMs − overrunMs`, at least 0): two turns in a
 * row then hold at most twice the budget of admitted work, and a request's wait stays within it.
 * Light keys keep their grace on the full budget (below), so the cut falls on the heavy keys.
 * Simulated (simulations/scenarios/tenants-3x.json, seeds 1-3): the p99 over the overload fell
 * from 43.4-43.9 to 41.0-41.3 ms (governor fed; 41.6-42.0 to 39.5-39.9 not fed), the light tenants
 * kept 97.6-99.0% of what they sent against 96.4-97.2%, goodput unchanged. At the edge of an
 * overload with heavy-tailed handlers (daily-cycle.json) it trades 0.5% of goodput for a p99 3 ms
 * lower. A long turn that refused nothing (one slow request, nothing waiting behind it) cuts nothing.
 *
 * **A standing overload.** A request waits about one turn (the rest of the turn it arrives in, then
 * its place in the next), so the longest turns set the p99 under a CPU-bound overload. Once an
 * overload stands (two turns in a row overran, or one within RECENT_OVERRUN_TURNS of another),
 * each turn runs `standingShare` of the budget (0.8: 20 ms of the default 25), until
 * RECENT_OVERRUN_TURNS turns in a row have not overrun. A burst under capacity (a single overrun)
 * keeps the whole budget, so it is refused no more often than before. The price is at the edge of
 * an overload, where shorter turns refuse a little more than the excess. Simulated (seeds 1-3):
 * tenants-3x.json (2.25x), p99 over the overload 41.0-41.3 -> 33.9-34.2 ms, goodput 96.5-96.6 ->
 * 96.3-96.5%, light tenants 97.6-99.0 -> 97.1-98.5%; steady-under-capacity.json and a 60% load of
 * exponential handlers refuse exactly as before; daily-cycle.json (1.1x peaks, heavy-tailed
 * handlers) 91% -> 89.5% goodput over its peaks, p99 39 -> 35.5 ms.
 *
 * **Heavy keys first.** Refusing the first or the last requests of a turn refuses every key alike:
 * under a 3x overload where one tenant sends most of the load, a tenant sending a tenth of it lost
 * the same share as the heavy one. So while turns overrun, the budget counts arrivals per key (the
 * request's `key`: the guard's per-key quota key, a tenant, a client address) and shares the
 * refusals it carries max-min fairly (see turn-keys.ts): the next turn refuses only the keys that
 * send more than the fair level, each a share `(r − level) / r` of its requests, spread evenly over
 * the turn (every k-th request) and at most as many as it carries, and admits the lighter keys
 * throughout, even a little past the budget (`LIGHT_GRACE`; those admissions count toward the next
 * carry, so the heavy keys make room for them). Spread rather than first: the first requests of a
 * turn are its oldest, and refusing only those made the 503s wait longer than the 2xx (ManualClock
 * model of test/governor/feed.test.ts: 21.7 against 19.0 ms at the median; spread, 27.4 against
 * 27.1), the light keys lost more (92-98% kept against 99.8%), and p99 was higher (40-45 against
 * 30-33 ms). With one key, spreading only made its 2xx wait longer (22.0 against 8.9 ms at the
 * median in the simulated step to 3x), so requests without a key, turns with one key, and turns
 * whose level is below one request per key (many clients sending one request each) keep the
 * uniform rule above. Near an overload (within RECENT_OVERRUN_TURNS turns of an overrun) the keys
 * stay counted, and the tail of a turn that overruns with nothing carried (a single overrun, as the
 * governor's factor holding the load at the edge leaves them) also admits, up to `LIGHT_GRACE`, a
 * key that sent at most half the heaviest key's rate: the heavy keys first there too. Outside an
 * overload nothing is counted: it costs nothing.
 */
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { priorityLevel } from '../limiters/priority.js';
import type { Decision, Priority } from '../limiters/types.js';
import { boolean, clockOption, knownKeys, positiveNumber } from '../validate.js';
import { ADMITTED_UNLIMITED } from '../limiters/decisions.js';
import { type KeyRefusals, TurnKeys } from './turn-keys.js';

export interface TurnBudgetOptions {
  /** How long one event-loop turn may run before normal-priority work is refused, in ms. @default 25 */
  budgetMs?: number;
  /** Retry-After of a refusal, in ms. @default 1000 */
  retryAfterMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Runs `fn` when the current turn ends. @default setImmediate */
  defer?: (fn: () => void) => void;
  /**
   * Refuse a turn's first requests when the turn before overran (see above), instead of only the
   * tail of each long turn. @default true
   */
  refuseEarly?: boolean;
  /**
   * While an overload stands, each turn runs this share of the budget (see "A standing overload");
   * 1 keeps the whole budget throughout. A number > 0 and <= 1. @default 0.8
   */
  standingShare?: number;
}

export const TURN_BUDGET_DEFAULTS = Object.freeze({
  budgetMs: 25,
  retryAfterMs: 1000,
  refuseEarly: true,
  standingShare: 0.8,
});

/**
 * While per-key refusals are carried, a key that sent no more than the fair level (it has no share
 * to refuse) is still admitted past the budget, up to this multiple of it: the tail of an overrun
 * turn is then refused from the heavy keys only. Simulated at 3x: the light keys' loss fell from
 * 12-20% to under 1%, and p99 rose by under 3 ms.
 */
export const LIGHT_GRACE = 1.25;

/**
 * After a turn overran, the budget keeps counting arrivals per key for this many turns (and keeps
 * their smoothed rates), and a turn that overruns within them carries its refusals as a second
 * overrun in a row does. Near the edge of an overload, where the factor holds the load once the
 * quotas take most of it (governor-feed.ts), turns overrun now and then rather than in a row:
 * their tails were refused uniformly and nothing was carried, and the light tenants of
 * simulations/scenarios/tenants-3x.json kept 88-89% of what they sent. Counted and carried, they
 * keep 96-97%, and the p99 over the overload falls by 1.5 ms (fed or not).
 */
export const RECENT_OVERRUN_TURNS = 64;

const OPTIONS = ['budgetMs', 'retryAfterMs', 'clock', 'defer', 'refuseEarly', 'standingShare'] as const;

const defaultDefer = (fn: () => void): void => {
  setImmediate(fn);
};

export class TurnBudget {
  readonly budgetMs: number;
  readonly refuseEarly: boolean;
  readonly standingShare: number;
  /**
   * While true, a request this budget refuses still spends its key's quota: the pipeline charges
   * the key limiter as if the request had been admitted (Stage.spendsQuota, pipeline rule 5a). The
   * HTTP guard sets it while it feeds a governor its refusal share, and clears it when it stops (see
   * governor-feed.ts, "The turn budget's refusals spend the quota"). @default false
   */
  spendsQuota = false;
  readonly #retryAfterMs: number;
  readonly #clock: Clock;
  readonly #defer: (fn: () => void) => void;
  /** When the current turn's first request was seen, or -1 between turns. */
  #turnStart = -1;
  #refused = 0;
  #refusedEarly = 0;
  /** Requests still to refuse at the head of this turn, and the highest priority level they cover. */
  #carry = 0;
  #carryLevel = -1;
  /** Per key, requests still to refuse at the head of this turn (the fair carry), or undefined. */
  #keyCarry: Map<string, KeyRefusals> | undefined;
  /** Whether this turn counts arrivals per key (it follows an overrun or carries refusals). */
  #counting = false;
  readonly #keys = new TurnKeys();
  /** This turn's refusals: at its head, at its tail, and the highest priority level refused. */
  #headRefused = 0;
  #tailRefused = 0;
  /** This turn's admissions past the budget (light keys within `LIGHT_GRACE`). */
  #graced = 0;
  #turnLevel = -1;
  /** The last turn overran its budget (a burst, or the start of a standing overload). */
  #overran = false;
  /** Turns left to count keys in since the last overrun (RECENT_OVERRUN_TURNS). */
  #recent = 0;
  /** How far the last turn ran past its budget when it overran, in ms, else 0 ("Two turns in a row"). */
  #lastOverrunMs = 0;
  /** An overload stands ("A standing overload"): turns run `standingShare` of the budget. */
  #standing = false;
  /** This turn's budget for normal priority before the cut: `budgetMs`, less while an overload stands. */
  #turnBudgetMs = 0;
  readonly #endTurn = (): void => this.#turnEnded();

  constructor(options: TurnBudgetOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object');
    }
    knownKeys('TurnBudget', options, OPTIONS);
    this.budgetMs = positiveNumber('budgetMs', options.budgetMs ?? TURN_BUDGET_DEFAULTS.budgetMs);
    this.#retryAfterMs = positiveNumber(
      'retryAfterMs',
      options.retryAfterMs ?? TURN_BUDGET_DEFAULTS.retryAfterMs,
    );
    this.#clock = clockOption('clock', options.clock, systemClock, false);
    if (options.defer !== undefined && typeof options.defer !== 'function') {
      throw new ConfigError('defer', options.defer, 'a function');
    }
    this.#defer = options.defer ?? defaultDefer;
    this.refuseEarly = boolean('refuseEarly', options.refuseEarly ?? TURN_BUDGET_DEFAULTS.refuseEarly);
    this.standingShare = positiveNumber(
      'standingShare',
      options.standingShare ?? TURN_BUDGET_DEFAULTS.standingShare,
      0,
      1,
    );
  }

  /** Requests refused since construction. */
  get refused(): number {
    return this.#refused;
  }

  /**
   * Of `refused`, those refused early: carried from an overrun turn before, at the head of the turn
   * (or, per key, spread over it) rather than at its tail.
   */
  get refusedEarly(): number {
    return this.#refusedEarly;
  }

  /**
   * Admits while the current turn has run at most this priority's share of the budget, unless the
   * turn follows an overrun and carries refusals: then the request may be refused early, among the
   * first of the turn (see "Refusing early"), or, when its key sent more than the fair level of the
   * last turn, as its key's share (see "Heavy keys first").
   */
  admit(options?: { priority?: Priority; cost?: number; key?: string }): Decision {
    const now = this.#clock.now();
    if (this.#turnStart < 0) {
      this.#turnStart = now;
      this.#turnBudgetMs = this.#standing ? this.budgetMs * this.standingShare : this.budgetMs;
      this.#defer(this.#endTurn);
      this.#counting = this.refuseEarly && (this.#overran || this.#carry > 0 || this.#recent > 0);
    }
    const priority = options?.priority;
    const normal = priority === undefined || priority === 'normal';
    const level = normal ? 0.5 : priorityLevel(priority);
    const full = normal ? this.#turnBudgetMs : this.#turnBudgetMs * 2 ** (2 * level - 1);
    const cut = this.#lastOverrunMs;
    const budget = cut === 0 ? full : Math.max(0, full - cut);
    const key = options?.key;
    if (!this.#counting || key === undefined) {
      if (this.#carry > 0 && level <= this.#carryLevel) {
        this.#carry--;
        return this.#refuseEarly(level, budget);
      }
      if (now - this.#turnStart <= budget) return ADMITTED_UNLIMITED;
      return this.#refuseTail(level, budget);
    }
    return this.#admitKeyed(key, now, level, budget, full);
  }

  /**
   * `admit` in a turn that counts its keys (see "Heavy keys first"). `budget` is this turn's
   * budget for the priority, `full` the same before the cut that follows an overrun.
   */
  #admitKeyed(key: string, now: number, level: number, budget: number, full: number): Decision {
    this.#keys.count(key);
    const keyCarry = this.#keyCarry;
    const r = keyCarry?.get(key);
    if (this.#carry > 0 && level <= this.#carryLevel) {
      if (keyCarry === undefined) {
        this.#carry--;
        return this.#refuseEarly(level, budget);
      }
      // The heavy keys' shares, spread over the turn, at most `carry` refusals in all (so that they
      // end within a turn or two once the overload does, as the uniform carry does).
      if (r !== undefined) {
        r.owed += r.share;
        if (r.owed >= 1) {
          r.owed -= 1;
          this.#carry--;
          return this.#refuseEarly(level, budget);
        }
      }
    }
    const ran = now - this.#turnStart;
    if (ran <= budget) return ADMITTED_UNLIMITED;
    if (
      r === undefined &&
      ran <= LIGHT_GRACE * full &&
      (keyCarry !== undefined || this.#keys.isLight(key))
    ) {
      // Admitted past the budget: the heavy keys make room for it in the next turn. Without a
      // carry, a key is light when it sent at most the mean rate of the last turns (TurnKeys).
      this.#graced++;
      return ADMITTED_UNLIMITED;
    }
    return this.#refuseTail(level, budget);
  }

  #refuseEarly(level: number, budget: number): Decision {
    this.#headRefused++;
    this.#refusedEarly++;
    return this.#refuse(level, budget);
  }

  #refuseTail(level: number, budget: number): Decision {
    this.#tailRefused++;
    return this.#refuse(level, budget);
  }

  #refuse(level: number, budget: number): Decision {
    this.#refused++;
    if (level > this.#turnLevel) this.#turnLevel = level;
    return {
      allowed: false,
      reason: 'shed',
      remaining: 0,
      limit: budget,
      retryAfterMs: this.#retryAfterMs,
      resetMs: 0,
      factor: 1,
    };
  }

  /**
   * What the next turn refuses at its head. When this turn overran (its tail was refused, or its
   * head refusals still left it at the budget) right after another that did, or within
   * RECENT_OVERRUN_TURNS turns of one, the overload stands (or is near): every refusal of this turn
   * is carried. One overrun alone (a burst under a load the process can serve) carries nothing.
   * Otherwise the head refusals are scaled by the share of the budget used.
   * When this turn counted its keys, the carried refusals go to the keys over the fair level.
   */
  #turnEnded(): void {
    const turnMs = this.#clock.now() - this.#turnStart;
    this.#turnStart = -1;
    const head = this.#headRefused;
    const over = this.#tailRefused + this.#graced;
    const budgetMs = this.#turnBudgetMs;
    const overran = over > 0 || (head > 0 && turnMs >= budgetMs);
    // Two overruns in a row, or one near another: the overload stands (or is near).
    const again = overran && (this.#overran || this.#recent > 0);
    if (this.refuseEarly) {
      this.#plan(again ? head + over : Math.floor(head * Math.min(1, turnMs / budgetMs)));
    }
    // It stands from then on while turns keep overrunning, each within RECENT_OVERRUN_TURNS of the last.
    this.#standing = again || (this.#standing && (overran || this.#recent > 1));
    this.#overran = overran;
    this.#lastOverrunMs = overran && turnMs > budgetMs ? turnMs - budgetMs : 0;
    if (overran) this.#recent = RECENT_OVERRUN_TURNS;
    else if (this.#recent > 0) this.#recent--;
    this.#headRefused = 0;
    this.#tailRefused = 0;
    this.#graced = 0;
    this.#turnLevel = -1;
    this.#counting = false;
  }

  /** Sets the next turn's early refusals: `carry` of them, per key when this turn counted keys. */
  #plan(carry: number): void {
    this.#carry = 0;
    this.#keyCarry = undefined;
    this.#carryLevel = carry > 0 ? this.#turnLevel : -1;
    if (!this.#counting) {
      this.#keys.reset();
      this.#carry = Math.max(0, carry);
      return;
    }
    const shares = this.#keys.endTurn(carry);
    if (carry <= 0) return;
    this.#carry = carry;
    if (shares !== undefined) this.#keyCarry = shares;
  }
}

/**
 * The HTTP guard's rule for its `turnBudgetMs` option, shared with spillway-sim: a number turns
 * the budget on with that many ms, `false` turns it off, a `TurnBudget` is used as it is (its other
 * options are yours), and `undefined` turns it on with the default budget when a shedder is set
 * (overload protection was asked for), else leaves it off. `options` sets the rest of a budget made
 * here (in the simulator: simulated time and simulated turn ends).
 */
export function turnBudgetFor(
  turnBudgetMs: number | false | TurnBudget | undefined,
  hasShedder: boolean,
  options: Omit<TurnBudgetOptions, 'budgetMs'> = {},
): TurnBudget | undefined {
  if (turnBudgetMs === false) return undefined;
  if (turnBudgetMs instanceof TurnBudget) return turnBudgetMs;
  if (turnBudgetMs === undefined) return hasShedder ? new TurnBudget(options) : undefined;
  if (typeof turnBudgetMs !== 'number' || !Number.isFinite(turnBudgetMs) || !(turnBudgetMs > 0)) {
    throw new ConfigError(
      'turnBudgetMs',
      turnBudgetMs,
      'a finite number of ms > 0, false (no budget), or a TurnBudget from spillway/pipeline',
    );
  }
  return new TurnBudget({ ...options, budgetMs: turnBudgetMs });
}
