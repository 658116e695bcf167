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
 * The guard routes of `policy`. `limiterOf` gives the runtime's limiter for a name of the file. A
 * route fixes no RateLimit window: the guard reads `w` (burst / ratePerSec, of the key's tier when
 * the limiter has tiers) from that limiter at each response, and the limiter follows the policy in
 * force (a reload swaps limiters and routes in one synchronous step).
 */
export function guardRoutes(policy: Policy, limiterOf: (name: string) => KeyAdmission): RoutePolicy[] {
  return policy.routes.map((r) => {
    const out: RoutePolicy = {};
    if (r.method !== undefined) out.method = r.method;
    if (r.path !== undefined) out.path = r.path;
    if (r.bypass !== undefined) out.bypass = r.bypass;
    if (r.limiter === null) out.limiter = null;
    else if (r.limiter !== undefined) out.limiter = limiterOf(r.limiter);
    if (r.priority !== undefined) out.priority = r.priority;
    if (r.cost !== undefined) out.cost = r.cost;
    if (r.maxWaitMs !== undefined) out.maxWaitMs = r.maxWaitMs;
    return out;
  });
}
