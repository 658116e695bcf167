/**
 * `createRedisStore`: per-key token buckets in Redis, shared by every instance of a fleet.
 *
 * One round trip per decision (the token-bucket script by SHA, its source on NOSCRIPT), a short
 * command timeout, a circuit breaker, and a failure policy the user chooses. A call never rejects
 * and never waits longer than `timeoutMs`: failures are events (`error`, `state`) and counters
 * (`stats()`), and the decision comes from the policy.
 */
import { channel } from 'node:diagnostics_channel';
import { EventEmitter } from 'eventemitter3';
import { type Clock, systemClock } from '../../clock.js';
import { ConfigError } from '../../errors.js';
import { STORE_CHANNEL, type StoreMessage } from '../../observability/channels.js';
import { boolean, clockOption, integer, knownKeys, oneOf, positiveNumber } from '../../validate.js';
import type { Store, StoreDecision, StoreTakeRequest } from '../types.js';
import { type BreakerState, CircuitBreaker } from './breaker.js';
import { adaptClient, type RedisClient, type RedisClientKind, type ScriptClient } from './client.js';
import { Deadlines } from './deadlines.js';
import { bucketDecision, tokensFromReply } from './decision.js';
import { isNoScript, RedisStoreError } from './errors.js';
import { LocalBuckets } from './local-buckets.js';
import {
  type ScriptOp,
  TOKEN_BUCKET_PEEK_SCRIPT,
  TOKEN_BUCKET_PEEK_SHA,
  TOKEN_BUCKET_REFUND_SCRIPT,
  TOKEN_BUCKET_REFUND_SHA,
  TOKEN_BUCKET_SCRIPT,
  TOKEN_BUCKET_SHA,
  TOKEN_BUCKET_TAKE_SCRIPT,
  TOKEN_BUCKET_TAKE_SHA,
} from './script.js';

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
  /**
   * Send the decisions asked in one event-loop turn together, in one call (standalone clients;
   * on a Cluster each decision is its own call). @default true
   */
  readonly batch?: boolean;
  /** Time for the timeout and the breaker (Redis's `TIME` is the bucket clock). @default systemClock */
  readonly clock?: Clock;
  /**
   * The store's name in `spillway:store` messages (errors, fallbacks, breaker states) and so in the
   * `name` label of `spillway_store_*` metrics. 1 to 128 characters. @default 'default'
   */
  readonly name?: string;
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
  'batch',
  'clock',
  'name',
] as const;

/** Where the store reports its trouble; a message is built only while someone subscribes. */
const storeChannel = channel(STORE_CHANNEL);

const OP_NAMES = { t: 'take', p: 'peek', r: 'refund' } as const;

/** The script a call of one decision runs, by its op: its SHA, and its source for NOSCRIPT. */
const ONE_SCRIPTS = {
  t: [TOKEN_BUCKET_TAKE_SHA, TOKEN_BUCKET_TAKE_SCRIPT],
  p: [TOKEN_BUCKET_PEEK_SHA, TOKEN_BUCKET_PEEK_SCRIPT],
  r: [TOKEN_BUCKET_REFUND_SHA, TOKEN_BUCKET_REFUND_SCRIPT],
} as const;

/**
 * The most decisions one call carries. Smaller calls let Redis start on the first while the client
 * encodes the next, and their replies come back in waves, so client and server work at once
 * instead of taking turns: at concurrency 64, 32 a call decided ~200k/s where 128 did ~114k/s
 * (medians of 5 interleaved rounds, docs/benchmarks.md › Redis store).
 */
const MAX_BATCH = 32;

interface Pending {
  readonly op: ScriptOp;
  readonly request: StoreTakeRequest;
  readonly resolve: (decision: StoreDecision) => void;
}

export class RedisStore extends EventEmitter<RedisStoreEvents> implements Store {
  /** Which client the store detected. */
  readonly clientKind: RedisClientKind;
  /** The name in `spillway:store` messages. */
  readonly name: string;
  readonly #client: ScriptClient;
  readonly #prefix: string;
  readonly #policy: RedisFailurePolicy;
  readonly #instances: number;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  readonly #breaker: CircuitBreaker;
  readonly #local: LocalBuckets;
  readonly #batch: boolean;
  /** The timeout of every call in flight, on one timer. */
  readonly #deadlines: Deadlines;
  #queue: Pending[] = [];
  /** Calls sent and not yet answered. */
  #inFlight = 0;
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
    const name = options.name ?? 'default';
    if (typeof name !== 'string' || name === '' || name.length > 128) {
      throw new ConfigError('name', name, 'a non-empty string of at most 128 characters');
    }
    this.name = name;
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
    this.#batch = boolean('batch', options.batch ?? true) && !this.#client.cluster;
    this.#clock = clockOption('clock', options.clock, systemClock);
    this.#deadlines = new Deadlines(this.#clock, this.#timeoutMs);
    this.#breaker = new CircuitBreaker(
      this.#clock,
      {
        failureThreshold: integer('failureThreshold', options.failureThreshold ?? 3, 1),
        openMs: positiveNumber('openMs', options.openMs ?? 1000),
      },
      (from, to) => {
        if (to === 'open') this.#breakerOpens++;
        if (storeChannel.hasSubscribers) {
          this.#publish({ event: 'state', operation: 'breaker', state: to, previousState: from });
        }
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
      if (verdict !== 'refuse') this.#breaker.failure();
      this.#report(
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
      this.#breaker.failure();
      this.#report('reset', key, asStoreError(err));
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
    if (!this.#client.connected()) {
      this.#breaker.failure();
      const error = new RedisStoreError('unavailable', 'The Redis client is not connected');
      this.#report(OP_NAMES[op], request.key, error);
      return Promise.resolve(this.#fallback(op, request));
    }
    return new Promise<StoreDecision>((resolve) => {
      const pending: Pending = { op, request, resolve };
      // Nothing on the wire: send at once (no added latency when decisions come one at a time).
      // Otherwise gather this turn's decisions into one call.
      if (!this.#batch || this.#inFlight === 0) {
        this.#send([pending]);
        return;
      }
      this.#queue.push(pending);
      if (this.#queue.length === 1) setImmediate(this.#flush);
    });
  }

  /** Sends what this event-loop turn asked, in calls of at most MAX_BATCH decisions. */
  readonly #flush = (): void => {
    const queue = this.#queue;
    this.#queue = [];
    for (let i = 0; i < queue.length; i += MAX_BATCH) this.#send(queue.slice(i, i + MAX_BATCH));
  };

  #send(batch: Pending[]): void {
    if (batch.length === 1) {
      this.#sendOne(batch[0]!, batch);
      return;
    }
    const n = batch.length;
    const keys = new Array<string>(n);
    const args = new Array<string>(n * 5);
    for (let i = 0; i < n; i++) {
      const { op, request } = batch[i]!;
      keys[i] = this.redisKey(request.key);
      const a = i * 5;
      args[a] = op;
      args[a + 1] = String(request.cost);
      args[a + 2] = String(request.limits.ratePerSec);
      args[a + 3] = String(request.limits.burst);
      args[a + 4] = String(clampFactor(request.factor));
    }
    this.#call(batch, TOKEN_BUCKET_SHA, TOKEN_BUCKET_SCRIPT, keys, args, (reply) =>
      this.#answer(batch, reply),
    );
  }

  /**
   * One decision: the script of its op (no batch loop), with the rate and capacity at the caller's
   * factor computed here, as the batch script computes them (so both store the same doubles).
   */
  #sendOne(pending: Pending, batch: Pending[]): void {
    const { op, request } = pending;
    const { ratePerSec, burst } = request.limits;
    const factor = clampFactor(request.factor);
    const baseRate = ratePerSec / 1000;
    const rate = baseRate * factor;
    const capacity = burst * factor;
    const args = [String(request.cost), String(rate), String(capacity)];
    // At rate 0 the key lives as long as a full refill at factor 1.
    if (!(rate > 0)) args.push(String(burst / baseRate));
    const [sha, script] = ONE_SCRIPTS[op];
    this.#call(batch, sha, script, [this.redisKey(request.key)], args, (reply) =>
      this.#answerOne(pending, reply, rate, capacity),
    );
  }

  /** Runs a script by SHA (by source on NOSCRIPT) under the call deadline; `answer` gets its reply. */
  #call(
    batch: Pending[],
    sha: string,
    script: string,
    keys: string[],
    args: string[],
    answer: (reply: unknown) => void,
  ): void {
    this.#inFlight++;
    let sent: Promise<unknown>;
    try {
      sent = this.#client.evalsha(sha, keys, args);
    } catch (err) {
      sent = Promise.reject(err);
    }
    // Watched once sent: the rest of the call's set-up runs while Redis works on it.
    const watched = this.#deadlines.watch(() => {
      this.#inFlight--;
      this.#failed(
        batch,
        new RedisStoreError('timeout', `Redis did not answer within ${this.#timeoutMs} ms`),
      );
    });
    const onReply = (reply: unknown): void => {
      if (!watched.settle()) return;
      this.#inFlight--;
      answer(reply);
    };
    const onError = (err: unknown): void => {
      if (!watched.settle()) return;
      this.#inFlight--;
      this.#failed(batch, asStoreError(err));
    };
    // One handler pair on the client's promise: NOSCRIPT is rare, so it gets no promise of its own.
    sent.then(onReply, (err: unknown) => {
      if (!isNoScript(err)) return onError(err);
      // EVAL runs the script and caches it on the node that owns the key, so the next EVALSHA
      // finds it: this reloads per node on a Cluster, where SCRIPT LOAD would go to one node.
      this.#scriptLoads++;
      this.emit('scriptLoad', { key: keys[0]! });
      let loaded: Promise<unknown>;
      try {
        loaded = this.#client.eval(script, keys, args);
      } catch (e) {
        loaded = Promise.reject(e);
      }
      loaded.then(onReply, onError);
    });
  }

  /**
   * Resolves one decision from its script's reply: the integer tokens · 2 + allowed, or the string
   * "<mantissa · 2^53> <exponent · 2 + allowed>" (an integer may come as a string: ioredis with
   * `stringNumbers`).
   */
  #answerOne(pending: Pending, reply: unknown, ratePerMs: number, capacity: number): void {
    let allowed = -1;
    let tokens = Number.NaN;
    const space = typeof reply === 'string' ? reply.indexOf(' ') : -1;
    if (space < 0 && (typeof reply === 'number' || typeof reply === 'string')) {
      const n = Number(reply);
      if (Number.isSafeInteger(n) && n >= 0) {
        allowed = n % 2;
        tokens = (n - allowed) / 2;
      }
    } else if (space > 0) {
      const text = reply as string;
      const x = Number(text.slice(space + 1));
      if (Number.isInteger(x) && Math.abs(x) < 4096) {
        allowed = x & 1;
        tokens = tokensFromReply(Number(text.slice(0, space)), (x - allowed) / 2);
      }
    }
    if (!(allowed === 0 || allowed === 1) || !(tokens >= 0)) {
      this.#failed([pending], badReply(reply));
      return;
    }
    this.#breaker.success();
    if (pending.op !== 'r') this.#redisDecisions++;
    pending.resolve(bucketDecision(allowed === 1, tokens, pending.request.cost, ratePerMs, capacity));
  }

  /** Resolves a call's decisions from the script's reply: three integers per decision. */
  #answer(batch: Pending[], reply: unknown): void {
    if (!Array.isArray(reply) || reply.length !== batch.length * 3) {
      this.#failed(batch, badReply(reply));
      return;
    }
    const decisions = new Array<StoreDecision>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const { request } = batch[i]!;
      const allowed = Number(reply[3 * i]);
      const tokens = tokensFromReply(Number(reply[3 * i + 1]), Number(reply[3 * i + 2]));
      if (!(allowed === 0 || allowed === 1) || !(tokens >= 0)) {
        this.#failed(batch, badReply(reply));
        return;
      }
      const factor = clampFactor(request.factor);
      decisions[i] = bucketDecision(
        allowed === 1,
        tokens,
        request.cost,
        (request.limits.ratePerSec / 1000) * factor,
        request.limits.burst * factor,
      );
    }
    this.#breaker.success();
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (p.op !== 'r') this.#redisDecisions++;
      p.resolve(decisions[i]!);
    }
  }

  /** One failed call is one failure for the breaker, however many decisions it carried. */
  #failed(batch: Pending[], error: RedisStoreError): void {
    this.#breaker.failure();
    for (const p of batch) {
      this.#report(OP_NAMES[p.op], p.request.key, error);
      p.resolve(this.#fallback(p.op, p.request));
    }
  }

  #withTimeout<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const watched = this.#deadlines.watch(() =>
        reject(new RedisStoreError('timeout', `Redis did not answer within ${this.#timeoutMs} ms`)),
      );
      promise.then(
        (value) => {
          if (watched.settle()) resolve(value);
        },
        (err: unknown) => {
          if (watched.settle()) reject(err);
        },
      );
    });
  }

  #report(op: RedisStoreErrorEvent['op'], key: string, error: RedisStoreError): void {
    this.#errors++;
    if (error.kind === 'timeout') this.#timeouts++;
    if (storeChannel.hasSubscribers) this.#publish({ event: 'error', operation: op, error });
    this.emit('error', { op, key, error });
  }

  #publish(m: Omit<StoreMessage, 'name'>): void {
    storeChannel.publish({ name: this.name, ...m } satisfies StoreMessage);
  }

  #fallback(op: ScriptOp, request: StoreTakeRequest): StoreDecision {
    if (op !== 'r') {
      this.#fallbackDecisions++;
      if (storeChannel.hasSubscribers) {
        this.#publish({ event: 'fallback', operation: OP_NAMES[op], policy: this.#policy });
      }
    }
    const factor = clampFactor(request.factor);
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
        if (op === 'r') return { allowed: true, remaining: 0, retryAfterMs: 0, resetMs: wait };
        return { allowed: false, remaining: 0, retryAfterMs: wait, resetMs: wait, unavailable: true };
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

function clampFactor(factor: number): number {
  return Math.min(1, Math.max(0, factor));
}

function badReply(reply: unknown): RedisStoreError {
  return new RedisStoreError('reply', `Unexpected reply from the token-bucket script: ${String(reply)}`);
}

/** A Redis-backed `Store`. Validates its options (a ConfigError names the one at fault). */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
