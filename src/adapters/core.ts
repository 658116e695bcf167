/**
 * The framework-neutral HTTP guard shared by `spillway/http`, `spillway/express` and
 * `spillway/fastify`. It works on node:http's IncomingMessage and ServerResponse (Express and
 * Fastify hand both through) and imports no framework.
 *
 * Admission order for one request:
 *
 *   status path? ─▶ JSON snapshot        bypass? ─▶ pass, not counted
 *   key limiter  ─▶ refused: 429 (limited/blocked) or 503 (its factor shed it)
 *   shedder      ─▶ refused: 503, and the key's charge is refunded when the limiter can (all-or-nothing)
 *   admitted     ─▶ counted in flight until the response finishes or the connection closes
 *
 * With `maxWaitMs > 0` the key limiter's `acquire` waits its turn instead of refusing at once; the
 * wait is aborted when the client disconnects (or the guard closes), and the request is counted as
 * queued meanwhile.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError, isAbortError } from '../errors.js';
import { priorityLevel } from '../limiters/priority.js';
import { type QueueDepthOptions, queueDepth } from '../signals/queue-depth.js';
import type { Signal } from '../signals/types.js';
import type { Decision, Priority } from '../limiters/types.js';
import { TurnBudget } from './turn-budget.js';
import { boolean, finiteNumber, fn, integer, knownKeys, oneOf, ratio } from '../validate.js';
import {
  addressKey,
  clientAddress,
  compileTrust,
  type ForwardedHeader,
  type TrustFn,
  type TrustProxy,
  type UntrustedForwarding,
} from './client-address.js';
import {
  defaultProblemBody,
  formatPolicy,
  formatRateLimit,
  type ProblemDetails,
  retryAfterSeconds,
  sfString,
} from './headers.js';

/** Per-key admission: a KeyedLimiter (`createLimiter`) fits, or anything with the same `take`. */
export interface KeyAdmission {
  take(key: string, options: { cost: number; priority: Priority }): Decision;
  /** Used in queueing mode (`maxWaitMs > 0`); without it the guard refuses at once. */
  acquire?(
    key: string,
    options: { cost: number; priority: Priority; maxWaitMs: number; signal: AbortSignal },
  ): Promise<Decision>;
  /**
   * What `take` would answer, without charging. With it (and a shedder), the guard asks the key
   * first, then the shedder, and charges the key only when both admit: all-or-nothing.
   */
  peek?(key: string, options: { cost: number; priority: Priority }): Decision;
  /** Without `peek`: called to give back a key's charge when the shedder then refuses. */
  refund?(key: string, cost: number): void;
  /** When both are numbers, `RateLimit-Policy` advertises `w = burst / ratePerSec` seconds. */
  readonly ratePerSec?: number;
  readonly burst?: number;
}

/** Process-level admission: a Shedder fits. A refusal always means 503. */
export interface ProcessAdmission {
  admit(options: { priority: Priority; cost: number }): Decision;
}

/** What the status endpoint reports: a Governor fits. */
export interface SnapshotSource {
  snapshot(): unknown;
}

export type RequestValue<T> = T | ((req: IncomingMessage) => T);

/** Why and how a request is refused: what `onRefused` and `problem` receive. */
export interface Refusal {
  /** 429 when the key is over its quota, 503 when the process sheds load. */
  readonly status: 429 | 503;
  /** The decision that refused (the key limiter's, or the shedder's for a 503 from it). */
  readonly decision: Decision;
  /** Which stage refused. */
  readonly stage: 'key' | 'process';
  readonly key: string;
  readonly priority: Priority;
  readonly cost: number;
  /** The `Retry-After` value in seconds (integer ≥ 1; jittered on 503). */
  readonly retryAfterSec: number;
  /** The quota policy name of the route. */
  readonly policyName: string;
  /** The headers the default response sends (lower-case names), `content-type` and `content-length` included. */
  readonly headers: Readonly<Record<string, string>>;
  /** The default body (problem+json). */
  readonly body: string;
}

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
   * governor can even see the overload. `false` turns it off. See TurnBudget.
   * @default 25 when a `shedder` is set, else off
   */
  turnBudgetMs?: number | false;
}

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
  'policyName',
  'windowSec',
] as const;

/** Which of the guard's counts to offer a governor, and where pressure starts and peaks (in requests). */
export interface GuardSignalsOptions {
  /** Requests admitted and not finished. */
  inFlight?: QueueDepthOptions;
  /** Requests waiting in queueing mode. */
  queued?: QueueDepthOptions;
  /** Signal name prefix: `<name>-in-flight`, `<name>-queued`. @default 'http' */
  name?: string;
}

/** What the guard decided for one request. */
export type Outcome =
  | { readonly kind: 'pass' }
  | { readonly kind: 'status' }
  | { readonly kind: 'gone' }
  | { readonly kind: 'refused'; readonly refusal: Refusal };

const PASS: Outcome = Object.freeze({ kind: 'pass' });
const STATUS: Outcome = Object.freeze({ kind: 'status' });
const GONE: Outcome = Object.freeze({ kind: 'gone' });

interface Route {
  methods: ReadonlySet<string> | undefined;
  prefix: string | undefined;
  match: ((req: IncomingMessage) => boolean) | undefined;
  bypass: boolean;
  limiter: KeyAdmission | undefined;
  shedder: ProcessAdmission | undefined;
  /** The route set its own shedder (or null), so `attach` leaves it alone. */
  ownShedder: boolean;
  key: (req: IncomingMessage) => string;
  priority: (req: IncomingMessage) => Priority;
  cost: (req: IncomingMessage) => number;
  maxWaitMs: number;
  policyName: string;
  policyQuoted: string;
  policyJson: string;
  windowSec: number | undefined;
}

/** A guard whose wait ended because it closed, refused as a shed. */
const CLOSING: Decision = Object.freeze({
  allowed: false,
  reason: 'shed',
  remaining: 0,
  limit: 0,
  retryAfterMs: 1000,
  resetMs: 1000,
  factor: 0,
});

/** Segment-boundary prefix match: `/api` matches `/api`, `/api/`, `/api/x`, not `/apix`. */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.endsWith('/') || path.charCodeAt(prefix.length) === 47;
}

function requestPath(req: IncomingMessage): string {
  // Express rewrites req.url under a mount point; originalUrl keeps the full path.
  const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function valueFn<T>(value: RequestValue<T> | undefined, fallback: T, check: (v: unknown) => T) {
  if (typeof value === 'function') return value as (req: IncomingMessage) => T;
  const v = value === undefined ? fallback : check(value);
  return () => v;
}

function pathOption(option: string, value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/'))
    throw new ConfigError(option, value, "a path starting with '/'");
  return value;
}

export class HttpGuard {
  readonly #routes: Route[];
  readonly #default: Route;
  readonly #bypassPaths: readonly string[];
  readonly #bypassFn: ((req: IncomingMessage) => boolean) | undefined;
  readonly #statusPath: string | undefined;
  #governor: SnapshotSource | undefined;
  readonly #headersMode: 'all' | 'refused' | 'none';
  readonly #jitter: number;
  readonly #maxRetryAfterSec: number;
  readonly #random: () => number;
  #turn: TurnBudget | undefined;
  readonly #turnBudgetMs: number | false | undefined;
  readonly #problem: HttpGuardOptions['problem'];
  readonly #onRefused: HttpGuardOptions['onRefused'];
  readonly #waits = new Set<AbortController>();
  #inFlight = 0;
  #malformedForwarded = 0;
  readonly #onUntrusted = (why: UntrustedForwarding): void => {
    if (why === 'malformed') this.#malformedForwarded++;
  };
  #queued = 0;
  #closed = false;

  constructor(options: HttpGuardOptions = {}) {
    if (typeof options !== 'object' || options === null)
      throw new ConfigError('options', options, 'an object');
    knownKeys('HttpGuard', options, OPTIONS);
    const d = HTTP_GUARD_DEFAULTS;
    const trust: TrustFn | undefined = compileTrust('trustProxy', options.trustProxy);
    const kind =
      options.forwardedHeader === undefined
        ? d.forwardedHeader
        : oneOf('forwardedHeader', options.forwardedHeader, ['x-forwarded-for', 'forwarded'] as const);
    const subnet = integer('ipv6Subnet', options.ipv6Subnet ?? d.ipv6Subnet, 1, 128);
    const addressOf =
      trust === undefined
        ? (req: IncomingMessage) => addressKey(req.socket.remoteAddress ?? 'unknown', subnet)
        : (req: IncomingMessage) => {
            const raw = req.headers[kind];
            const header = Array.isArray(raw) ? raw.join(',') : raw;
            return addressKey(
              clientAddress(req.socket.remoteAddress ?? 'unknown', header, kind, trust, this.#onUntrusted),
              subnet,
            );
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
      const fallback = keyFn;
      keyFn = (req) => user(req) ?? fallback(req);
    }

    this.#headersMode =
      options.rateLimitHeaders === undefined
        ? d.rateLimitHeaders
        : oneOf('rateLimitHeaders', options.rateLimitHeaders, ['all', 'refused', 'none'] as const);
    this.#jitter = ratio('retryAfterJitter', options.retryAfterJitter ?? d.retryAfterJitter);
    this.#maxRetryAfterSec = integer('maxRetryAfterSec', options.maxRetryAfterSec ?? d.maxRetryAfterSec, 1);
    this.#random = options.random === undefined ? Math.random : fn('random', options.random);
    const turnBudgetMs = options.turnBudgetMs;
    this.#turnBudgetMs = turnBudgetMs;
    if (turnBudgetMs === false) this.#turn = undefined;
    else if (turnBudgetMs !== undefined) this.#turn = new TurnBudget({ budgetMs: turnBudgetMs });
    else {
      const anyShedder =
        (options.shedder !== undefined && options.shedder !== null) ||
        (options.routes ?? []).some((r) => r.shedder !== undefined && r.shedder !== null);
      this.#turn = anyShedder ? new TurnBudget() : undefined;
    }
    this.#problem =
      options.problem === undefined
        ? undefined
        : fn<NonNullable<HttpGuardOptions['problem']>>('problem', options.problem);
    this.#onRefused =
      options.onRefused === undefined
        ? undefined
        : fn<NonNullable<HttpGuardOptions['onRefused']>>('onRefused', options.onRefused);
    this.#statusPath =
      options.statusPath === undefined ? undefined : pathOption('statusPath', options.statusPath);
    if (options.governor !== undefined) fn('governor.snapshot', options.governor?.snapshot);
    this.#governor = options.governor;

    if (typeof options.bypass === 'function') {
      this.#bypassFn = options.bypass;
      this.#bypassPaths = [];
    } else {
      const list = options.bypass ?? [];
      if (!Array.isArray(list)) throw new ConfigError('bypass', list, 'an array of paths or a function');
      this.#bypassPaths = list.map((p, i) => pathOption(`bypass[${i}]`, p));
      this.#bypassFn = undefined;
    }

    const base: Route = this.#route('', {
      methods: undefined,
      prefix: undefined,
      match: undefined,
      bypass: false,
      limiter: checkLimiter('limiter', options.limiter),
      shedder: checkShedder('shedder', options.shedder),
      ownShedder: true,
      key: keyFn,
      priority: valueFn(options.priority, d.priority, (v) => {
        priorityLevel(v as Priority);
        return v as Priority;
      }),
      cost: valueFn(options.cost, d.cost, (v) => finiteNumber('cost', v, Number.MIN_VALUE)),
      maxWaitMs: finiteNumber('maxWaitMs', options.maxWaitMs ?? d.maxWaitMs, 0),
      policyName: options.policyName ?? d.policyName,
      windowSec: options.windowSec,
    });
    this.#default = base;

    const routes = options.routes ?? [];
    if (!Array.isArray(routes)) throw new ConfigError('routes', routes, 'an array of route policies');
    this.#routes = routes.map((r: RoutePolicy, i) => {
      const at = `routes[${i}]`;
      if (typeof r !== 'object' || r === null) throw new ConfigError(at, r, 'a route policy object');
      knownKeys(at, r, ROUTE_OPTIONS);
      const methods =
        r.method === undefined
          ? undefined
          : new Set(
              (typeof r.method === 'string' ? [r.method] : r.method).map((m) => String(m).toUpperCase()),
            );
      return this.#route(at, {
        methods,
        prefix: r.path === undefined ? undefined : pathOption(`${at}.path`, r.path),
        match:
          r.match === undefined ? undefined : fn<(req: IncomingMessage) => boolean>(`${at}.match`, r.match),
        bypass: r.bypass === undefined ? false : boolean(`${at}.bypass`, r.bypass),
        limiter: r.limiter === undefined ? base.limiter : checkLimiter(`${at}.limiter`, r.limiter),
        shedder: r.shedder === undefined ? base.shedder : checkShedder(`${at}.shedder`, r.shedder),
        ownShedder: r.shedder !== undefined,
        key: r.key === undefined ? base.key : withFallback(fn(`${at}.key`, r.key), addressOf),
        priority:
          r.priority === undefined
            ? base.priority
            : valueFn(r.priority, d.priority, (v) => {
                priorityLevel(v as Priority);
                return v as Priority;
              }),
        cost:
          r.cost === undefined
            ? base.cost
            : valueFn(r.cost, d.cost, (v) => finiteNumber(`${at}.cost`, v, Number.MIN_VALUE)),
        maxWaitMs:
          r.maxWaitMs === undefined ? base.maxWaitMs : finiteNumber(`${at}.maxWaitMs`, r.maxWaitMs, 0),
        policyName: r.policyName ?? base.policyName,
        windowSec: r.windowSec ?? (r.limiter === undefined ? options.windowSec : undefined),
      });
    });
  }

  #route(
    at: string,
    r: Omit<Route, 'policyQuoted' | 'policyJson' | 'windowSec'> & { windowSec: number | undefined },
  ): Route {
    const prefix = at === '' ? '' : `${at}.`;
    const policyQuoted = sfString(`${prefix}policyName`, r.policyName);
    let windowSec = r.windowSec;
    if (windowSec !== undefined) finiteNumber(`${prefix}windowSec`, windowSec, Number.MIN_VALUE);
    else if (r.limiter && typeof r.limiter.burst === 'number' && typeof r.limiter.ratePerSec === 'number') {
      if (r.limiter.ratePerSec > 0) windowSec = r.limiter.burst / r.limiter.ratePerSec;
    }
    return { ...r, policyQuoted, policyJson: JSON.stringify(r.policyName), windowSec };
  }

  /**
   * Sets the governor (status endpoint) and the shedder after construction, for the usual wiring
   * where the governor watches this guard's own `signals()` and the shedder follows the governor:
   * guard first, then governor, then `attach`. Routes with their own `shedder` keep it.
   */
  attach(parts: { governor?: SnapshotSource; shedder?: ProcessAdmission | null }): this {
    if (typeof parts !== 'object' || parts === null) throw new ConfigError('attach', parts, 'an object');
    knownKeys('attach', parts, ['governor', 'shedder']);
    if (parts.governor !== undefined) {
      fn('governor.snapshot', parts.governor?.snapshot);
      this.#governor = parts.governor;
    }
    if (parts.shedder !== undefined) {
      const shedder = checkShedder('shedder', parts.shedder);
      this.#default.shedder = shedder;
      for (const r of this.#routes) if (!r.ownShedder) r.shedder = shedder;
      // The default turn budget comes with a shedder, however it arrives.
      if (shedder !== undefined && this.#turn === undefined && this.#turnBudgetMs === undefined) {
        this.#turn = new TurnBudget();
      }
    }
    return this;
  }

  /** Requests admitted and not yet finished. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Requests whose forwarding header was malformed and so not believed (keyed by the socket peer). */
  get malformedForwarded(): number {
    return this.#malformedForwarded;
  }

  /** Requests waiting for their key limiter (queueing mode). */
  get queued(): number {
    return this.#queued;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queue-depth signals for a governor, reading this guard's counts: `<name>-in-flight` (admitted,
   * not finished) and `<name>-queued` (waiting in queueing mode). Give a `{ target, limit }` (in
   * requests) for each one you want; only you know what your service holds.
   */
  signals(options: GuardSignalsOptions): Signal[] {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError(
        'signals.options',
        options,
        'an object with inFlight and/or queued { target, limit }',
      );
    }
    knownKeys('signals', options, ['inFlight', 'queued', 'name']);
    const name = options.name ?? 'http';
    const out: Signal[] = [];
    if (options.inFlight !== undefined) {
      out.push(queueDepth(`${name}-in-flight`, () => this.#inFlight, options.inFlight));
    }
    if (options.queued !== undefined)
      out.push(queueDepth(`${name}-queued`, () => this.#queued, options.queued));
    if (out.length === 0) {
      throw new ConfigError(
        'signals.options',
        options,
        'an object with inFlight and/or queued { target, limit }',
      );
    }
    return out;
  }

  /**
   * Decides for one request. Synchronous unless the request has to wait (queueing mode). On
   * `pass` after admission, the request is counted in flight and released exactly once, when the
   * response finishes or its connection closes, whatever the handler does.
   */
  /** The loop-turn budget, when on. */
  get turnBudget(): TurnBudget | undefined {
    return this.#turn;
  }

  /** The process-level refusal for a request (loop-turn budget, then shedder), or undefined to admit. */
  #processRefusal(route: Route, opts: { cost: number; priority: Priority }): Decision | undefined {
    const turn = this.#turn;
    if (turn !== undefined) {
      const t = turn.admit(opts);
      if (!t.allowed) return t;
    }
    const shedder = route.shedder;
    if (shedder !== undefined) {
      const d = shedder.admit(opts);
      if (!d.allowed) return d;
    }
    return undefined;
  }

  check(req: IncomingMessage, res: ServerResponse): Outcome | Promise<Outcome> {
    const path = requestPath(req);
    if (path === this.#statusPath) return STATUS;
    if (this.#bypassFn !== undefined ? this.#bypassFn(req) : this.#bypassed(path)) return PASS;
    const route = this.#match(req, path);
    if (route.bypass) return PASS;
    const key = route.key(req);
    const priority = route.priority(req);
    const cost = route.cost(req);
    const limiter = route.limiter;
    if (limiter === undefined) return this.#process(res, route, undefined, key, priority, cost);
    if (route.maxWaitMs > 0 && limiter.acquire !== undefined) {
      return this.#wait(res, route, limiter, key, priority, cost);
    }
    const opts = { cost, priority };
    if ((route.shedder !== undefined || this.#turn !== undefined) && limiter.peek !== undefined) {
      // All-or-nothing: charge the key only once the process has admitted too.
      const p = limiter.peek(key, opts);
      if (p.allowed) {
        const s = this.#processRefusal(route, opts);
        if (s !== undefined) return this.#refuse(route, s, 'process', key, priority, cost, p);
        const d = limiter.take(key, opts);
        if (d.allowed) return this.#admitted(res, route, d);
        return this.#refuse(route, d, 'key', key, priority, cost);
      }
      // Refused: `take` records the refusal (a block streak counts it) and answers the same.
    }
    const d = limiter.take(key, opts);
    if (!d.allowed) return this.#refuse(route, d, 'key', key, priority, cost);
    return this.#process(res, route, d, key, priority, cost);
  }

  #bypassed(path: string): boolean {
    for (const p of this.#bypassPaths) if (pathHasPrefix(path, p)) return true;
    return false;
  }

  #match(req: IncomingMessage, path: string): Route {
    for (const r of this.#routes) {
      if (r.methods !== undefined && !r.methods.has(req.method ?? 'GET')) continue;
      if (r.prefix !== undefined && !pathHasPrefix(path, r.prefix)) continue;
      if (r.match !== undefined && !r.match(req)) continue;
      return r;
    }
    return this.#default;
  }

  async #wait(
    res: ServerResponse,
    route: Route,
    limiter: KeyAdmission,
    key: string,
    priority: Priority,
    cost: number,
  ): Promise<Outcome> {
    if (this.#closed) return this.#refuse(route, CLOSING, 'process', key, priority, cost);
    const ac = new AbortController();
    let gone = res.destroyed;
    const onClose = (): void => {
      gone = true;
      ac.abort();
    };
    res.once('close', onClose);
    this.#waits.add(ac);
    this.#queued++;
    let d: Decision;
    try {
      if (gone) ac.abort();
      d = await limiter.acquire!(key, { cost, priority, maxWaitMs: route.maxWaitMs, signal: ac.signal });
    } catch (err) {
      if (!isAbortError(err)) throw err;
      if (gone) return GONE;
      return this.#refuse(route, CLOSING, 'process', key, priority, cost);
    } finally {
      this.#queued--;
      this.#waits.delete(ac);
      res.off('close', onClose);
    }
    if (gone || res.destroyed) {
      if (d.allowed) limiter.refund?.(key, cost);
      return GONE;
    }
    if (!d.allowed) return this.#refuse(route, d, 'key', key, priority, cost);
    return this.#process(res, route, d, key, priority, cost);
  }

  #process(
    res: ServerResponse,
    route: Route,
    keyDecision: Decision | undefined,
    key: string,
    priority: Priority,
    cost: number,
  ): Outcome {
    {
      const s = this.#processRefusal(route, { priority, cost });
      if (s !== undefined) {
        let shown = keyDecision;
        if (keyDecision !== undefined && route.limiter?.refund !== undefined) {
          route.limiter.refund(key, cost);
          shown = { ...keyDecision, remaining: keyDecision.remaining + cost };
        }
        return this.#refuse(route, s, 'process', key, priority, cost, shown);
      }
    }
    return this.#admitted(res, route, keyDecision);
  }

  #admitted(res: ServerResponse, route: Route, keyDecision: Decision | undefined): Outcome {
    this.#admit(res);
    if (keyDecision !== undefined && this.#headersMode === 'all' && Number.isFinite(keyDecision.limit)) {
      res.setHeader('ratelimit-policy', formatPolicy(route.policyQuoted, keyDecision.limit, route.windowSec));
      res.setHeader(
        'ratelimit',
        formatRateLimit(route.policyQuoted, keyDecision.remaining, keyDecision.resetMs / 1000),
      );
    }
    return PASS;
  }

  #admit(res: ServerResponse): void {
    this.#inFlight++;
    // A ServerResponse emits 'close' exactly once: after 'finish' when the response completed, or
    // when its connection ended first (an error, a client abort, a handler that never answered).
    // One listener is enough to release once, on the hot path.
    res.once('close', this.#release);
  }

  readonly #release = (): void => {
    this.#inFlight--;
  };

  #refuse(
    route: Route,
    d: Decision,
    stage: 'key' | 'process',
    key: string,
    priority: Priority,
    cost: number,
    keyDecision: Decision | undefined = stage === 'key' ? d : undefined,
  ): Outcome {
    const status: 429 | 503 = stage === 'process' || d.reason === 'shed' ? 503 : 429;
    const retryAfterSec = retryAfterSeconds(d.retryAfterMs, {
      maxSec: this.#maxRetryAfterSec,
      jitter: status === 503 ? this.#jitter : 0,
      random: this.#random,
    });
    const body = defaultProblemBody(status, retryAfterSec, route.policyJson);
    const headers: Record<string, string> = {
      'content-type': 'application/problem+json',
      'content-length': String(Buffer.byteLength(body)),
      'retry-after': String(retryAfterSec),
    };
    // Refused because the guard closes with its server: let the connection go too, so that the
    // server's close is not held up by an idle keep-alive socket.
    if (d === CLOSING) headers.connection = 'close';
    if (keyDecision !== undefined && this.#headersMode !== 'none' && Number.isFinite(keyDecision.limit)) {
      headers['ratelimit-policy'] = formatPolicy(route.policyQuoted, keyDecision.limit, route.windowSec);
      headers.ratelimit = formatRateLimit(
        route.policyQuoted,
        keyDecision.remaining,
        keyDecision.resetMs / 1000,
      );
    }
    const refusal: Refusal = {
      status,
      decision: d,
      stage,
      key,
      priority,
      cost,
      retryAfterSec,
      policyName: route.policyName,
      headers,
      body,
    };
    return { kind: 'refused', refusal };
  }

  /**
   * The body for a refusal: the default problem+json, or the `problem` builder's answer. Returns
   * the body and the headers to send with it.
   */
  responseFor(refusal: Refusal, req: IncomingMessage): { headers: Record<string, string>; body: string } {
    if (this.#problem === undefined)
      return { headers: refusal.headers as Record<string, string>, body: refusal.body };
    const body = JSON.stringify(this.#problem(refusal, req));
    return {
      headers: { ...refusal.headers, 'content-length': String(Buffer.byteLength(body)) },
      body,
    };
  }

  /** Writes a refusal on a node:http response (or hands it to `onRefused`). Cheap: no body is read. */
  sendRefusal(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
    if (this.#onRefused !== undefined) {
      this.#onRefused(req, res, refusal);
      return;
    }
    const { headers, body } = this.responseFor(refusal, req);
    res.writeHead(refusal.status, headers);
    res.end(body);
  }

  /** True when the user supplied `onRefused` (adapters then hand the raw response over). */
  get customRefusal(): boolean {
    return this.#onRefused !== undefined;
  }

  /** The status endpoint's JSON: the governor's snapshot plus this guard's counts. */
  status(): Record<string, unknown> {
    const snap = this.#governor?.snapshot();
    return {
      ...(typeof snap === 'object' && snap !== null ? snap : {}),
      inFlight: this.#inFlight,
      queued: this.#queued,
    };
  }

  /** Writes the status JSON on a node:http response. */
  sendStatus(res: ServerResponse): void {
    const body = JSON.stringify(this.status());
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
    });
    res.end(body);
  }

  /**
   * Runs a node:http style handler behind the guard: `next` is called when the request is
   * admitted (or bypassed); refusals and the status endpoint are answered here. `onError` gets
   * any error the guard itself raises (a key or cost function that throws).
   */
  handle(req: IncomingMessage, res: ServerResponse, next: () => void, onError: (err: unknown) => void): void {
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = this.check(req, res);
    } catch (err) {
      onError(err);
      return;
    }
    if (outcome instanceof Promise) {
      outcome.then((o) => this.#apply(req, res, o, next), onError);
    } else {
      this.#apply(req, res, outcome, next);
    }
  }

  #apply(req: IncomingMessage, res: ServerResponse, o: Outcome, next: () => void): void {
    switch (o.kind) {
      case 'pass':
        next();
        return;
      case 'refused':
        this.sendRefusal(req, res, o.refusal);
        return;
      case 'status':
        this.sendStatus(res);
        return;
      case 'gone':
        return;
    }
  }

  /**
   * Wraps a node:http request listener. Admitted requests reach `listener`; refusals and the status
   * endpoint are answered here. A listener that throws (or whose promise rejects) goes to
   * `onError`, which by default answers 500 (or destroys a response already started) and reports
   * the error with `process.emitWarning`; either way the request's slot is released when the
   * response ends or its connection closes.
   */
  wrap(listener: RequestListener, onError: ErrorHandler = defaultOnError): RequestListener {
    if (typeof listener !== 'function')
      throw new ConfigError('listener', listener, 'a request listener function');
    fn('onError', onError);
    return (req, res) => {
      const fail = (err: unknown): void => onError(err, req, res);
      this.handle(
        req,
        res,
        () => {
          let r: unknown;
          try {
            r = listener(req, res);
          } catch (err) {
            fail(err);
            return;
          }
          if (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function') {
            (r as Promise<unknown>).then(undefined, fail);
          }
        },
        fail,
      );
    };
  }

  /**
   * Stops the guard: every request still waiting for its key limiter is refused with 503 at once,
   * and later waits are refused. Admitted requests are unaffected and still release when done.
   */
  close(): void {
    this.#closed = true;
    for (const ac of this.#waits) ac.abort(new Error('spillway guard closed'));
    this.#waits.clear();
  }
}

/** A node:http request listener. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

/** Handles an error thrown by a wrapped listener (or by the guard's own key/cost functions). */
export type ErrorHandler = (err: unknown, req: IncomingMessage, res: ServerResponse) => void;

/** Answers 500 when nothing was sent yet (else cuts the response short) and reports the error as a process warning. */
export function defaultOnError(err: unknown, _req: IncomingMessage, res: ServerResponse): void {
  if (!res.headersSent) {
    const body = 'Internal Server Error';
    res.writeHead(500, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(body.length),
    });
    res.end(body);
  } else {
    res.destroy();
  }
  process.emitWarning(err instanceof Error ? err : new Error(String(err)));
}

function withFallback(
  user: (req: IncomingMessage) => string | undefined,
  fallback: (req: IncomingMessage) => string,
): (req: IncomingMessage) => string {
  return (req) => user(req) ?? fallback(req);
}

function checkLimiter(option: string, value: unknown): KeyAdmission | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || typeof (value as KeyAdmission).take !== 'function') {
    throw new ConfigError(option, value, 'a keyed limiter with take(key, { cost, priority })');
  }
  return value as KeyAdmission;
}

function checkShedder(option: string, value: unknown): ProcessAdmission | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || typeof (value as ProcessAdmission).admit !== 'function') {
    throw new ConfigError(option, value, 'a shedder with admit({ priority, cost })');
  }
  return value as ProcessAdmission;
}

/** Creates a guard; see HttpGuardOptions. */
export function createGuard(options: HttpGuardOptions = {}): HttpGuard {
  return new HttpGuard(options);
}
