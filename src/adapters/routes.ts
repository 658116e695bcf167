/**
 * Routing: which policy applies to a request (first matching route, else the guard's default), and
 * the request's path as the guard matches it.
 */
import type { IncomingMessage } from 'node:http';
import { Pipeline } from '../admission/pipeline.js';
import type { AdmissionRequest, Stage } from '../admission/stage.js';
import { type KeyAdmission, keyStage, type ProcessAdmission, shedderStage } from '../admission/stages.js';
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
  readonly priority: (req: IncomingMessage) => Priority;
  readonly cost: (req: IncomingMessage) => number;
  readonly maxWaitMs: number;
  readonly policyName: string;
  readonly policyQuoted: string;
  readonly policyJson: string;
  readonly windowSec: number | undefined;
  /** A bounded label for decision messages: the route's `policyName` when it set one, else its path, else 'default'. */
  readonly label: string;
  /** The route's admission pipeline: key limiter, loop-turn budget, shedder (those it has). */
  pipeline: Pipeline;
}

/**
 * The stages of a route, in order. The key limiter comes first so that a client over its own
 * quota hears 429 (its own doing) rather than 503, and so that the turn budget and the shedder
 * only count requests the client was entitled to.
 */
export function routePipeline(route: Route, turn: Stage<AdmissionRequest> | undefined): Pipeline {
  const stages: Stage[] = [];
  if (route.limiter !== undefined) stages.push(keyStage(route.limiter, route.maxWaitMs));
  if (turn !== undefined) stages.push(turn);
  if (route.shedder !== undefined) stages.push(shedderStage(route.shedder));
  return new Pipeline(stages);
}

/** Segment-boundary prefix match: `/api` matches `/api`, `/api/`, `/api/x`, not `/apix`. */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.endsWith('/') || path.charCodeAt(prefix.length) === 47;
}

/** The request's path, without the query. */
export function requestPath(req: IncomingMessage): string {
  // Express rewrites req.url under a mount point; originalUrl keeps the full path.
  const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** The routes of a guard, matched in order, and its bypass list. */
export class RouteTable {
  readonly routes: readonly Route[];
  readonly fallback: Route;
  readonly #bypassPaths: readonly string[];
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
  }

  /** True when the request skips the guard (bypass list or predicate). */
  bypassed(req: IncomingMessage, path: string): boolean {
    if (this.#bypassFn !== undefined) return this.#bypassFn(req);
    for (const p of this.#bypassPaths) if (pathHasPrefix(path, p)) return true;
    return false;
  }

  /** The first route whose method, path and predicate match, else the default. */
  match(req: IncomingMessage, path: string): Route {
    for (const r of this.routes) {
      if (r.methods !== undefined && !r.methods.has(req.method ?? 'GET')) continue;
      if (r.prefix !== undefined && !pathHasPrefix(path, r.prefix)) continue;
      if (r.match !== undefined && !r.match(req)) continue;
      return r;
    }
    return this.fallback;
  }

  /** Every route, the default last. */
  all(): Route[] {
    return [...this.routes, this.fallback];
  }
}
