/**
 * Per-key load in a concurrency limiter, for its fair refusals. Counted only for requests that name
 * a key (the HTTP guard's key function, a tenant); requests without one are counted nowhere.
 *
 * Two readings per key:
 * - **places**: units it holds now, in flight and queued. Exact: every holder (a waiter, a permit)
 *   gives its units back once. A full queue refuses by them (who holds the room).
 * - **rate**: its arrivals, smoothed over time (a count decayed with time constant `KEY_RATE_MS`,
 *   arrivals per `KEY_RATE_MS` in a steady state), and its place beside the **level**: the max-min
 *   fair level of the keys' rates against what the limiter admits (`waterLevel` of turn-keys.ts:
 *   `Σ min(rate_k, L) = admitted`). A key at or under the level is **light**: it sends no more than
 *   its fair share of what the limiter serves. Instantaneous places are too noisy for this: a tenant
 *   at 0.3x of capacity holds 0 to 6 of 8 slots from one moment to the next, above and below an
 *   equal share of them; its rate is steady, and the level (0.55x of capacity when another tenant
 *   sends 1.8x and a third 0.15x) is well above it.
 *
 * The level is computed again at most every `LEVEL_EVERY_MS` (a sort of the rates), when asked.
 * Memory is bounded: an entry lives while its key holds places or its rate is not negligible, and
 * keys past `MAX_RATE_KEYS` holding no place are forgotten first. Pure: time comes in as arguments.
 */
import { waterLevel } from '../../admission/turn-keys.js';

/** One key's load. */
export interface KeyEntry {
  key: string;
  /** Units admitted and not yet released. */
  inFlight: number;
  /** Units waiting in the queue. */
  queued: number;
  /** Arrivals, decayed with time (see `KEY_RATE_MS`), as of `at`. */
  arrivals: number;
  at: number;
}

/** The time constant of the smoothed rates, in ms. */
export const KEY_RATE_MS = 1000;
/** The level is computed again at most this often, in ms. */
export const LEVEL_EVERY_MS = 100;
/** Keys holding no place are forgotten past this many entries (keys holding places always count). */
export const MAX_RATE_KEYS = 1024;
/** New keys between two prunes past MAX_RATE_KEYS. */
const PRUNE_SLACK = 256;
/** A decayed arrival count below this is forgotten (once the key holds no place). */
const NEGLIGIBLE = 0.05;

export class KeyPlaces {
  readonly #entries = new Map<string, KeyEntry>();
  /** Keys holding at least one place. */
  #holding = 0;
  #held = 0;
  #waiting = 0;
  /** Admissions of keyed requests, decayed like the rates, as of `#admittedAt`. */
  #admitted = 0;
  #admittedAt = 0;
  #level = Number.POSITIVE_INFINITY;
  #levelAt = Number.NEGATIVE_INFINITY;
  readonly #sorted: number[] = [];

  /** Keys holding at least one place. */
  get size(): number {
    return this.#holding;
  }

  /** Units held by keyed requests, in flight and queued. */
  get held(): number {
    return this.#held;
  }

  /** Keyed requests waiting in the queue. */
  get waiting(): number {
    return this.#waiting;
  }

  get(key: string): KeyEntry | undefined {
    return this.#entries.get(key);
  }

  /** Counts an arrival of `key` at `now`; answers its entry. */
  arrive(key: string, now: number): KeyEntry {
    let e = this.#entries.get(key);
    if (e === undefined) {
      // Forget the keys that need no entry any more, once in a while (every PRUNE_SLACK new keys).
      if (this.#entries.size >= MAX_RATE_KEYS + this.#holding + PRUNE_SLACK) this.#computeLevel(now);
      e = { key, inFlight: 0, queued: 0, arrivals: 0, at: now };
      this.#entries.set(key, e);
    }
    e.arrivals = decayed(e.arrivals, now - e.at) + 1;
    e.at = now;
    return e;
  }

  queue(e: KeyEntry, cost: number): void {
    this.#hold(e);
    e.queued += cost;
    this.#held += cost;
    this.#waiting++;
  }

  /** A waiter left the queue (served, refused, aborted). */
  unqueue(e: KeyEntry, cost: number): void {
    e.queued -= cost;
    this.#held -= cost;
    this.#waiting--;
    if (e.inFlight + e.queued === 0) this.#holding--;
  }

  admit(e: KeyEntry, cost: number, now: number): void {
    this.#hold(e);
    e.inFlight += cost;
    this.#held += cost;
    this.#admitted = decayed(this.#admitted, now - this.#admittedAt) + 1;
    this.#admittedAt = now;
  }

  release(e: KeyEntry, cost: number): void {
    e.inFlight -= cost;
    this.#held -= cost;
    if (e.inFlight + e.queued === 0) this.#holding--;
  }

  /**
   * True when a key holding `e` (undefined: nothing) holds fewer places than its fair share: the
   * keyed places shared equally over the keys holding any, its own included.
   */
  underShare(e: KeyEntry | undefined): boolean {
    const places = placesOf(e);
    return places * (this.#holding + (places === 0 ? 1 : 0)) < this.#held;
  }

  /**
   * True when the keys send more than the limiter admits and `e`'s rate is at or under the fair
   * level (see the module comment). False while every key fits, or with one key: then there is
   * nobody to be fair to.
   */
  light(e: KeyEntry, now: number): boolean {
    if (now - this.#levelAt >= LEVEL_EVERY_MS) this.#computeLevel(now);
    const level = this.#level;
    return level !== Number.POSITIVE_INFINITY && decayed(e.arrivals, now - e.at) <= level;
  }

  #hold(e: KeyEntry): void {
    if (e.inFlight + e.queued === 0) this.#holding++;
  }

  /** The level of the rates now, and forgets the keys that need no entry any more. */
  #computeLevel(now: number): void {
    this.#levelAt = now;
    const rates = this.#sorted;
    rates.length = 0;
    let spare = this.#entries.size - MAX_RATE_KEYS;
    for (const e of this.#entries.values()) {
      const r = decayed(e.arrivals, now - e.at);
      if (e.inFlight + e.queued === 0 && (r < NEGLIGIBLE || spare > 0)) {
        this.#entries.delete(e.key);
        spare--;
        continue;
      }
      rates.push(r);
    }
    // Fairness needs two keys.
    if (rates.length < 2) {
      this.#level = Number.POSITIVE_INFINITY;
      return;
    }
    rates.sort((a, b) => a - b);
    this.#level = waterLevel(rates, 0, decayed(this.#admitted, now - this.#admittedAt));
  }
}

/** Places a key holds: in flight and queued. */
export function placesOf(e: KeyEntry | undefined): number {
  return e === undefined ? 0 : e.inFlight + e.queued;
}

/** A count decayed over `ms` with time constant KEY_RATE_MS. */
function decayed(count: number, ms: number): number {
  return ms <= 0 ? count : count * Math.exp(-ms / KEY_RATE_MS);
}
