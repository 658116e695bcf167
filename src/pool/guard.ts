/**
 * `guardPool`: a concurrency limiter in front of any resource pool. At most `limit` resources are
 * held through the guard (a fixed limit, or one learned from hold times), the rest wait in the
 * limiter's bounded, priority-ordered queue with a deadline, CoDel and adaptive LIFO; a refusal is
 * a `PoolOverloadedError` with the reason and `retryAfterMs`, an abort an `AbortError`. Every lease
 * gives its slot back exactly once, whatever the caller does.
 */
import { channel } from 'node:diagnostics_channel';
import { AbortError, ConfigError, PoolOverloadedError } from '../errors.js';
import { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import type { ConcurrencyLimiterOptions } from '../limiters/concurrency/options.js';
import type {
  ConcurrencyAcquireOptions,
  ConcurrencyDecision,
  ConcurrencyPermit,
} from '../limiters/concurrency/types.js';
import type { Priority } from '../limiters/types.js';
import { DECISION_CHANNEL, type DecisionMessage, type DecisionOutcome } from '../observability/channels.js';

const decisions = channel(DECISION_CHANNEL);

export interface PoolGuardOptions extends ConcurrencyLimiterOptions {
  /** A name for errors and DECISION_CHANNEL messages (`route` is `pool:<name>`). @default 'default' */
  name?: string;
}

export interface GuardPoolOptions<R> extends PoolGuardOptions {
  /** Takes a resource from the pool. */
  acquire: () => Promise<R>;
  /** Gives it back; `err` is the error the work failed with, if any. */
  release: (resource: R, err?: unknown) => unknown;
}

/** A resource held through the guard. */
export interface Lease<R> {
  readonly resource: R;
  /** Time spent waiting for a slot, in ms. */
  readonly waitedMs: number;
  /** Gives the resource back to the pool and the slot to the guard. Idempotent. */
  release(err?: unknown): void;
}

export interface GuardedPool<R> {
  readonly limiter: ConcurrencyLimiter;
  /** Waits for a slot, then takes a resource. Rejects with PoolOverloadedError or AbortError. */
  acquire(options?: ConcurrencyAcquireOptions): Promise<Lease<R>>;
  /** Runs `work` with a resource and gives it back, with the error if `work` throws. */
  use<T>(work: (resource: R) => Promise<T> | T, options?: ConcurrencyAcquireOptions): Promise<T>;
  /** Refuses every waiter and every later acquire (`closed`); leases out stay valid. */
  close(): void;
}

/** Creates the limiter of a pool guard, or throws ConfigError. Internal. */
export function poolLimiter(
  options: PoolGuardOptions,
  defaults: ConcurrencyLimiterOptions = {},
): {
  name: string;
  limiter: ConcurrencyLimiter;
} {
  const { name = 'default', ...rest } = options;
  if (typeof name !== 'string' || name.length === 0 || name.length > 64) {
    throw new ConfigError('name', name, 'a string of 1 to 64 characters');
  }
  const merged: ConcurrencyLimiterOptions = { ...defaults, ...rest };
  if (rest.adaptive !== undefined && rest.limit === undefined) delete merged.limit;
  return { name, limiter: new ConcurrencyLimiter(merged) };
}

function publish(
  name: string,
  outcome: DecisionOutcome,
  d: ConcurrencyDecision | undefined,
  priority: Priority,
  limiter: ConcurrencyLimiter,
): void {
  if (!decisions.hasSubscribers) return;
  const message: DecisionMessage = {
    name,
    outcome,
    stage: 'concurrency',
    reason: d?.reason ?? 'queued',
    priority,
    route: `pool:${name}`,
    factor: d?.factor ?? limiter.factor,
    limit: d?.limit ?? limiter.limitFor(priority),
    retryAfterMs: d?.retryAfterMs ?? 0,
    ...(d !== undefined && d.waitedMs > 0 ? { queueWaitMs: d.waitedMs } : {}),
  };
  decisions.publish(message);
}

function outcomeOf(d: ConcurrencyDecision): DecisionOutcome {
  if (d.allowed) return 'admitted';
  if (d.reason === 'aborted' || d.reason === 'closed') return 'canceled';
  if (d.reason === 'deadline' && d.waitedMs > 0) return 'timed_out';
  return 'shed';
}

/** Waits for a permit of `limiter`; publishes the decision; throws the typed error on refusal. Internal. */
export async function admit(
  name: string,
  limiter: ConcurrencyLimiter,
  options: ConcurrencyAcquireOptions | undefined,
): Promise<ConcurrencyPermit> {
  const priority = options?.priority ?? 'normal';
  const d = await limiter.acquire(options ?? {});
  if (d.waitedMs > 0 && decisions.hasSubscribers) publish(name, 'queued', undefined, priority, limiter);
  publish(name, outcomeOf(d), d, priority, limiter);
  if (d.allowed) return d;
  if (d.reason === 'aborted') throw new AbortError(options?.signal?.reason);
  throw new PoolOverloadedError(d.reason, d.retryAfterMs, d.waitedMs, name);
}

/** Guards any resource pool given its `acquire` and `release` functions. */
export function guardPool<R>(options: GuardPoolOptions<R>): GuardedPool<R> {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', options, 'an object');
  const { acquire, release, ...rest } = options;
  if (typeof acquire !== 'function')
    throw new ConfigError('acquire', acquire, 'a function returning a Promise');
  if (typeof release !== 'function') throw new ConfigError('release', release, 'a function');
  const { name, limiter } = poolLimiter(rest);

  const lease = async (opts?: ConcurrencyAcquireOptions): Promise<Lease<R>> => {
    const permit = await admit(name, limiter, opts);
    let resource: R;
    try {
      resource = await acquire();
    } catch (err) {
      // The pool failed to hand out a resource: the slot goes back, without a latency sample.
      permit.release({ sample: false });
      throw err;
    }
    let done = false;
    return {
      resource,
      waitedMs: permit.waitedMs,
      release(err?: unknown) {
        if (done) return;
        done = true;
        try {
          release(resource, err);
        } finally {
          permit.release();
        }
      },
    };
  };

  return {
    limiter,
    acquire: lease,
    async use<T>(work: (resource: R) => Promise<T> | T, opts?: ConcurrencyAcquireOptions): Promise<T> {
      const l = await lease(opts);
      try {
        const out = await work(l.resource);
        l.release();
        return out;
      } catch (err) {
        l.release(err);
        throw err;
      }
    },
    close: () => limiter.close(),
  };
}
