/**
 * The pools of a policy: one ConcurrencyLimiter per name, created once and changed in place by a
 * reload (`update`), so that the pool guards and HTTP guards that share it keep their permits and
 * their waiters.
 */
import type { Clock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import { CONCURRENCY_DEFAULTS, type ConcurrencyLimiterUpdate } from '../limiters/concurrency/options.js';
import type { Policy, PoolPolicy } from './schema.js';

/** A pool's settings, with the library's defaults for those the file leaves out. */
function settingsOf(p: PoolPolicy): Required<ConcurrencyLimiterUpdate> {
  return {
    limit: p.limit,
    maxQueue: p.maxQueue ?? CONCURRENCY_DEFAULTS.maxQueue,
    maxWaitMs: p.maxWaitMs ?? CONCURRENCY_DEFAULTS.maxWaitMs,
  };
}

export class PolicyPools {
  readonly #clock: Clock;
  readonly #pools = new Map<string, ConcurrencyLimiter>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /**
   * Takes the pools of `policy` (validated): a new name gets a limiter, a known one is updated in
   * place, one the policy no longer names is closed (its waiters refused `closed`, its permits
   * still released).
   */
  apply(pools: Policy['pools']): void {
    for (const [name, p] of Object.entries(pools)) {
      const held = this.#pools.get(name);
      if (held === undefined)
        this.#pools.set(name, new ConcurrencyLimiter({ ...settingsOf(p), clock: this.#clock }));
      else held.update(settingsOf(p));
    }
    for (const [name, l] of this.#pools)
      if (!(name in pools)) {
        l.close();
        this.#pools.delete(name);
      }
  }

  /** The limiter of that pool. Throws a ConfigError naming the known ones. */
  get(name: string): ConcurrencyLimiter {
    const l = this.#pools.get(name);
    if (l !== undefined) return l;
    throw new ConfigError(
      'pool',
      name,
      `a pool of the policy (${[...this.#pools.keys()].join(', ') || 'none'})`,
    );
  }

  close(): void {
    for (const l of this.#pools.values()) l.close();
  }
}
