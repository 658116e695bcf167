/**
 * `spillway/express`: the guard as Express 5 middleware. Express needs no runtime import: a
 * middleware is a function of (req, res, next), and Express's req/res are node:http's.
 *
 * ```ts
 * import express from 'express';
 * import { createMiddleware } from 'spillway/express';
 * const app = express();
 * app.use(createMiddleware({ limiter, shedder, bypass: ['/health'] }));
 * ```
 */
import type { NextFunction, Request, Response } from 'express';
import { createGuard, type HttpGuard, type HttpGuardOptions } from './core.js';

export {
  type GuardSignalsOptions,
  HttpGuard,
  type HttpGuardEvents,
  type InvalidValue,
  type HttpGuardOptions,
  type KeyAdmission,
  type ProcessAdmission,
  type Refusal,
  type RoutePolicy,
} from './core.js';
export { PROBLEM_TYPES } from './headers.js';

/** Express middleware with its guard attached. */
export interface SpillwayMiddleware {
  (req: Request, res: Response, next: NextFunction): void;
  readonly guard: HttpGuard;
}

/**
 * Middleware that admits, queues or refuses each request. Mount it before the routes it protects
 * (paths in `routes`, `bypass` and `statusPath` are matched against `req.originalUrl`). Errors from
 * the guard's own functions go to `next(err)`.
 */
export function createMiddleware(options: HttpGuardOptions = {}): SpillwayMiddleware {
  const guard = createGuard(options);
  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    // `handle` calls its `next` with no argument: Express's own `next` serves as it is.
    guard.handle(req, res, next, next);
  };
  return Object.assign(middleware, { guard });
}
