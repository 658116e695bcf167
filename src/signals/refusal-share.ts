/**
 * Refusal share: the fraction of the work offered to the fast admission stages (the loop-turn
 * budget, the shedder, a concurrency stage) that they refused, over a sliding window. It is how the
 * fast inner loop tells the slow outer one that it is busy: while the fast stages keep refusing,
 * this is pressure, the governor's factor falls and the per-key quotas it scales shrink (heavy keys
 * are refused by their quota instead of everyone by the fast stages); when the refusals stop, the
 * pressure goes and the factor returns.
 *
 * Whoever decides admission calls `record('admitted')` or `record('refused')` for each request (the
 * HTTP guard does it for its own stages). Count only the stages whose refusals say "the process is
 * full", not a client's own quota (429): a quota refusal is the factor's own doing, and feeding it
 * back would cut further for every cut already made.
 *
 * The window is `windowMs`, kept as 10 slots, so a reading forgets a burst of refusals within
 * `windowMs` (and no sooner than 0.9·windowMs). With fewer than `minOffered` requests in the window
 * the reading is 0: two refusals out of three requests are not evidence of overload.
 */
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { clockOption, finiteNumber, integer, knownKeys } from '../validate.js';
import { failureMode, optionsObject, targetAndLimit } from './common.js';
import type { Signal, SignalFailureMode } from './types.js';

export interface RefusalShareOptions {
  /** The signal's name in records and metrics. @default 'refusal-share' */
  name?: string;
  /** The share where pressure starts, from 0 to 1. @default 0.05 */
  target?: number;
  /** The share where pressure reaches 1, from 0 to 1, greater than `target`. @default 0.3 */
  limit?: number;
  /** The span of the sliding window, in ms (from 100 to 600000). @default 2000 */
  windowMs?: number;
  /** Requests the window must hold before the share counts (fewer reads 0), an integer >= 1. @default 20 */
  minOffered?: number;
  /** The clock `record` reads; give the governor's. @default systemClock */
  clock?: Clock;
  /** @default 'ignore' */
  onFailure?: SignalFailureMode;
}

/** The outcome of one admission decision at the stages the share watches. */
export type AdmissionOutcome = 'admitted' | 'refused';

/** A Signal that is also fed: `record(outcome)` for every request the watched stages decide. */
export interface RefusalShareSignal extends Signal {
  /** Counts `count` requests (default 1) with this outcome, at the clock's now. */
  record(outcome: AdmissionOutcome, count?: number): void;
  /** The admitted and refused counts within the window ending at `nowMs` (default: the clock's now). */
  counts(nowMs?: number): { readonly admitted: number; readonly refused: number };
}

export const REFUSAL_SHARE_DEFAULTS = Object.freeze({
  name: 'refusal-share',
  target: 0.05,
  limit: 0.3,
  windowMs: 2000,
  minOffered: 20,
});

const OPTIONS = ['name', 'target', 'limit', 'windowMs', 'minOffered', 'clock', 'onFailure'] as const;
const SLOTS = 10;
const NAME = /^[a-z0-9][a-z0-9_.:-]*$/i;

/** The share of requests the fast stages refused over the last `windowMs`, from 0 to 1. Unit `ratio`. */
export function refusalShare(options?: RefusalShareOptions): RefusalShareSignal {
  const o = optionsObject('refusalShare', options);
  knownKeys('refusalShare', o, OPTIONS);
  const d = REFUSAL_SHARE_DEFAULTS;
  const name = o.name ?? d.name;
  if (typeof name !== 'string' || !NAME.test(name) || name.length > 64) {
    throw new ConfigError('name', name, 'a string of 1 to 64 letters, digits, `-`, `_`, `.` or `:`');
  }
  const { target, limit } = targetAndLimit('target', o.target ?? d.target, 'limit', o.limit ?? d.limit, 0, 1);
  const windowMs = finiteNumber('windowMs', o.windowMs ?? d.windowMs, 100, 600_000);
  const minOffered = integer('minOffered', o.minOffered ?? d.minOffered, 1, 1_000_000_000);
  const clock = clockOption('clock', o.clock, systemClock, false);
  const onFailure = failureMode('onFailure', o.onFailure, 'ignore');

  const slotMs = windowMs / SLOTS;
  // Slot i holds the counts of absolute slot number ids[i] (time / slotMs); a stale id is empty.
  const ids = new Float64Array(SLOTS).fill(-1);
  const admitted = new Float64Array(SLOTS);
  const refused = new Float64Array(SLOTS);

  const slotFor = (nowMs: number): number => {
    const id = Math.floor(nowMs / slotMs);
    const i = ((id % SLOTS) + SLOTS) % SLOTS;
    if (ids[i] !== id) {
      ids[i] = id;
      admitted[i] = 0;
      refused[i] = 0;
    }
    return i;
  };

  const counts = (nowMs: number = clock.now()) => {
    const newest = Math.floor(nowMs / slotMs);
    let a = 0;
    let r = 0;
    for (let i = 0; i < SLOTS; i++) {
      const id = ids[i]!;
      if (id > newest - SLOTS && id <= newest) {
        a += admitted[i]!;
        r += refused[i]!;
      }
    }
    return { admitted: a, refused: r };
  };

  return {
    name,
    unit: 'ratio',
    target,
    limit,
    onFailure,
    record(outcome: AdmissionOutcome, count = 1): void {
      if (typeof count !== 'number' || !(count > 0) || !Number.isFinite(count)) {
        throw new ConfigError('count', count, 'a finite number > 0');
      }
      const i = slotFor(clock.now());
      if (outcome === 'refused') refused[i]! += count;
      else if (outcome === 'admitted') admitted[i]! += count;
      else throw new ConfigError('outcome', outcome, "'admitted' or 'refused'");
    },
    counts,
    sample(nowMs: number): number {
      const c = counts(nowMs);
      const total = c.admitted + c.refused;
      return total < minOffered ? 0 : c.refused / total;
    },
  };
}
