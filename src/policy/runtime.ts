/**
 * A running policy: the governor, the limiters, the pools and the routes a policy describes, and a
 * reload that takes a new policy without dropping state. Limiters keep their buckets in stores that
 * outlive a reload (a StoreLimiter passes the limits with every call), so a bucket keeps its tokens
 * and follows the new limits from that moment on; a limiter whose settings did not change is kept
 * as it is. Pools are ConcurrencyLimiters changed in place (`update`). The guards the runtime
 * serves (`serve`) get the routes of the policy in force. A policy that does not validate is
 * refused and the old one keeps running.
 */
import { EventEmitter } from 'eventemitter3';
import { type Clock, systemClock } from '../clock.js';
import { ConfigError, isAbortError } from '../errors.js';
import { createGovernor } from '../governor/index.js';
import type { Governor } from '../governor/governor.js';
import { ManualFactor } from '../limiters/factor.js';
import type { BucketLimits, KeyedAcquireOptions, KeyedDecision, TakeOptions } from '../limiters/keyed-limiter.js';
import { StoreLimiter } from '../limiters/store-limiter.js';
import type { FactorSource } from '../limiters/types.js';
import { cpu } from '../signals/cpu.js';
import { eventLoopDelay } from '../signals/event-loop-delay.js';
import { eventLoopUtilization } from '../signals/event-loop-utilization.js';
import { memory } from '../signals/memory.js';
import type { Signal } from '../signals/types.js';
import { MemoryStore } from '../stores/memory.js';
import type { Store } from '../stores/types.js';
import type { RoutePolicy } from '../adapters/guard-options.js';
import type { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import { guardRoutes, type RoutedGuard } from './guard-routes.js';
import { type ParsePolicyOptions, PolicyError, parsePolicy } from './load.js';
import { PolicyPools } from './pools.js';
import type { LimiterPolicy, Policy, RoutePolicySpec, StorePolicy } from './schema.js';
import { clockOption } from '../validate.js';

export interface PolicyRuntimeOptions {
  /** @default systemClock */
  clock?: Clock;
  /**
   * The tier of a key for a limiter, for keys the file does not place (`tiers.<name>.keys`).
   * @default none: such keys get the limiter's own limits
   */
  tierOf?: (limiter: string, key: string) => string | undefined;
  /** Stores the file names with kind "redis": a RedisStore (spillway/redis) or any Store, by name. */
  stores?: Readonly<Record<string, Store>>;
  /** Signals to use instead of those the file describes (tests inject). @default from the file */
  signals?: readonly Signal[];
}

/** A policy change, as the runtime reports it. */
export interface PolicyReload {
  readonly policy: Policy;
  /** What changed: `signals`, `governor`, `limiters.<name>`, `routes`, `pools.<name>`, `stores`. */
  readonly changed: readonly string[];
}

export interface PolicyRuntimeEvents {
  /** A new policy is in force. */
  reloaded: (reload: PolicyReload) => void;
  /** A new policy was refused; the previous one keeps running. */
  rejected: (error: PolicyError) => void;
}

/** A limiter by name whose limits follow the policy in force; its buckets survive reloads. */
export interface PolicyLimiter {
  readonly name: string;
  /** Tokens per second at factor 1 (the limiter's own, without tiers), per the policy in force. */
  readonly ratePerSec: number;
  readonly burst: number;
  /** Whether keys may have limits of their own (the limiter's `tiers`), per the policy in force. */
  readonly hasTiers: boolean;
  /** The rate and burst at factor 1 of `key`'s tier (the limiter's own without one). */
  limitsOf(key: string): BucketLimits;
  take(key: string, options?: TakeOptions): Promise<KeyedDecision>;
  peek(key: string, options?: TakeOptions): Promise<KeyedDecision>;
  acquire(key: string, options?: KeyedAcquireOptions): Promise<KeyedDecision>;
  /** Gives back what `take` charged (a guard refunds a key when a later stage refuses). */
  refund(key: string, options?: TakeOptions): Promise<void>;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function buildSignals(policy: Policy, clock: Clock): Signal[] | undefined {
  const s = policy.signals;
  if (s === undefined) return undefined;
  const out: Signal[] = [];
  if (s.eventLoopDelay) out.push(eventLoopDelay({ ...s.eventLoopDelay, clock }));
  if (s.eventLoopUtilization) out.push(eventLoopUtilization(s.eventLoopUtilization));
  if (s.cpu) out.push(cpu({ ...s.cpu, clock }));
  if (s.memory) out.push(memory(s.memory));
  return out.length > 0 ? out : undefined;
}

export class PolicyRuntime extends EventEmitter<PolicyRuntimeEvents> {
  readonly #options: PolicyRuntimeOptions;
  readonly #clock: Clock;
  /** The factor every limiter follows: relays the governor in force (a reload may replace it). */
  readonly #factor = new ManualFactor(1);
  readonly #limiters = new Map<string, StoreLimiter>();
  readonly #facades = new Map<string, PolicyLimiter>();
  readonly #stores = new Map<string, { spec: unknown; store: Store; own: boolean }>();
  readonly #pools: PolicyPools;
  /** The guards served the policy's routes, and the routes they have. */
  readonly #guards = new Set<RoutedGuard>();
  #routes: readonly RoutePolicy[];
  #policy: Policy;
  #governor: Governor;
  #unsubscribe: () => void = () => {};
  #running = false;

  constructor(policy: Policy, options: PolicyRuntimeOptions = {}) {
    super();
    this.#options = options;
    this.#clock = clockOption('clock', options.clock, systemClock);
    this.#policy = policy;
    this.#governor = this.#createGovernor(policy);
    this.#follow(this.#governor);
    this.#buildLimiters(policy, undefined);
    this.#pools = new PolicyPools(this.#clock);
    this.#pools.apply(policy.pools);
    this.#routes = guardRoutes(policy, (n) => this.#facade(n));
  }

  /** The policy in force. */
  get policy(): Policy {
    return this.#policy;
  }

  /** The governor in force (a reload that changes `signals` or `governor` replaces it). */
  get governor(): Governor {
    return this.#governor;
  }

  /** The factor the limiters follow: the governor's, across reloads. */
  get factor(): FactorSource {
    return this.#factor;
  }

  /** Starts sampling. */
  start(): this {
    this.#running = true;
    this.#governor.start();
    return this;
  }

  /**
   * Stops sampling, stops serving guards, and closes the limiters, the pools (their waiters are
   * refused `closed`; permits out stay releasable) and the stores the runtime created.
   */
  stop(): void {
    this.#running = false;
    this.#governor.stop();
    this.#unsubscribe();
    this.#guards.clear();
    for (const l of this.#limiters.values()) l.close();
    this.#pools.close();
    for (const s of this.#stores.values()) if (s.own) void s.store.close();
  }

  /**
   * The ConcurrencyLimiter of the pool of that name (`pools.<name>`): the same object across
   * reloads, which change its `limit`, `maxQueue` and `maxWaitMs` in place. Give it to a pool guard
   * (`guardPgPool(pool, { limiter })`, `guardPool`, `guardGenericPool`) or to an HTTP guard
   * (`concurrency`). A reload that removes the pool closes it. Throws a ConfigError naming the
   * known ones.
   */
  pool(name: string): ConcurrencyLimiter {
    return this.#pools.get(name);
  }

  /**
   * Builds the policy's `routes` into `guard` (an HttpGuard: `protect(...).guard`,
   * `createMiddleware(...).guard`, Fastify's `app.spillway`) now, and again on every reload that
   * changes the routes or the limiters: first match wins, a route's `limiter` is the runtime's
   * limiter of that name (or `null`: none; absent: the guard's own). The guard's other options
   * stay. Returns a function that stops serving it.
   */
  serve(guard: RoutedGuard): () => void {
    if (typeof guard !== 'object' || guard === null || typeof guard.setRoutes !== 'function')
      throw new ConfigError('guard', guard, 'an HttpGuard (with setRoutes)');
    guard.setRoutes(this.#routes);
    this.#guards.add(guard);
    return () => {
      this.#guards.delete(guard);
    };
  }

  /** The limiter of that name. Throws a ConfigError naming the known ones. */
  limiter(name: string): PolicyLimiter {
    if (!this.#facades.has(name) && !this.#limiters.has(name))
      throw new ConfigError(
        'limiter',
        name,
        `a limiter of the policy (${[...this.#limiters.keys()].join(', ') || 'none'})`,
      );
    return this.#facade(name);
  }

  /** The stable face of a limiter by name: every call goes to the limiter of the policy in force. */
  #facade(name: string): PolicyLimiter {
    const facade = this.#facades.get(name);
    if (facade !== undefined) return facade;
    const current = () => {
      const l = this.#limiters.get(name);
      if (l === undefined)
        throw new ConfigError('limiter', name, 'a limiter of the policy in force (a reload removed it)');
      return l;
    };
    const made: PolicyLimiter = {
      name,
      get ratePerSec() {
        return current().ratePerSec;
      },
      get burst() {
        return current().burst;
      },
      get hasTiers() {
        return current().hasTiers;
      },
      limitsOf: (key) => current().limitsOf(key),
      take: (key, o) => current().take(key, o),
      peek: (key, o) => current().peek(key, o),
      refund: (key, o) => current().refund(key, o),
      acquire: async (key, o = {}) => {
        // A reload closes the limiter a wait started on; the wait goes on with the new one.
        const deadline = this.#clock.now() + (o.maxWaitMs ?? Infinity);
        for (;;) {
          const l = current();
          try {
            return await l.acquire(key, { ...o, maxWaitMs: Math.max(0, deadline - this.#clock.now()) });
          } catch (err) {
            if (!isAbortError(err) || o.signal?.aborted || this.#limiters.get(name) === l) throw err;
          }
        }
      },
    };
    this.#facades.set(name, made);
    return made;
  }

  /** The first route of the policy that matches, or undefined. Paths match on segment boundaries. */
  route(method: string, path: string): RoutePolicySpec | undefined {
    const m = method.toUpperCase();
    return this.#policy.routes.find((r) => {
      if (r.method !== undefined) {
        const methods = (Array.isArray(r.method) ? r.method : [r.method]).map((x) => x.toUpperCase());
        if (!methods.includes(m)) return false;
      }
      if (r.path === undefined || r.path === '/') return true;
      const prefix = r.path.endsWith('/') ? r.path.slice(0, -1) : r.path;
      return path === prefix || path.startsWith(`${prefix}/`) || path.startsWith(`${prefix}?`);
    });
  }

  /**
   * Takes a new policy (an object or JSON text, validated here with the environment's overrides, or
   * an already validated Policy when `validated` is true). On a problem, emits `rejected`, keeps the
   * policy in force and throws the PolicyError.
   */
  update(input: unknown, options: ParsePolicyOptions & { validated?: boolean } = {}): PolicyReload {
    let next: Policy;
    try {
      next = options.validated ? (input as Policy) : parsePolicy(input, options);
      this.#checkStores(next);
    } catch (err) {
      throw this.#reject(err, options.source);
    }
    const prev = this.#policy;
    const changed = changes(prev, next);
    // Routes first, while nothing else has changed: a guard that refuses them (it cannot, for a
    // validated policy, short of a bug) leaves every guard and the policy as they were.
    if (changed.some((c) => c === 'routes' || c.startsWith('limiters.'))) {
      const routes = guardRoutes(next, (n) => this.#facade(n));
      this.#serveAll(routes, options.source);
      this.#routes = routes;
    }
    if (changed.includes('signals') || changed.includes('governor')) {
      const old = this.#governor;
      this.#governor = this.#createGovernor(next);
      this.#follow(this.#governor);
      if (this.#running) this.#governor.start();
      old.stop();
    }
    this.#policy = next;
    this.#buildLimiters(next, prev);
    this.#pools.apply(next.pools);
    const reload = { policy: next, changed };
    this.emit('reloaded', reload);
    return reload;
  }

  /** Gives `routes` to every guard served, or to none (those done are given the old ones back). */
  #serveAll(routes: readonly RoutePolicy[], source: string | undefined): void {
    const done: RoutedGuard[] = [];
    try {
      for (const g of this.#guards) {
        g.setRoutes(routes);
        done.push(g);
      }
    } catch (err) {
      for (const g of done) g.setRoutes(this.#routes);
      throw this.#reject(err, source, 'routes');
    }
  }

  /** Reports a refused policy (`rejected`) and returns the PolicyError to throw. */
  #reject(err: unknown, source: string | undefined, section?: string): PolicyError {
    const error =
      err instanceof PolicyError
        ? err
        : new PolicyError(
            [
              {
                path: (err as ConfigError).option ?? section ?? '(root)',
                value: (err as ConfigError).value,
                allowed: (err as Error).message,
              },
            ],
            source,
          );
    this.emit('rejected', error);
    return error;
  }

  #createGovernor(policy: Policy): Governor {
    const signals = this.#options.signals ?? buildSignals(policy, this.#clock);
    return createGovernor({
      ...policy.governor,
      clock: this.#clock,
      ...(signals === undefined ? {} : { signals }),
    });
  }

  #follow(governor: Governor): void {
    this.#unsubscribe();
    this.#factor.set(governor.factor);
    this.#unsubscribe = governor.subscribe((f) => this.#factor.set(f));
  }

  /** Fails (before anything changes) when a redis store is named but not given. */
  #checkStores(policy: Policy): void {
    for (const [name, spec] of Object.entries(policy.stores))
      if (spec.kind === 'redis' && this.#options.stores?.[name] === undefined)
        throw new ConfigError(
          `stores.${name}`,
          spec.url,
          `a Store passed as options.stores.${name} (a RedisStore from spillway/redis)`,
        );
  }

  #store(name: string, l: LimiterPolicy, policy: Policy): Store {
    const storeName = l.store ?? `(limiter ${name})`;
    const spec: StorePolicy =
      l.store === undefined ? { kind: 'memory', maxKeys: l.maxKeys } : policy.stores[l.store]!;
    const held = this.#stores.get(storeName);
    // A store is kept across reloads (it holds the buckets) unless its own settings changed.
    if (held !== undefined && same(held.spec, spec)) return held.store;
    let store: Store;
    let own = true;
    if (spec.kind === 'redis') {
      store = this.#options.stores![l.store!]!;
      own = false;
    } else {
      store = new MemoryStore({
        clock: this.#clock,
        ...(spec.maxKeys === undefined ? {} : { maxKeys: spec.maxKeys }),
      });
    }
    if (held?.own) void held.store.close();
    this.#stores.set(storeName, { spec, store, own });
    return store;
  }

  /** Builds the limiters of `policy`; one whose settings and store are those of `prev` is kept. */
  #buildLimiters(policy: Policy, prev: Policy | undefined): void {
    const tierOf = this.#options.tierOf;
    for (const [name, l] of Object.entries(policy.limiters)) {
      const held = this.#limiters.get(name);
      const store = this.#store(name, l, policy);
      if (held !== undefined && held.store === store && same(prev?.limiters[name], l)) continue;
      const byKey = new Map<string, { ratePerSec: number; burst: number }>();
      const byName = new Map<string, { ratePerSec: number; burst: number }>();
      for (const [tier, t] of Object.entries(l.tiers ?? {})) {
        const limits = { ratePerSec: t.ratePerSec, burst: t.burst };
        byName.set(tier, limits);
        for (const key of t.keys ?? []) byKey.set(key, limits);
      }
      const tiers =
        byName.size === 0
          ? undefined
          : (key: string) => {
              const fixed = byKey.get(key);
              if (fixed !== undefined) return fixed;
              const tier = tierOf?.(name, key);
              return tier === undefined ? undefined : byName.get(tier);
            };
      const next = new StoreLimiter({
        store,
        ratePerSec: l.ratePerSec,
        burst: l.burst,
        clock: this.#clock,
        factor: l.followGovernor ? this.#factor : 1,
        ...(tiers === undefined ? {} : { tiers }),
        ...(l.global === undefined ? {} : { global: l.global }),
      });
      const old = this.#limiters.get(name);
      this.#limiters.set(name, next);
      old?.close();
    }
    for (const name of [...this.#limiters.keys()])
      if (!(name in policy.limiters)) {
        this.#limiters.get(name)!.close();
        this.#limiters.delete(name);
      }
  }
}

/** What differs between two policies, as `PolicyReload.changed` names it. */
function changes(prev: Policy, next: Policy): string[] {
  const changed: string[] = (['signals', 'governor'] as const).filter((k) => !same(prev[k], next[k]));
  const named = (section: 'limiters' | 'pools') => {
    for (const name of new Set([...Object.keys(prev[section]), ...Object.keys(next[section])]))
      if (!same(prev[section][name], next[section][name])) changed.push(`${section}.${name}`);
  };
  named('limiters');
  if (!same(prev.routes, next.routes)) changed.push('routes');
  named('pools');
  if (!same(prev.stores, next.stores)) changed.push('stores');
  return changed;
}
