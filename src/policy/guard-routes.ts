/**
 * A policy's `routes` as an HTTP guard's route policies (`RoutePolicy`): the same fields, a
 * limiter named in the file resolved to the runtime's limiter of that name. Type-only imports
 * from the adapters: `spillway/policy` loads no HTTP code.
 */
import type { KeyAdmission, RoutePolicy } from '../adapters/guard-options.js';
import type { Policy } from './schema.js';

/** A guard whose routes a runtime can replace: an HttpGuard (`protect(...).guard`, `app.spillway`). */
export interface RoutedGuard {
  setRoutes(routes: readonly RoutePolicy[]): unknown;
}

/**
 * The guard routes of `policy`. `limiterOf` gives the runtime's limiter for a name of the file; the
 * route's RateLimit window (`w = burst / ratePerSec`) comes from the file, so that a route is
 * compiled from the policy it belongs to, except for a limiter with tiers: there each key's window
 * is its tier's, which the guard reads from the limiter (`limitsOf`) per response.
 */
export function guardRoutes(policy: Policy, limiterOf: (name: string) => KeyAdmission): RoutePolicy[] {
  return policy.routes.map((r) => {
    const out: RoutePolicy = {};
    if (r.method !== undefined) out.method = r.method;
    if (r.path !== undefined) out.path = r.path;
    if (r.bypass !== undefined) out.bypass = r.bypass;
    if (r.limiter === null) out.limiter = null;
    else if (r.limiter !== undefined) {
      const l = policy.limiters[r.limiter]!;
      out.limiter = limiterOf(r.limiter);
      // With tiers, each key has its tier's window: the guard reads it from the limiter per key.
      if (Object.keys(l.tiers ?? {}).length === 0) out.windowSec = l.burst / l.ratePerSec;
    }
    if (r.priority !== undefined) out.priority = r.priority;
    if (r.cost !== undefined) out.cost = r.cost;
    if (r.maxWaitMs !== undefined) out.maxWaitMs = r.maxWaitMs;
    return out;
  });
}
