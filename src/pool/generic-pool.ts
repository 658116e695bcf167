/**
 * `guardGenericPool`: a generic-pool `Pool` behind a concurrency limiter. Imports nothing from
 * `generic-pool`: the pool is typed structurally.
 */
import { ConfigError } from '../errors.js';
import type { ConcurrencyAcquireOptions } from '../limiters/concurrency/types.js';
import { type GuardedPool, guardPool, type PoolGuardOptions } from './guard.js';

/** The part of a generic-pool `Pool` the guard uses. */
export interface GenericPoolLike<R> {
  acquire(priority?: number): PromiseLike<R>;
  release(resource: R): PromiseLike<void>;
  destroy(resource: R): PromiseLike<void>;
  readonly max?: number;
}

export interface GuardedGenericPool<R> extends GuardedPool<R> {
  /** Takes a resource within a slot; give it back with `release` or `destroy` of this guard. */
  take(options?: ConcurrencyAcquireOptions): Promise<R>;
  release(resource: R): void;
  /** Destroys the resource (a broken connection) and frees the slot. */
  destroy(resource: R): void;
}

/**
 * Guards `pool`. A lease released with an error destroys the resource instead of returning it.
 * Without `limit`, `adaptive` or `limiter`, the limit is the pool's `max`.
 */
export function guardGenericPool<R>(
  pool: GenericPoolLike<R>,
  options: PoolGuardOptions = {},
): GuardedGenericPool<R> {
  if (
    typeof pool !== 'object' ||
    pool === null ||
    typeof pool.acquire !== 'function' ||
    typeof pool.release !== 'function'
  ) {
    throw new ConfigError('pool', pool, 'a generic-pool Pool (acquire, release, destroy)');
  }
  const defaults =
    options.limit === undefined &&
    options.adaptive === undefined &&
    options.limiter === undefined &&
    pool.max !== undefined
      ? { limit: pool.max }
      : {};
  const guarded = guardPool<R>({
    ...defaults,
    ...options,
    acquire: () => Promise.resolve(pool.acquire()),
    release: (r, err) => (err === undefined ? pool.release(r) : pool.destroy(r)),
  });
  const leases = new Map<R, { release(err?: unknown): void }>();
  return {
    ...guarded,
    async take(opts?: ConcurrencyAcquireOptions): Promise<R> {
      const lease = await guarded.acquire(opts);
      leases.set(lease.resource, lease);
      return lease.resource;
    },
    release(resource: R): void {
      const lease = leases.get(resource);
      if (lease === undefined) return;
      leases.delete(resource);
      lease.release();
    },
    destroy(resource: R): void {
      const lease = leases.get(resource);
      if (lease === undefined) return;
      leases.delete(resource);
      lease.release(new Error('destroyed'));
    },
  };
}
