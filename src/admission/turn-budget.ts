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
 */
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { priorityLevel } from '../limiters/priority.js';
import type { Decision, Priority } from '../limiters/types.js';
import { clockOption, knownKeys, positiveNumber } from '../validate.js';
import { ADMITTED_UNLIMITED } from '../limiters/decisions.js';

export interface TurnBudgetOptions {
  /** How long one event-loop turn may run before normal-priority work is refused, in ms. @default 25 */
  budgetMs?: number;
  /** Retry-After of a refusal, in ms. @default 1000 */
  retryAfterMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Runs `fn` when the current turn ends. @default setImmediate */
  defer?: (fn: () => void) => void;
}

export const TURN_BUDGET_DEFAULTS = Object.freeze({ budgetMs: 25, retryAfterMs: 1000 });

const OPTIONS = ['budgetMs', 'retryAfterMs', 'clock', 'defer'] as const;

const defaultDefer = (fn: () => void): void => {
  setImmediate(fn);
};

export class TurnBudget {
  readonly budgetMs: number;
  readonly #retryAfterMs: number;
  readonly #clock: Clock;
  readonly #defer: (fn: () => void) => void;
  /** When the current turn's first request was seen, or -1 between turns. */
  #turnStart = -1;
  #refused = 0;
  readonly #endTurn = (): void => {
    this.#turnStart = -1;
  };

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
  }

  /** Requests refused since construction. */
  get refused(): number {
    return this.#refused;
  }

  /** Admits while the current turn has run at most this priority's share of the budget. */
  admit(options?: { priority?: Priority; cost?: number }): Decision {
    const now = this.#clock.now();
    if (this.#turnStart < 0) {
      this.#turnStart = now;
      this.#defer(this.#endTurn);
      return ADMITTED_UNLIMITED;
    }
    const elapsed = now - this.#turnStart;
    const priority = options?.priority;
    const budget =
      priority === undefined || priority === 'normal'
        ? this.budgetMs
        : this.budgetMs * 2 ** (2 * priorityLevel(priority) - 1);
    if (elapsed <= budget) return ADMITTED_UNLIMITED;
    this.#refused++;
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
}
