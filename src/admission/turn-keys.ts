/**
 * Per-key arrivals of one event-loop turn, for the loop-turn budget's fair refusals.
 *
 * Under a standing overload each turn holds what arrived while the last one ran, and the budget
 * knows how many of them it can admit. Refusing "the first N" or "the tail" refuses every key
 * alike: a tenant sending a tenth of the load loses the same share as the one sending most of it.
 * Instead the budget shares a turn's admissions max-min fairly over the keys that arrived in it
 * (water filling): with `A` admissions for arrivals `n_k`, the level `L` solves
 * `Σ min(n_k, L) = A`. A key that sent at most `L` keeps every request; a key that sent more is
 * refused its excess `n_k − L`. In the next turn the budget refuses that many of the heavy key's
 * *first* requests (at the cost of a refusal each, before any admitted work of the turn) and
 * admits the light keys throughout: the heavy tenant is cut first, and its refusals are fast.
 *
 * Memory is bounded: at most `maxKeys` keys are counted per turn; arrivals of further keys count
 * as one request each (they are light as far as this turn can tell). When a turn admits fewer
 * requests than it saw keys (`L < 1`: thousands of clients each sending one), fairness within one
 * turn has no meaning and the budget falls back to refusing the first requests of the turn.
 */

/** The most keys counted in one turn (the rest count as one request each). */
export const MAX_TURN_KEYS = 1024;

/** A heavy key's refusals in the coming turn. */
export interface KeyRefusals {
  /** The share of its requests to refuse, from 0 to 1. */
  readonly share: number;
  /** Refusals owed so far: each request adds `share`, and a refusal is due at 1 (it starts at 0.5). */
  owed: number;
}

export class TurnKeys {
  readonly #arrivals = new Map<string, number>();
  /** Arrivals of keys past `MAX_TURN_KEYS`, each counted as a key of its own. */
  #untracked = 0;
  #total = 0;

  /** Arrivals counted this turn. */
  get total(): number {
    return this.#total;
  }

  /** Distinct keys counted this turn (each untracked arrival as one). */
  get keys(): number {
    return this.#arrivals.size + this.#untracked;
  }

  /** Counts one arrival of `key`; answers the key's arrivals this turn, this one included. */
  count(key: string): number {
    this.#total++;
    const arrivals = this.#arrivals;
    const n = arrivals.get(key);
    if (n !== undefined) {
      arrivals.set(key, n + 1);
      return n + 1;
    }
    if (arrivals.size >= MAX_TURN_KEYS) {
      this.#untracked++;
      return 1;
    }
    arrivals.set(key, 1);
    return 1;
  }

  /**
   * The water level for `admitted` admissions over this turn's arrivals: `Infinity` when every
   * arrival fits, `undefined` when it is below one request a key (no per-key fairness possible).
   */
  level(admitted: number): number | undefined {
    if (admitted >= this.#total) return Number.POSITIVE_INFINITY;
    if (admitted < this.keys) return undefined;
    // Untracked keys sent one request each, at or under any level >= 1: they take one each.
    let remaining = admitted - this.#untracked;
    const counts = [...this.#arrivals.values()].sort((a, b) => a - b);
    for (let i = 0; i < counts.length; i++) {
      const left = counts.length - i;
      const n = counts[i]!;
      if (n * left >= remaining) return remaining / left;
      remaining -= n;
    }
    return Number.POSITIVE_INFINITY;
  }

  /**
   * The refusals of the next turn at `level`, for each key that sent more than the level: the share
   * of its requests to refuse, `(n_k − level) / n_k`. Empty for an infinite level.
   */
  excess(level: number): Map<string, KeyRefusals> {
    const out = new Map<string, KeyRefusals>();
    if (!Number.isFinite(level)) return out;
    for (const [key, n] of this.#arrivals) {
      if (n > level) out.set(key, { share: (n - level) / n, owed: 0.5 });
    }
    return out;
  }

  clear(): void {
    this.#arrivals.clear();
    this.#untracked = 0;
    this.#total = 0;
  }
}
