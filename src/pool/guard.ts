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
  ConcurrencyRefusal,
} from '../limiters/concurrency/types.js';
import type { Priority } from '../limiters/types.js';
import { DECISION_CHANNEL, type DecisionMessage, type DecisionOutcome } from '../observability/channels.js';

const decisions = channel(DECISION_CHANNEL);

export interface PoolGuardOptions extends ConcurrencyLimiterOptions {
  /** A name for errors and DECISION_CHANNEL messages (`route` is `pool:<name>`). @default 'default' */
  name?: string;
  /**
   * A ConcurrencyLimiter to take permits from instead of creating one (a policy's
   * `runtime.pool(name)`, or one an HTTP guard's `concurrency` shares): then no other limiter
   * option. The guard does not own it: `close()` refuses this guard's waiters and later acquires,
   * and the limiter stays open for the others. @default a new limiter from the options
   */
  limiter?: ConcurrencyLimiter;
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

/**
 * The limiter of a pool guard and how the guard takes its permits: its own limiter (from the
 * options; `close()` closes it), or one it was given (`limiter`; `close()` refuses this guard's
 * waiters and later acquires and leaves the limiter open). Internal.
 */
export class PoolGate {
  readonly name: string;
  readonly limiter: ConcurrencyLimiter;
  readonly #owned: boolean;
  #closed = false;
  /** Waits on a shared limiter, to refuse them when this guard closes. */
  readonly #waits = new Set<AbortController>();

  /** Throws ConfigError on a bad option. `defaults` apply to a limiter the gate creates. */
  constructor(options: PoolGuardOptions, defaults: ConcurrencyLimiterOptions = {}) {
    const { name = 'default', limiter, ...rest } = options;
    if (typeof name !== 'string' || name.length === 0 || name.length > 64) {
      throw new ConfigError('name', name, 'a string of 1 to 64 characters');
    }
    this.name = name;
    if (limiter !== undefined) {
      if (!(limiter instanceof ConcurrencyLimiter))
        throw new ConfigError('limiter', limiter, 'a ConcurrencyLimiter of this package');
      const other = Object.keys(rest).find((k) => (rest as Record<string, unknown>)[k] !== undefined);
      if (other !== undefined)
        throw new ConfigError(
          other,
          (rest as Record<string, unknown>)[other],
          'absent when `limiter` is given',
        );
      this.limiter = limiter;
      this.#owned = false;
      return;
    }
    const merged: ConcurrencyLimiterOptions = { ...defaults, ...rest };
    if (rest.adaptive !== undefined && rest.limit === undefined) delete merged.limit;
    this.limiter = new ConcurrencyLimiter(merged);
    this.#owned = true;
  }

  /** Waits for a permit; publishes the decision; throws the typed error on refusal. */
  async admit(options: ConcurrencyAcquireOptions | undefined): Promise<ConcurrencyPermit> {
    const { name, limiter } = this;
    const priority = options?.priority ?? 'normal';
    if (this.#owned) return settle(name, limiter, options, await limiter.acquire(options ?? {}));
    if (this.#closed) return settle(name, limiter, options, refusedClosed(limiter, priority));
    // A shared limiter: this guard's own abort, so that close() ends its waits (and only its).
    const ac = new AbortController();
    const user = options?.signal;
    const onAbort = () => ac.abort(user?.reason);
    if (user?.aborted) ac.abort(user.reason);
    else user?.addEventListener('abort', onAbort, { once: true });
    this.#waits.add(ac);
    let d: ConcurrencyDecision;
    try {
      d = await limiter.acquire({ ...options, signal: ac.signal });
    } finally {
      this.#waits.delete(ac);
      user?.removeEventListener('abort', onAbort);
    }
    if (!d.allowed && d.reason === 'aborted' && user?.aborted !== true) d = { ...d, reason: 'closed' };
    return settle(name, limiter, options, d);
  }

  close(): void {
    if (this.#owned) {
      this.limiter.close();
      return;
    }
    this.#closed = true;
    for (const ac of this.#waits) ac.abort();
    this.#waits.clear();
  }
}

function refusedClosed(limiter: ConcurrencyLimiter, priority: Priority): ConcurrencyRefusal {
  return {
    allowed: false,
    reason: 'closed',
    retryAfterMs: 1,
    waitedMs: 0,
    limit: limiter.limitFor(priority),
    factor: limiter.factor,
    priority,
  };
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

/** Publishes the decision; returns the permit, or throws the typed error for a refusal. */
function settle(
  name: string,
  limiter: ConcurrencyLimiter,
  options: ConcurrencyAcquireOptions | undefined,
  d: ConcurrencyDecision,
): ConcurrencyPermit {
  const priority = options?.priority ?? 'normal';
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
  const gate = new PoolGate(rest);

  const lease = async (opts?: ConcurrencyAcquireOptions): Promise<Lease<R>> => {
    const permit = await gate.admit(opts);
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
    limiter: gate.limiter,
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
    close: () => gate.close(),
  };
}
