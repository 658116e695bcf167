/**
 * Per-key arrivals of the event-loop turns of an overload, for the loop-turn budget's fair refusals.
 *
 * Under a standing overload each turn holds what arrived while the last one ran, and the budget
 * knows how many of them it can admit. Refusing "the first N" or "the tail" refuses every key
 * alike: a tenant sending a tenth of the load loses the same share as the one sending most of it.
 * Instead the budget shares the admissions max-min fairly over the keys (water filling): with each
 * key's arrivals per turn `r_k` and `A` admissions a turn, the level `L` solves
 * `Σ min(r_k, L) = A`. A key that sends at most `L` keeps every request; a key that sends more is
 * refused the share `(r_k − L) / r_k` of its requests in the next turn.
 *
 * `r_k` and the admitted share `A / Σ r_k` are smoothed over the last turns (each turn's weight
 * `TURN_KEYS_DECAY` of the one after it, about the last 8 turns): within one turn, arrivals are few
 * and random (a light tenant at a tenth of capacity sends 2 to 6 requests a turn), and one turn
 * can run long for reasons of its own (a timer, a slow request); a level from one turn alone put a
 * light key over it in its busier turns. Simulated (simulations/scenarios/tenants-3x.json), the
 * light tenants kept 93-96% of what they sent with one-turn levels, 97% with smoothed ones.
 *
 * Memory is bounded: at most `MAX_TURN_KEYS` keys are tracked; arrivals of further keys count as
 * one request a turn each, for their turn only (they are light as far as the budget can tell).
 * With one key, or when the level is below one request a turn (thousands of clients each sending
 * one), fairness has no meaning and the budget falls back to refusing the first requests of the
 * turn.
 */

/** The most keys tracked (the rest count as one request each, for their turn only). */
export const MAX_TURN_KEYS = 1024;

/** Each turn's arrivals weigh this much less than the next turn's in the smoothed rates. */
export const TURN_KEYS_DECAY = 0.875;

/** A smoothed rate below this (requests a turn) is forgotten. */
const FORGET_BELOW = 0.01;

/** A heavy key's refusals in the coming turn. */
export interface KeyRefusals {
  /** The share of its requests to refuse, from 0 to 1. */
  readonly share: number;
  /** Refusals owed so far: each request adds `share`, and a refusal is due at 1 (it starts at 0.5). */
  owed: number;
}

export class TurnKeys {
  /** This turn's arrivals per tracked key. */
  readonly #arrivals = new Map<string, number>();
  /** This turn's arrivals of keys past `MAX_TURN_KEYS`, each counted as a key of its own. */
  #untracked = 0;
  #total = 0;
  /** Smoothed arrivals per turn (decayed sums; divide by `#weight`). */
  readonly #smoothed = new Map<string, number>();
  #weight = 0;
  /** The admitted share of the turns, smoothed like the rates (a decayed sum; divide by `#weight`). */
  #admitted = 0;
  /** Half the highest smoothed rate (a decayed sum, like `#smoothed`); -1 with fewer than 2 keys. */
  #lightBelow = -1;

  /** Arrivals counted this turn. */
  get total(): number {
    return this.#total;
  }

  /** Distinct keys counted this turn (each untracked arrival as one). */
  get keys(): number {
    return this.#arrivals.size + this.#untracked;
  }

  /** Counts one arrival of `key` this turn. */
  count(key: string): void {
    this.#total++;
    const arrivals = this.#arrivals;
    const n = arrivals.get(key);
    if (n !== undefined) arrivals.set(key, n + 1);
    else if (arrivals.size >= MAX_TURN_KEYS) this.#untracked++;
    else arrivals.set(key, 1);
  }

  /**
   * Ends the turn: folds its arrivals into the smoothed rates, and answers the next turn's refusal
   * share per key when `carry` of this turn's arrivals were to be refused: an empty map when every
   * key fits, undefined when the level falls below one request a turn (use the uniform rule).
   */
  endTurn(carry: number): Map<string, KeyRefusals> | undefined {
    const smoothed = this.#smoothed;
    const arrivals = this.#arrivals;
    // The heaviest smoothed rate, for isLight, found in the same passes.
    let max = 0;
    for (const [key, d] of smoothed) {
      const next = d * TURN_KEYS_DECAY + (arrivals.get(key) ?? 0);
      arrivals.delete(key);
      if (next * (1 - TURN_KEYS_DECAY) < FORGET_BELOW) smoothed.delete(key);
      else {
        smoothed.set(key, next);
        if (next > max) max = next;
      }
    }
    let untracked = this.#untracked;
    for (const [key, n] of arrivals) {
      if (smoothed.size < MAX_TURN_KEYS) {
        smoothed.set(key, n);
        if (n > max) max = n;
      } else untracked += n;
    }
    this.#lightBelow = smoothed.size >= 2 ? max / 2 : -1;
    const total = this.#total;
    const admitted = total > 0 ? Math.max(0, 1 - Math.max(0, carry) / total) : 1;
    this.#weight = this.#weight * TURN_KEYS_DECAY + 1;
    this.#admitted = this.#admitted * TURN_KEYS_DECAY + admitted;
    arrivals.clear();
    this.#untracked = 0;
    this.#total = 0;
    if (carry <= 0) return new Map();
    if (total <= 0) return undefined;
    return this.#shares(this.#admitted / this.#weight, untracked);
  }

  /**
   * True when `key` sent at most half as much as the heaviest key over the last turns (the rates
   * smoothed as above): light next to it, whatever the fair level. False for a key not seen in an
   * earlier turn, when fewer than two keys were seen, and for keys that all send alike.
   */
  isLight(key: string): boolean {
    const d = this.#smoothed.get(key);
    return d !== undefined && d <= this.#lightBelow;
  }

  /** Forgets everything (the overload is over). */
  reset(): void {
    // Called at the end of every turn outside an overload, when both are empty: V8's `clear`
    // allocates a new table even then, so it is skipped.
    if (this.#arrivals.size > 0) this.#arrivals.clear();
    if (this.#smoothed.size > 0) this.#smoothed.clear();
    this.#untracked = 0;
    this.#total = 0;
    this.#weight = 0;
    this.#admitted = 0;
    this.#lightBelow = -1;
  }

  /**
   * The refusal shares when `admitted` (from 0 to 1) of the load is to be admitted. Untracked keys
   * count as `untracked` keys of one request a turn each.
   */
  #shares(admitted: number, untracked: number): Map<string, KeyRefusals> | undefined {
    // Fairness needs two keys: one key alone keeps the uniform rule (its oldest requests refused first).
    if (this.#smoothed.size + untracked < 2) return undefined;
    const w = this.#weight;
    const rates = [...this.#smoothed.values()].map((d) => d / w).sort((a, b) => a - b);
    let sum = untracked;
    for (const r of rates) sum += r;
    const level = waterLevel(rates, untracked, admitted * sum);
    if (level < 1) return undefined;
    const out = new Map<string, KeyRefusals>();
    if (!Number.isFinite(level)) return out;
    for (const [key, d] of this.#smoothed) {
      const r = d / w;
      if (r > level) out.set(key, { share: (r - level) / r, owed: 0.5 });
    }
    return out;
  }
}

/**
 * The level `L` with `Σ min(r, L) = target` over `rates` (ascending) and `ones` more rates of 1:
 * `Infinity` when every rate fits.
 */
export function waterLevel(rates: readonly number[], ones: number, target: number): number {
  const all = ones > 0 ? mergeOnes(rates, ones) : rates;
  let remaining = target;
  for (let i = 0; i < all.length; i++) {
    const left = all.length - i;
    const r = all[i]!;
    if (r * left >= remaining) return remaining / left;
    remaining -= r;
  }
  return Number.POSITIVE_INFINITY;
}

function mergeOnes(rates: readonly number[], ones: number): number[] {
  const out: number[] = [];
  let i = 0;
  while (i < rates.length && rates[i]! < 1) out.push(rates[i++]!);
  for (let k = 0; k < ones; k++) out.push(1);
  while (i < rates.length) out.push(rates[i++]!);
  return out;
}
