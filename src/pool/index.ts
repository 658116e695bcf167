/**
 * `spillway/pool`: bounded in-flight work and bounded queue time in front of a resource pool.
 * node-postgres and generic-pool are optional peer dependencies; nothing here imports them.
 * Nothing but exports.
 */
export { isPoolOverloadedError, PoolOverloadedError } from '../errors.js';
export { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
export type {
  ConcurrencyLimiterOptions,
  ConcurrencyLimiterUpdate,
} from '../limiters/concurrency/options.js';
export type { ConcurrencyAcquireOptions } from '../limiters/concurrency/types.js';
export { type GenericPoolLike, type GuardedGenericPool, guardGenericPool } from './generic-pool.js';
export {
  type GuardedPool,
  type GuardPoolOptions,
  guardPool,
  type Lease,
  type PoolGuardOptions,
} from './guard.js';
export { type GuardedPgPool, guardPgPool, type PgClientLike, type PgPoolLike } from './pg.js';
