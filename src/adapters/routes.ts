/**
 * Routing: which policy applies to a request (first matching route, else the guard's default), and
 * the request's path as the guard matches it.
 */
import type { IncomingMessage } from 'node:http';
import { admissionPipeline, type Pipeline } from '../admission/pipeline.js';
import type { KeyAdmission, ProcessAdmission } from '../admission/stages.js';
import type { TurnBudget } from '../admission/turn-budget.js';
import type { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import type { Priority } from '../limiters/types.js';

/** A compiled route policy (or the guard's default). */
export interface Route {
  readonly methods: ReadonlySet<string> | undefined;
  readonly prefix: string | undefined;
  readonly match: ((req: IncomingMessage) => boolean) | undefined;
  readonly bypass: boolean;
  readonly limiter: KeyAdmission | undefined;
  shedder: ProcessAdmission | undefined;
  /** The route set its own shedder (or null), so `attach` leaves it alone. */
  readonly ownShedder: boolean;
  readonly key: (req: IncomingMessage) => string;
  /** A key function was configured (`key`, `keyHeader`, the route's `key`): the concurrency stage is fair between keys. */
  readonly keyed: boolean;
  readonly priority: (req: IncomingMessage) => Priority;
  readonly cost: (req: IncomingMessage) => number;
  readonly maxWaitMs: number;
  /** The route's concurrency limiter (bounded in-flight work and queue time), if any. */
  readonly concurrency: ConcurrencyLimiter | undefined;
  readonly policyName: string;
  readonly policyQuoted: string;
  readonly policyJson: string;
  /**
   * The last `RateLimit-Policy` value sent and the limit and window it was formatted for (see
   * setQuotaHeaders).
   */
  readonly policyField: { limit: number; windowSec: number | undefined; value: string };
  /**
   * The last `RateLimit` value sent on an admitted response and the `r` and `t` it was formatted
   * for (see setQuotaHeaders).
   */
  readonly rateLimitField: { remaining: number; resetSec: number; value: string };
  /** The policy window `w` in seconds when the options fix it (`windowSec`); else see `windowLimiter`. */
  readonly windowSec: number | undefined;
  /**
   * When no `windowSec` is set and the limiter exposes its `burst` and `ratePerSec`: the limiter the
   * window (`burst / ratePerSec`) is read from at each response, since a policy reload changes
   * them on the same limiter object.
   */
  readonly windowLimiter: WindowSource | undefined;
  /** A bounded label for decision messages: the route's `policyName` when it set one, else its path, else 'default'. */
  readonly label: string;
  /** The route's admission pipeline: key limiter, loop-turn budget, shedder, concurrency (those it has). */
  pipeline: Pipeline;
}

/**
 * A limiter that tells its limits at factor 1 (KeyedLimiter, StoreLimiter, a policy's limiter),
 * and, when keys have tiers of their own, each key's.
 */
export interface WindowSource {
  readonly burst: number;
  readonly ratePerSec: number;
  readonly hasTiers?: boolean;
  limitsOf?(key: string): { readonly burst: number; readonly ratePerSec: number };
}

/**
 * The route's policy window in seconds for `key`, as of now: the fixed one, else its limiter's
 * `burst / ratePerSec`, of the key's tier when keys have tiers.
 */
export function routeWindowSec(route: Route, key: string | undefined): number | undefined {
  const l = route.windowLimiter;
  if (l === undefined) return route.windowSec;
  const limits = l.hasTiers === true && key !== undefined && l.limitsOf !== undefined ? l.limitsOf(key) : l;
  const rate = limits.ratePerSec;
  return rate > 0 ? limits.burst / rate : undefined;
}

/**
 * The route's pipeline: its parts in the one order `admissionPipeline` gives (see there). A route
 * that inherits the guard's concurrency limiter shares it: one limit for all of them.
 */
export function routePipeline(route: Route, turn: TurnBudget | undefined): Pipeline {
  return admissionPipeline({
    limiter: route.limiter,
    maxWaitMs: route.maxWaitMs,
    turn,
    shedder: route.shedder,
    concurrency: route.concurrency,
    fairKeys: route.keyed,
  });
}

/** Segment-boundary prefix match: `/api` matches `/api`, `/api/`, `/api/x`, not `/apix`. */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.endsWith('/') || path.charCodeAt(prefix.length) === 47;
}

/**
 * True when the request comes through an Express app that routes case-insensitively (its default,
 * unless `case sensitive routing` is enabled): the guard then matches paths the same way.
 */
export function foldsCase(req: IncomingMessage): boolean {
  const app = (req as { app?: { enabled?: (setting: string) => boolean } }).app;
  return app !== undefined && typeof app.enabled === 'function' && !app.enabled('case sensitive routing');
}

/**
 * The request's path as the guard matches it: without the query, normalised (see normalizePath),
 * and lower-cased when `folded` (the router ignores case).
 */
export function requestPath(req: IncomingMessage, folded = false): string {
  // Express rewrites req.url under a mount point; originalUrl keeps the full path.
  const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  const q = url.indexOf('?');
  const path = normalizePath(q < 0 ? url : url.slice(0, q));
  return folded ? path.toLowerCase() : path;
}

/** The routes of a guard, matched in order, and its bypass list. */
export class RouteTable {
  readonly routes: readonly Route[];
  readonly fallback: Route;
  /**
   * Whether matching reads the request's path (a bypass path or a route with a path prefix): when
   * not, the guard does not compute it at all.
   */
  readonly usesPath: boolean;
  readonly #bypassPaths: readonly string[];
  /** The bypass paths lower-cased once, for routers that ignore case. */
  readonly #bypassFolded: readonly string[];
  /** Each route's prefix lower-cased once (same order as `routes`). */
  readonly #prefixFolded: readonly (string | undefined)[];
  readonly #bypassFn: ((req: IncomingMessage) => boolean) | undefined;

  constructor(
    routes: readonly Route[],
    fallback: Route,
    bypass: readonly string[] | ((req: IncomingMessage) => boolean),
  ) {
    this.routes = routes;
    this.fallback = fallback;
    if (typeof bypass === 'function') {
      this.#bypassFn = bypass;
      this.#bypassPaths = [];
    } else {
      this.#bypassFn = undefined;
      this.#bypassPaths = bypass;
    }
    this.#bypassFolded = this.#bypassPaths.map((p) => p.toLowerCase());
    this.#prefixFolded = routes.map((r) => r.prefix?.toLowerCase());
    this.usesPath = this.#bypassPaths.length > 0 || routes.some((r) => r.prefix !== undefined);
  }

  /** True when the request skips the guard (bypass list or predicate). `folded`: `path` is lower-cased. */
  bypassed(req: IncomingMessage, path: string, folded = false): boolean {
    if (this.#bypassFn !== undefined) return this.#bypassFn(req);
    for (const p of folded ? this.#bypassFolded : this.#bypassPaths) if (pathHasPrefix(path, p)) return true;
    return false;
  }

  /** The first route whose method, path and predicate match, else the default. */
  match(req: IncomingMessage, path: string, folded = false): Route {
    const routes = this.routes;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (r.methods !== undefined && !r.methods.has(req.method ?? 'GET')) continue;
      if (r.prefix !== undefined && !pathHasPrefix(path, folded ? this.#prefixFolded[i]! : r.prefix))
        continue;
      if (r.match !== undefined && !r.match(req)) continue;
      return r;
    }
    return this.fallback;
  }

  /** Every route, the default last. */
  all(): Route[] {
    return [...this.routes, this.fallback];
  }

  /** The same default route and bypass list with other routes. */
  withRoutes(routes: readonly Route[]): RouteTable {
    return new RouteTable(routes, this.fallback, this.#bypassFn ?? this.#bypassPaths);
  }
}

/**
 * Closes a concurrency limiter that routes no longer use, once its last waiter is answered and its
 * last permit released: nothing in flight or waiting is cut short by a route change.
 */
export function closeWhenIdle(limiter: ConcurrencyLimiter): void {
  const idle = () => limiter.inFlight === 0 && limiter.waiting === 0;
  if (idle()) {
    limiter.close();
    return;
  }
  const check = (): void => {
    if (!idle()) return;
    limiter.off('released', check);
    limiter.off('refused', check);
    limiter.close();
  };
  limiter.on('released', check);
  limiter.on('refused', check);
}

const UNRESERVED = /%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/g;

function decodeUnreserved(path: string): string {
  return path.replace(UNRESERVED, (m) => String.fromCharCode(Number.parseInt(m.slice(1), 16)));
}

/** RFC 3986 §5.2.4 remove_dot_segments, on an absolute path without duplicate slashes. */
function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      // A trailing dot segment leaves a trailing slash: `/a/.` is `/a/`.
      if (i === segments.length - 1) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/**
 * The path the guard matches `bypass`, `routes` and `statusPath` against: the absolute form
 * (`http://host/p`) reduced to its path, percent-encoded unreserved characters decoded
 * (`%6c` is `l`, `%2e` is `.`), duplicate slashes collapsed, dot segments resolved. Reserved
 * characters stay encoded (`%2F` is not a separator). A request target that is not a path
 * (`*`, an authority) is returned as it is.
 */
export function normalizePath(path: string): string {
  if (path.charCodeAt(0) !== 47) {
    const scheme = path.indexOf('://');
    if (scheme <= 0) return path;
    const slash = path.indexOf('/', scheme + 3);
    path = slash < 0 ? '/' : path.slice(slash);
  }
  // Fast path: nothing to normalise in most requests.
  if (path.indexOf('%') < 0 && path.indexOf('//') < 0 && path.indexOf('/.') < 0) return path;
  if (path.indexOf('%') >= 0) path = decodeUnreserved(path);
  if (path.indexOf('//') >= 0) path = path.replace(/\/{2,}/g, '/');
  if (path.indexOf('/.') >= 0) path = removeDotSegments(path);
  return path;
}
