/**
 * `spillway/http`: load shedding and per-client limits in front of a plain node:http request
 * listener.
 *
 * ```ts
 * import { createServer } from 'node:http';
 * import { protect } from 'spillway/http';
 * createServer(protect((req, res) => res.end('hello'), { limiter, shedder })).listen(3000);
 * ```
 */
import {
  createGuard,
  type ErrorHandler,
  type HttpGuard,
  type HttpGuardOptions,
  type RequestListener,
} from './core.js';

export {
  defaultOnError,
  type ErrorHandler,
  type GuardSignalsOptions,
  HttpGuard,
  type HttpGuardEvents,
  type InvalidValue,
  type HttpGuardOptions,
  type KeyAdmission,
  type Outcome,
  type ProcessAdmission,
  type Refusal,
  type RequestListener,
  type RequestValue,
  type RoutePolicy,
  type SnapshotSource,
} from './core.js';
export type { ForwardedHeader, TrustProxy } from './client-address.js';
export { PROBLEM_TYPES, type ProblemDetails } from './headers.js';

export interface ProtectOptions extends HttpGuardOptions {
  /** Handles an error thrown by the listener. @default defaultOnError (500, then process.emitWarning) */
  onError?: ErrorHandler;
}

/** A wrapped listener, with its guard (for `inFlight`, `queued`, `signals()`, `close()`). */
export type ProtectedListener = RequestListener & { readonly guard: HttpGuard };

/** Creates a guard for node:http; `guard.wrap(listener)` protects a request listener. */
export function createHttpGuard(options: HttpGuardOptions = {}): HttpGuard {
  return createGuard(options);
}

/** Wraps `listener` in a new guard built from `options`. */
export function protect(listener: RequestListener, options: ProtectOptions = {}): ProtectedListener {
  const { onError, ...guardOptions } = options;
  const guard = createGuard(guardOptions);
  const wrapped = onError === undefined ? guard.wrap(listener) : guard.wrap(listener, onError);
  return Object.assign(wrapped, { guard });
}
