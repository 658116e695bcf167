/**
 * `createRedisStore`: per-key token buckets in Redis, shared by every instance of a fleet.
 *
 * One round trip per decision (the token-bucket script by SHA, its source on NOSCRIPT), a short
 * command timeout, a circuit breaker, and a failure policy the user chooses. A call never rejects
 * and never waits longer than `timeoutMs`: failures are events (`error`, `state`) and counters
 * (`stats()`), and the decision comes from the policy.
 */
import { EventEmitter } from 'eventemitter3';
import { type Clock, systemClock } from '../../clock.js';
import { ConfigError } from '../../errors.js';
import { integer, knownKeys, oneOf, positiveNumber } from '../../validate.js';
import type { Store, StoreDecision, StoreTakeRequest } from '../types.js';
import { type BreakerState, CircuitBreaker } from './breaker.js';
import { adaptClient, type RedisClient, type RedisClientKind, type ScriptClient } from './client.js';
import { isNoScript, RedisStoreError } from './errors.js';
import { LocalBuckets } from './local-buckets.js';
import { type ScriptOp, TOKEN_BUCKET_SCRIPT, TOKEN_BUCKET_SHA } from './script.js';

/** What decisions are made of while Redis does not answer. */
export type RedisFailurePolicy = 'open' | 'closed' | 'local';

export interface RedisStoreOptions {
  /** Your connected client: ioredis or iovalkey (`Redis` or `Cluster`), node-redis v5 (client or cluster). */
  readonly client: RedisClient;
  /** Prepended to every key; no `{` or `}` (the store adds the hash tag). @default 'spillway:' */
  readonly prefix?: string;
  /**
   * While Redis does not answer: `'open'` admits, `'closed'` refuses (retry after the next probe),
   * `'local'` decides with an in-process bucket whose rate and burst are divided by
   * `expectedInstances`. @default 'open'
   */
  readonly onError?: RedisFailurePolicy;
  /** Instances sharing the limits; required with `onError: 'local'`. An integer >= 1. */
  readonly expectedInstances?: number;
  /** The longest a decision waits for Redis before the policy decides, in ms. @default 100 */
  readonly timeoutMs?: number;
  /** Failures in a row that open the circuit (calls skip Redis). @default 3 */
  readonly failureThreshold?: number;
  /** How long the circuit stays open before one decision probes Redis again, in ms. @default 1000 */
  readonly openMs?: number;
  /** Keys the `'local'` policy keeps at most (least recently used go first). @default 10000 */
  readonly localMaxKeys?: number;
  /** Time for the timeout and the breaker (Redis's `TIME` is the bucket clock). @default systemClock */
  readonly clock?: Clock;
}

export interface RedisStoreErrorEvent {
  /** The store call that failed. */
  readonly op: 'take' | 'peek' | 'refund' | 'reset';
  readonly key: string;
  readonly error: RedisStoreError;
}

export interface RedisStoreEvents {
  /** A call did not get its answer from Redis; the failure policy answered it. */
  error: (event: RedisStoreErrorEvent) => void;
  /** The circuit changed state. */
  state: (event: { from: BreakerState['kind']; to: BreakerState['kind'] }) => void;
  /** Redis did not know the script (restart, failover, SCRIPT FLUSH); it was sent again by source. */
  scriptLoad: (event: { key: string }) => void;
}

/** Counters since the store was created. */
export interface RedisStoreStats {
  /** Decisions (take and peek) answered by Redis. */
  readonly redisDecisions: number;
  /** Decisions answered by the failure policy. */
  readonly fallbackDecisions: number;
  /** Calls that failed (timeouts included). */
  readonly errors: number;
  readonly timeouts: number;
  /** Times the script was sent by source after NOSCRIPT. */
  readonly scriptLoads: number;
  /** Times the circuit opened. */
  readonly breakerOpens: number;
  readonly state: BreakerState['kind'];
}

const OPTION_NAMES = [
  'client',
  'prefix',
  'onError',
  'expectedInstances',
  'timeoutMs',
  'failureThreshold',
  'openMs',
  'localMaxKeys',
  'clock',
] as const;

const OP_NAMES = { t: 'take', p: 'peek', r: 'refund' } as const;

export class RedisStore extends EventEmitter<RedisStoreEvents> implements Store {
  /** Which client the store detected. */
  readonly clientKind: RedisClientKind;
  readonly #client: ScriptClient;
  readonly #prefix: string;
  readonly #policy: RedisFailurePolicy;
  readonly #instances: number;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  readonly #breaker: CircuitBreaker;
  readonly #local: LocalBuckets;
  #closed = false;
  #redisDecisions = 0;
  #fallbackDecisions = 0;
  #errors = 0;
  #timeouts = 0;
  #scriptLoads = 0;
  #breakerOpens = 0;

  constructor(options: RedisStoreOptions) {
    super();
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object with at least `client`');
    }
    knownKeys('createRedisStore', options, OPTION_NAMES);
    this.#client = adaptClient(options.client);
    this.clientKind = this.#client.kind;
    const prefix = options.prefix ?? 'spillway:';
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
      throw new ConfigError('prefix', prefix, 'a string without `{` or `}` (the store adds the hash tag)');
    }
    this.#prefix = prefix;
    this.#policy = oneOf('onError', options.onError ?? 'open', ['open', 'closed', 'local'] as const);
    if (this.#policy === 'local' && options.expectedInstances === undefined) {
      throw new ConfigError(
        'expectedInstances',
        undefined,
        "an integer >= 1 when `onError` is 'local' (the local limit is the shared one divided by it)",
      );
    }
    this.#instances = integer('expectedInstances', options.expectedInstances ?? 1, 1);
    this.#timeoutMs = positiveNumber('timeoutMs', options.timeoutMs ?? 100);
    this.#clock = options.clock ?? systemClock;
    this.#breaker = new CircuitBreaker(
      this.#clock,
      {
        failureThreshold: integer('failureThreshold', options.failureThreshold ?? 3, 1),
        openMs: positiveNumber('openMs', options.openMs ?? 1000),
      },
      (from, to) => {
        if (to === 'open') this.#breakerOpens++;
        this.emit('state', { from, to });
      },
    );
    this.#local = new LocalBuckets(this.#clock, integer('localMaxKeys', options.localMaxKeys ?? 10_000, 1));
  }

  /** The Redis key that holds `key`'s bucket: the prefix, then the key as a hash tag. */
  redisKey(key: string): string {
    return `${this.#prefix}{${key}}`;
  }

  take(request: StoreTakeRequest): Promise<StoreDecision> {
    return this.#decide('t', request);
  }

  peek(request: StoreTakeRequest): Promise<StoreDecision> {
    return this.#decide('p', request);
  }

  async refund(request: StoreTakeRequest): Promise<void> {
    await this.#decide('r', request);
  }

  async reset(key: string): Promise<void> {
    this.#local.reset(key);
    if (this.#closed) return;
    const verdict = this.#breaker.verdict();
    if (verdict === 'refuse' || !this.#client.connected()) {
      this.#failed(
        'reset',
        key,
        new RedisStoreError('unavailable', 'Redis is unavailable; the key was not reset'),
      );
      return;
    }
    try {
      await this.#withTimeout(this.#client.del(this.redisKey(key)));
      this.#breaker.success();
    } catch (err) {
      this.#failed('reset', key, asStoreError(err));
    }
  }

  /** Stops using Redis (the client stays open: it is yours). Later calls get the failure policy. */
  close(): void {
    this.#closed = true;
    this.#local.clear();
  }

  stats(): RedisStoreStats {
    return {
      redisDecisions: this.#redisDecisions,
      fallbackDecisions: this.#fallbackDecisions,
      errors: this.#errors,
      timeouts: this.#timeouts,
      scriptLoads: this.#scriptLoads,
      breakerOpens: this.#breakerOpens,
      state: this.#breaker.state.kind,
    };
  }

  #decide(op: ScriptOp, request: StoreTakeRequest): Promise<StoreDecision> {
    if (this.#closed) return Promise.resolve(this.#fallback(op, request));
    if (this.#breaker.verdict() === 'refuse') return Promise.resolve(this.#fallback(op, request));
    const key = this.redisKey(request.key);
    if (!this.#client.connected()) {
      this.#failed(
        OP_NAMES[op],
        request.key,
        new RedisStoreError('unavailable', 'The Redis client is not connected'),
      );
      return Promise.resolve(this.#fallback(op, request));
    }
    const factor = Math.min(1, Math.max(0, request.factor));
    const args = [
      op,
      String(request.cost),
      String(request.limits.ratePerSec),
      String(request.limits.burst),
      String(factor),
    ];
    return this.#withTimeout(this.#run(key, args))
      .then(parseReply)
      .then(
        (decision) => {
          this.#breaker.success();
          if (op !== 'r') this.#redisDecisions++;
          return decision;
        },
        (err: unknown) => {
          this.#failed(OP_NAMES[op], request.key, asStoreError(err));
          return this.#fallback(op, request);
        },
      );
  }

  #run(key: string, args: readonly string[]): Promise<unknown> {
    let sent: Promise<unknown>;
    try {
      sent = this.#client.evalsha(TOKEN_BUCKET_SHA, key, args);
    } catch (err) {
      return Promise.reject(err);
    }
    return sent.catch((err: unknown) => {
      if (!isNoScript(err)) throw err;
      // EVAL runs the script and caches it on the node that owns the key, so the next EVALSHA
      // finds it: this reloads per node on a Cluster, where SCRIPT LOAD would go to one node.
      this.#scriptLoads++;
      this.emit('scriptLoad', { key });
      return this.#client.eval(TOKEN_BUCKET_SCRIPT, key, args);
    });
  }

  #withTimeout<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = this.#clock.setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(new RedisStoreError('timeout', `Redis did not answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      promise.then(
        (value) => {
          if (settled) return;
          settled = true;
          timer.cancel();
          resolve(value);
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          timer.cancel();
          reject(err);
        },
      );
    });
  }

  #failed(op: RedisStoreErrorEvent['op'], key: string, error: RedisStoreError): void {
    this.#errors++;
    if (error.kind === 'timeout') this.#timeouts++;
    this.#breaker.failure();
    this.emit('error', { op, key, error });
  }

  #fallback(op: ScriptOp, request: StoreTakeRequest): StoreDecision {
    if (op !== 'r') this.#fallbackDecisions++;
    const factor = Math.min(1, Math.max(0, request.factor));
    const { ratePerSec, burst } = request.limits;
    switch (this.#policy) {
      case 'local':
        return this.#local.decide(
          op,
          request.key,
          request.cost,
          ratePerSec / this.#instances,
          burst / this.#instances,
          factor,
        );
      case 'open':
        return { allowed: true, remaining: burst * factor, retryAfterMs: 0, resetMs: 0 };
      case 'closed': {
        const wait = Math.max(1, this.#breaker.msUntilProbe());
        return { allowed: op === 'r', remaining: 0, retryAfterMs: op === 'r' ? 0 : wait, resetMs: wait };
      }
    }
  }
}

function asStoreError(err: unknown): RedisStoreError {
  if (err instanceof RedisStoreError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // A reply means Redis is there but refused the command (CLUSTERDOWN, LOADING, READONLY...).
  const name = err instanceof Error ? err.name : '';
  const kind =
    name === 'ReplyError' || name === 'ErrorReply' || name === 'SimpleError' ? 'reply' : 'unavailable';
  return new RedisStoreError(kind, message, { cause: err });
}

function toNumber(v: unknown): number {
  const n = Number(v);
  return n < 0 ? Infinity : n;
}

function parseReply(reply: unknown): StoreDecision {
  if (!Array.isArray(reply) || reply.length !== 4) {
    throw new RedisStoreError('reply', `Unexpected reply from the token-bucket script: ${String(reply)}`);
  }
  return {
    allowed: Number(reply[0]) === 1,
    remaining: Number(reply[1]),
    retryAfterMs: toNumber(reply[2]),
    resetMs: toNumber(reply[3]),
  };
}

/** A Redis-backed `Store`. Validates its options (a ConfigError names the one at fault). */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
