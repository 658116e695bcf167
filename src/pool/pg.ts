/**
 * `guardPgPool`: a node-postgres `pg.Pool` behind a concurrency limiter. `query()` holds a slot for
 * the query; `connect()` holds it until the client's `release()` (with or without an error), which
 * frees the slot exactly once. Imports nothing from `pg`: the pool is typed structurally.
 */
import { ConfigError } from '../errors.js';
import type { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import type { ConcurrencyAcquireOptions } from '../limiters/concurrency/types.js';
import { type PoolGuardOptions, PoolGate } from './guard.js';

/** The part of a `pg.PoolClient` the guard uses. */
export interface PgClientLike {
  release(err?: Error | boolean): void;
}

/** The part of a `pg.Pool` the guard uses. */
export interface PgPoolLike<C extends PgClientLike = PgClientLike> {
  connect(): Promise<C>;
  // biome-ignore lint/suspicious/noExplicitAny: pg's query overloads take and return many shapes.
  query(...args: any[]): any;
  readonly options?: { readonly max?: number };
}

export interface GuardedPgPool<C extends PgClientLike> {
  readonly limiter: ConcurrencyLimiter;
  /** `pool.query(text, values)` within a slot; `admission` (priority, deadline, signal) is optional. */
  query<T = unknown>(text: unknown, values?: unknown, admission?: ConcurrencyAcquireOptions): Promise<T>;
  /** `pool.connect()` within a slot: the client's `release()` frees it. */
  connect(admission?: ConcurrencyAcquireOptions): Promise<C>;
  close(): void;
}

/**
 * Guards `pool`. Without `limit`, `adaptive` or `limiter`, the limit is the pool's `max`
 * (node-postgres defaults it to 10); give `adaptive: {}` to learn it from latency instead.
 */
export function guardPgPool<C extends PgClientLike>(
  pool: PgPoolLike<C>,
  options: PoolGuardOptions = {},
): GuardedPgPool<C> {
  if (
    typeof pool !== 'object' ||
    pool === null ||
    typeof pool.connect !== 'function' ||
    typeof pool.query !== 'function'
  ) {
    throw new ConfigError('pool', pool, 'a pg.Pool (connect, query)');
  }
  const max = pool.options?.max ?? 10;
  const gate = new PoolGate(options, options.adaptive === undefined ? { limit: max } : {});
  return {
    limiter: gate.limiter,
    async query<T>(text: unknown, values?: unknown, admission?: ConcurrencyAcquireOptions): Promise<T> {
      const permit = await gate.admit(admission);
      try {
        return (await (values === undefined ? pool.query(text) : pool.query(text, values))) as T;
      } finally {
        permit.release();
      }
    },
    async connect(admission?: ConcurrencyAcquireOptions): Promise<C> {
      const permit = await gate.admit(admission);
      let client: C;
      try {
        client = await pool.connect();
      } catch (err) {
        permit.release({ sample: false });
        throw err;
      }
      // pg-pool gives each checkout its own `release`; wrap this checkout's.
      const original = client.release;
      client.release = function release(this: C, err?: Error | boolean) {
        permit.release();
        client.release = original;
        return original.call(client, err);
      };
      return client;
    },
    close: () => gate.close(),
  };
}
