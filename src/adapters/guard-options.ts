/**
 * The guard's options: their types, defaults, and the one place they are validated and compiled
 * (into a RouteTable of routes with their pipelines, and the response settings).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KeyAdmission, ProcessAdmission } from '../admission/stages.js';
import { type TurnBudget, turnBudgetFor } from '../admission/turn-budget.js';
import { ConfigError, isConfigError } from '../errors.js';
import { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import type { ConcurrencyLimiterOptions } from '../limiters/concurrency/options.js';
import { priorityLevel } from '../limiters/priority.js';
import type { Priority } from '../limiters/types.js';
import { boolean, finiteNumber, fn, integer, knownKeys, oneOf, ratio } from '../validate.js';
import {
  addressKeyer,
  clientAddress,
  compileTrust,
  type ForwardedHeader,
  type TrustFn,
  type TrustProxy,
  type UntrustedForwarding,
} from './client-address.js';
import { type ProblemDetails, sfString } from './headers.js';
import type { Refusal } from './refusal.js';
import { checkedCost, checkedKey, checkedPriority, type InvalidValueListener } from './request-values.js';
import { type Route, RouteTable, routePipeline, type WindowSource } from './routes.js';

export type { KeyAdmission, ProcessAdmission } from '../admission/stages.js';

/** What the status endpoint reports: a Governor fits. */
export interface SnapshotSource {
  snapshot(): unknown;
}

export type RequestValue<T> = T | ((req: IncomingMessage) => T);

/** One per-route policy. Unset fields inherit the guard's options. First matching route wins. */
export interface RoutePolicy {
  /** HTTP method(s) the route applies to, case-insensitive. @default every method */
  method?: string | readonly string[];
  /** Path prefix, on segment boundaries: `/api` matches `/api` and `/api/x`, not `/apix`. @default every path */
  path?: string;
  /** Extra predicate; the route applies when method, path and this all match. */
  match?: (req: IncomingMessage) => boolean;
  /** Skip the guard entirely on this route (no limit, no count). @default false */
  bypass?: boolean;
  /** This route's own key limiter, or `null` for none. @default the guard's `limiter` */
  limiter?: KeyAdmission | null;
  /** This route's own shedder, or `null` for none. @default the guard's `shedder` */
  shedder?: ProcessAdmission | null;
  key?: (req: IncomingMessage) => string | undefined;
  priority?: RequestValue<Priority>;
  cost?: RequestValue<number>;
  /** Queueing wait for this route, in ms. @default the guard's `maxWaitMs` */
  maxWaitMs?: number;
  /**
   * This route's own concurrency limit (a ConcurrencyLimiter, or its options for a new one), or
   * `null` for none. @default the guard's `concurrency` (the same limiter, shared)
   */
  concurrency?: ConcurrencyOption | null;
  /** @default the guard's `policyName` */
  policyName?: string;
  /** @default the guard's `windowSec` */
  windowSec?: number;
}

export interface HttpGuardOptions {
  /** Per-key limiter (429 over quota). @default none */
  limiter?: KeyAdmission | null;
  /** Process shedder (503 when overloaded). @default none */
  shedder?: ProcessAdmission | null;
  /** Governor (or anything with `snapshot()`) reported by the status endpoint. @default none */
  governor?: SnapshotSource;
  /**
   * The request's key. Returning `undefined` falls back to the client address.
   * @default the client address (see `trustProxy`)
   */
  key?: (req: IncomingMessage) => string | undefined;
  /**
   * A header that names the client, such as `x-api-key`. Only when you name it: any client can
   * send any header, so this is for credentials you verify, never for a bare user id. The key is
   * `<header>:<value>`; requests without it fall back to the client address. @default none
   */
  keyHeader?: string;
  /** Which proxies to trust for the client address (see TrustProxy). @default false */
  trustProxy?: TrustProxy;
  /** The header that carries the chain behind trusted proxies. @default 'x-forwarded-for' */
  forwardedHeader?: ForwardedHeader;
  /** IPv6 clients are keyed by this prefix length (bits, 1 to 128). @default 56 */
  ipv6Subnet?: number;
  /** Priority of a request, fixed or computed. @default 'normal' */
  priority?: RequestValue<Priority>;
  /** Cost (weight) of a request, fixed or computed. @default 1 */
  cost?: RequestValue<number>;
  /** Per-route policies, first match wins. @default [] */
  routes?: readonly RoutePolicy[];
  /** Paths (prefixes on segment boundaries) or a predicate that skip the guard. @default [] */
  bypass?: readonly string[] | ((req: IncomingMessage) => boolean);
  /** Queueing mode: wait up to this long for the key limiter, in ms. 0 refuses at once. @default 0 */
  maxWaitMs?: number;
  /** Name of the quota policy in the RateLimit fields and problem bodies. @default 'default' */
  policyName?: string;
  /** The policy window `w`, in seconds. @default burst / ratePerSec of the limiter, when it exposes both */
  windowSec?: number;
  /** Which responses carry RateLimit fields. @default 'all' */
  rateLimitHeaders?: 'all' | 'refused' | 'none';
  /** Extra random share of Retry-After on 503, from 0 to 1. @default 0.5 */
  retryAfterJitter?: number;
  /** Upper bound of Retry-After before jitter, in seconds (and its value for an unbounded wait). @default 60 */
  maxRetryAfterSec?: number;
  /** Uniform random numbers in [0, 1) for the jitter. @default Math.random */
  random?: () => number;
  /** Builds the problem+json body of a refusal. @default the draft's quota-exceeded / temporary-reduced-capacity */
  problem?: (refusal: Refusal, req: IncomingMessage) => ProblemDetails | Record<string, unknown>;
  /**
   * Sends the refusal yourself. It must end the response. `refusal.headers` and `refusal.body` hold
   * the default answer. @default writes the default headers and body
   */
  onRefused?: (req: IncomingMessage, res: ServerResponse, refusal: Refusal) => void;
  /** A path answered with the governor's snapshot and the guard's counts, as JSON. @default none */
  statusPath?: string;
  /**
   * The loop-turn budget, in ms: once one event-loop turn has run this long, further requests in
   * that turn are refused with 503 (sheddable work at half of it, critical at twice), before the
   * governor can even see the overload. `false` turns it off. A `TurnBudget` of your own (from
   * `spillway/pipeline`) sets its other options too (`standingShare`, `refuseEarly`, `retryAfterMs`).
   * See TurnBudget.
   * @default 25 when a `shedder` is set, else off
   */
  turnBudgetMs?: number | false | TurnBudget;
  /** The guard's name in decision messages (`spillway:decision`), to tell several guards apart. @default 'default' */
  name?: string;
  /**
   * When `governor` (or `attach({ governor })`) is a Governor, add this guard's refusal share and
   * queue time to its signals, so that the loop-turn budget's and the concurrency stage's refusals
   * are pressure (see governor-feed.ts and docs/http.md). @default true
   */
  feedGovernor?: boolean;
  /**
   * Bounds the requests in flight and their queue time (for handlers that await a database or
   * another service): at most `limit` requests run at once (fixed, or learned from latency when
   * `limit` is omitted, up to `maxConcurrent`), the rest wait in a bounded priority queue with a
   * deadline (`maxWaitMs`, default 1000 ms), CoDel and adaptive LIFO; a refusal is 503 with
   * Retry-After and its reason (`codel`, `deadline`, `queue-full`, `shed`). The slot is freed when
   * the response finishes or the connection closes. A ConcurrencyLimiter, or its options (see
   * docs/pool.md for every option and default). @default none
   */
  concurrency?: ConcurrencyOption | null;
}

/** The `concurrency` option: a ConcurrencyLimiter, or the options of one the guard creates (and closes). */
export type ConcurrencyOption = ConcurrencyLimiter | ConcurrencyLimiterOptions;

export const HTTP_GUARD_DEFAULTS = Object.freeze({
  forwardedHeader: 'x-forwarded-for' as ForwardedHeader,
  ipv6Subnet: 56,
  priority: 'normal' as Priority,
  cost: 1,
  maxWaitMs: 0,
  policyName: 'default',
  rateLimitHeaders: 'all' as const,
  retryAfterJitter: 0.5,
  maxRetryAfterSec: 60,
});

const OPTIONS = [
  'limiter',
  'shedder',
  'governor',
  'key',
  'keyHeader',
  'trustProxy',
  'forwardedHeader',
  'ipv6Subnet',
  'priority',
  'cost',
  'routes',
  'bypass',
  'maxWaitMs',
  'policyName',
  'windowSec',
  'rateLimitHeaders',
  'retryAfterJitter',
  'maxRetryAfterSec',
  'random',
  'problem',
  'onRefused',
  'statusPath',
  'turnBudgetMs',
  'name',
  'feedGovernor',
  'concurrency',
] as const;

const ROUTE_OPTIONS = [
  'method',
  'path',
  'match',
  'bypass',
  'limiter',
  'shedder',
  'key',
  'priority',
  'cost',
  'maxWaitMs',
  'concurrency',
  'policyName',
  'windowSec',
] as const;

/** `limiter`, `shedder` and `concurrency` set to `null` turn that stage off; `null` is refused for every other option. */
const NULLABLE = ['limiter', 'shedder', 'concurrency'] as const;

/** How refusals are answered. */
export interface ResponseSettings {
  readonly headersMode: 'all' | 'refused' | 'none';
  readonly jitter: number;
  readonly maxRetryAfterSec: number;
  readonly random: () => number;
  readonly problem: HttpGuardOptions['problem'];
  readonly onRefused: HttpGuardOptions['onRefused'];
}

/** The validated, compiled options. */
export interface GuardConfig {
  /** The guard's name in decision messages. */
  readonly name: string;
  /** The routes in force (`setRoutes` replaces the table). */
  table: RouteTable;
  readonly statusPath: string | undefined;
  /** `statusPath` lower-cased once, for frameworks that match paths case-insensitively. */
  readonly statusPathFolded: string | undefined;
  /** Whether the guard reads the request's path: a status path, a bypass path or a route prefix. */
  usesPath: boolean;
  readonly governor: SnapshotSource | undefined;
  readonly response: ResponseSettings;
  /** The option as given (undefined: on with a shedder, however it arrives). */
  readonly turnBudgetMs: number | false | TurnBudget | undefined;
  readonly turn: TurnBudget | undefined;
  /** Whether a Governor given to the guard is fed its refusal share and queue time. */
  readonly feedGovernor: boolean;
  /** The concurrency limiters the guard created from options (it closes them with itself). */
  readonly ownedLimiters: ConcurrencyLimiter[];
  /**
   * Validates and compiles other route policies, as the `routes` option, against the guard's
   * defaults (its default route as it is now). Throws ConfigError, having created nothing.
   */
  readonly compileRoutes: (routes: unknown) => { routes: Route[]; owned: ConcurrencyLimiter[] };
}

function pathOption(option: string, value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/'))
    throw new ConfigError(option, value, "a path starting with '/'");
  return value;
}

function valueFn<T>(value: RequestValue<T> | undefined, fallback: T, check: (v: unknown) => T) {
  if (typeof value === 'function') return value as (req: IncomingMessage) => T;
  const v = value === undefined ? fallback : check(value);
  return () => v;
}

function priorityFn(option: string, value: RequestValue<Priority> | undefined, report: InvalidValueListener) {
  const fallback = HTTP_GUARD_DEFAULTS.priority;
  if (typeof value === 'function') return checkedPriority(option, value, fallback, report);
  return valueFn(value, fallback, (v) => {
    priorityLevel(v as Priority);
    return v as Priority;
  });
}

function costFn(option: string, value: RequestValue<number> | undefined, report: InvalidValueListener) {
  const fallback = HTTP_GUARD_DEFAULTS.cost;
  if (typeof value === 'function') return checkedCost(option, value, fallback, report);
  return valueFn(value, fallback, (v) => finiteNumber(option, v, Number.MIN_VALUE));
}

/** What the guard hears from its request-time functions. */
export interface GuardHooks {
  /** A forwarding header was not believed. */
  readonly onUntrusted: (why: UntrustedForwarding) => void;
  /** A priority, cost or key function returned a bad value (the default was used). */
  readonly onInvalid: InvalidValueListener;
}

export function checkLimiter(option: string, value: unknown): KeyAdmission | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || typeof (value as KeyAdmission).take !== 'function') {
    throw new ConfigError(option, value, 'a keyed limiter with take(key, { cost, priority })');
  }
  return value as KeyAdmission;
}

export function checkShedder(option: string, value: unknown): ProcessAdmission | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || typeof (value as ProcessAdmission).admit !== 'function') {
    throw new ConfigError(option, value, 'a shedder with admit({ priority, cost })');
  }
  return value as ProcessAdmission;
}

/**
 * The `concurrency` option: a limiter as given, or a new one from options (recorded in `owned`).
 * A bad option inside throws a ConfigError naming it under `option` (`concurrency.maxWaitMs`).
 */
export function checkConcurrency(
  option: string,
  value: unknown,
  owned: ConcurrencyLimiter[],
): ConcurrencyLimiter | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof ConcurrencyLimiter) return value;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(
      option,
      value,
      'a ConcurrencyLimiter, its options ({ limit, maxWaitMs, ... }) or null',
    );
  }
  const v = value as Record<string, unknown>;
  if (typeof v.acquire === 'function' || typeof v.tryAcquire === 'function') {
    // A limiter from another copy of the package: its permits would not be ours to count.
    throw new ConfigError(option, value, 'a ConcurrencyLimiter of this package, or its options');
  }
  try {
    const limiter = new ConcurrencyLimiter(value as ConcurrencyLimiterOptions);
    owned.push(limiter);
    return limiter;
  } catch (err) {
    if (!isConfigError(err)) throw err;
    const inner = err.option === 'options' ? '' : `.${err.option.replace(/^ConcurrencyLimiter\./, '')}`;
    const e = new ConfigError(`${option}${inner}`, err.value, 'x');
    e.message = err.message.replace(`\`${err.option}\``, `\`${option}${inner}\``);
    throw e;
  }
}

type KeyFn = (req: IncomingMessage) => string;

/** The client-address key and the guard's key function (user `key`, then `keyHeader`, then the address). */
function keyFunctions(options: HttpGuardOptions, hooks: GuardHooks): { addressOf: KeyFn; keyFn: KeyFn } {
  const onUntrusted = hooks.onUntrusted;
  const d = HTTP_GUARD_DEFAULTS;
  const trust: TrustFn | undefined = compileTrust('trustProxy', options.trustProxy);
  const kind =
    options.forwardedHeader === undefined
      ? d.forwardedHeader
      : oneOf('forwardedHeader', options.forwardedHeader, ['x-forwarded-for', 'forwarded'] as const);
  const subnet = integer('ipv6Subnet', options.ipv6Subnet ?? d.ipv6Subnet, 1, 128);
  const keyOf = addressKeyer(subnet);
  const addressOf: KeyFn =
    trust === undefined
      ? (req) => keyOf(req.socket.remoteAddress ?? 'unknown')
      : (req) => {
          const raw = req.headers[kind];
          const header = Array.isArray(raw) ? raw.join(',') : raw;
          return keyOf(clientAddress(req.socket.remoteAddress ?? 'unknown', header, kind, trust, onUntrusted));
        };
  let keyFn = addressOf;
  if (options.keyHeader !== undefined) {
    if (typeof options.keyHeader !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(options.keyHeader)) {
      throw new ConfigError('keyHeader', options.keyHeader, 'a header name');
    }
    const h = options.keyHeader.toLowerCase();
    keyFn = (req) => {
      const v = req.headers[h];
      const s = Array.isArray(v) ? v[0] : v;
      return s ? `${h}:${s}` : addressOf(req);
    };
  }
  if (options.key !== undefined) {
    const user = fn<(req: IncomingMessage) => string | undefined>('key', options.key);
    keyFn = checkedKey('key', user, keyFn, hooks.onInvalid);
  }
  return { addressOf, keyFn };
}

type RouteInput = Omit<
  Route,
  'policyQuoted' | 'policyJson' | 'policyField' | 'rateLimitField' | 'pipeline' | 'label' | 'windowLimiter'
> & {
  label?: string;
};

function compileRoute(at: string, r: RouteInput): Route {
  const prefix = at === '' ? '' : `${at}.`;
  const policyQuoted = sfString(`${prefix}policyName`, r.policyName);
  const windowSec = r.windowSec;
  let windowLimiter: WindowSource | undefined;
  if (windowSec !== undefined) finiteNumber(`${prefix}windowSec`, windowSec, Number.MIN_VALUE);
  else if (r.limiter && typeof r.limiter.burst === 'number' && typeof r.limiter.ratePerSec === 'number') {
    // Read at each response, not now: a policy reload changes a policy limiter's rate and burst.
    windowLimiter = r.limiter as WindowSource;
  }
  const label = r.label ?? r.policyName;
  const route = {
    ...r,
    label,
    policyQuoted,
    policyJson: JSON.stringify(r.policyName),
    policyField: { limit: Number.NaN, windowSec: undefined, value: '' },
    rateLimitField: { remaining: -1, resetSec: -1, value: '' },
    windowSec,
    windowLimiter,
  } as Route;
  return route;
}

function routePolicies(
  routes: unknown,
  windowSec: number | undefined,
  base: Route,
  addressOf: KeyFn,
  report: InvalidValueListener,
  owned: ConcurrencyLimiter[],
): Route[] {
  if (!Array.isArray(routes)) throw new ConfigError('routes', routes, 'an array of route policies');
  return routes.map((r: RoutePolicy, i) => {
    const at = `routes[${i}]`;
    if (typeof r !== 'object' || r === null) throw new ConfigError(at, r, 'a route policy object');
    knownKeys(at, r, ROUTE_OPTIONS, NULLABLE);
    const methods =
      r.method === undefined
        ? undefined
        : new Set((typeof r.method === 'string' ? [r.method] : r.method).map((m) => String(m).toUpperCase()));
    const userKey =
      r.key === undefined ? undefined : fn<(req: IncomingMessage) => string | undefined>(`${at}.key`, r.key);
    return compileRoute(at, {
      methods,
      prefix: r.path === undefined ? undefined : pathOption(`${at}.path`, r.path),
      match:
        r.match === undefined ? undefined : fn<(req: IncomingMessage) => boolean>(`${at}.match`, r.match),
      bypass: r.bypass === undefined ? false : boolean(`${at}.bypass`, r.bypass),
      limiter: r.limiter === undefined ? base.limiter : checkLimiter(`${at}.limiter`, r.limiter),
      shedder: r.shedder === undefined ? base.shedder : checkShedder(`${at}.shedder`, r.shedder),
      ownShedder: r.shedder !== undefined,
      key: userKey === undefined ? base.key : checkedKey(`${at}.key`, userKey, addressOf, report),
      keyed: userKey !== undefined || base.keyed,
      priority: r.priority === undefined ? base.priority : priorityFn(`${at}.priority`, r.priority, report),
      cost: r.cost === undefined ? base.cost : costFn(`${at}.cost`, r.cost, report),
      maxWaitMs: r.maxWaitMs === undefined ? base.maxWaitMs : finiteNumber(`${at}.maxWaitMs`, r.maxWaitMs, 0),
      concurrency:
        r.concurrency === undefined
          ? base.concurrency
          : checkConcurrency(`${at}.concurrency`, r.concurrency, owned),
      policyName: r.policyName ?? base.policyName,
      label: r.policyName ?? r.path ?? base.policyName,
      windowSec: r.windowSec ?? (r.limiter === undefined ? windowSec : undefined),
    });
  });
}

function responseSettings(options: HttpGuardOptions): ResponseSettings {
  const d = HTTP_GUARD_DEFAULTS;
  return {
    headersMode:
      options.rateLimitHeaders === undefined
        ? d.rateLimitHeaders
        : oneOf('rateLimitHeaders', options.rateLimitHeaders, ['all', 'refused', 'none'] as const),
    jitter: ratio('retryAfterJitter', options.retryAfterJitter ?? d.retryAfterJitter),
    maxRetryAfterSec: integer('maxRetryAfterSec', options.maxRetryAfterSec ?? d.maxRetryAfterSec, 1),
    random: options.random === undefined ? Math.random : fn('random', options.random),
    problem:
      options.problem === undefined
        ? undefined
        : fn<NonNullable<HttpGuardOptions['problem']>>('problem', options.problem),
    onRefused:
      options.onRefused === undefined
        ? undefined
        : fn<NonNullable<HttpGuardOptions['onRefused']>>('onRefused', options.onRefused),
  };
}

function bypassOption(
  value: HttpGuardOptions['bypass'],
): readonly string[] | ((req: IncomingMessage) => boolean) {
  if (typeof value === 'function') return value;
  const list = value ?? [];
  if (!Array.isArray(list)) throw new ConfigError('bypass', list, 'an array of paths or a function');
  return list.map((p, i) => pathOption(`bypass[${i}]`, p));
}

function turnBudget(options: HttpGuardOptions): TurnBudget | undefined {
  const anyShedder =
    (options.shedder !== undefined && options.shedder !== null) ||
    (options.routes ?? []).some((r) => r.shedder !== undefined && r.shedder !== null);
  return turnBudgetFor(options.turnBudgetMs, anyShedder);
}

/**
 * Validates and compiles the guard's options. Throws ConfigError naming the first bad option.
 * `hooks` hear of what requests do at run time (untrusted forwarding, bad computed values).
 */
export function parseGuardOptions(options: HttpGuardOptions, hooks: GuardHooks): GuardConfig {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', options, 'an object');
  knownKeys('HttpGuard', options, OPTIONS, NULLABLE);
  const d = HTTP_GUARD_DEFAULTS;
  const { addressOf, keyFn } = keyFunctions(options, hooks);
  const response = responseSettings(options);
  const turn = turnBudget(options);
  const statusPath =
    options.statusPath === undefined ? undefined : pathOption('statusPath', options.statusPath);
  if (options.governor !== undefined) fn('governor.snapshot', options.governor?.snapshot);
  const bypass = bypassOption(options.bypass);
  const ownedLimiters: ConcurrencyLimiter[] = [];
  const base = compileRoute('', {
    methods: undefined,
    prefix: undefined,
    match: undefined,
    bypass: false,
    limiter: checkLimiter('limiter', options.limiter),
    shedder: checkShedder('shedder', options.shedder),
    ownShedder: true,
    key: keyFn,
    keyed: options.key !== undefined || options.keyHeader !== undefined,
    priority: priorityFn('priority', options.priority, hooks.onInvalid),
    cost: costFn('cost', options.cost, hooks.onInvalid),
    maxWaitMs: finiteNumber('maxWaitMs', options.maxWaitMs ?? d.maxWaitMs, 0),
    concurrency: checkConcurrency('concurrency', options.concurrency, ownedLimiters),
    policyName: options.policyName ?? d.policyName,
    windowSec: options.windowSec,
  });
  const routes = routePolicies(
    options.routes ?? [],
    options.windowSec,
    base,
    addressOf,
    hooks.onInvalid,
    ownedLimiters,
  );
  const table = new RouteTable(routes, base, bypass);
  buildPipelines(table, turn);
  const compileRoutes = (next: unknown) => {
    const owned: ConcurrencyLimiter[] = [];
    try {
      const compiled = routePolicies(next, options.windowSec, base, addressOf, hooks.onInvalid, owned);
      return { routes: compiled, owned };
    } catch (err) {
      // Nothing of a refused change stays: limiters it created for its routes are closed.
      for (const l of owned) l.close();
      throw err;
    }
  };
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || name.length === 0 || name.length > 100)
    throw new ConfigError('name', name, 'a non-empty string of at most 100 characters');
  return {
    name,
    table,
    statusPath,
    statusPathFolded: statusPath?.toLowerCase(),
    usesPath: statusPath !== undefined || table.usesPath,
    governor: options.governor,
    response,
    turnBudgetMs: options.turnBudgetMs,
    turn,
    feedGovernor: feedGovernorOption(options.feedGovernor),
    ownedLimiters,
    compileRoutes,
  };
}

function feedGovernorOption(value: unknown): boolean {
  if (value === undefined) return true;
  if (typeof value !== 'boolean') throw new ConfigError('feedGovernor', value, 'true or false');
  return value;
}

/** (Re)builds every route's pipeline, after construction or when `attach` brings a shedder. */
export function buildPipelines(table: RouteTable, turn: TurnBudget | undefined): void {
  for (const r of table.all()) r.pipeline = routePipeline(r, turn);
}
