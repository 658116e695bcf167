/**
 * Responses: the refusal a guard answers (status, Retry-After, RateLimit fields, problem+json),
 * the RateLimit fields of an admitted response, the status endpoint's JSON, and the default 500.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { concurrencyCause } from '../admission/concurrency-stage.js';
import type { Decision, Priority } from '../limiters/types.js';
import type { ResponseSettings } from './guard-options.js';
import { defaultProblemBody, formatPolicy, formatRateLimit, retryAfterSeconds, sfInt } from './headers.js';
import { type Route, routeWindowSec } from './routes.js';

/** Why and how a request is refused: what `onRefused` and `problem` receive. */
export interface Refusal {
  /** 429 when the key is over its quota, 503 when the process sheds load. */
  readonly status: 429 | 503;
  /** The decision that refused (the key limiter's, or the shedder's for a 503 from it). */
  readonly decision: Decision;
  /** Which stage refused. */
  readonly stage: 'key' | 'process';
  /**
   * Why: the decision's reason (`limited`, `blocked`, `shed`), or for the concurrency limit the
   * limiter's own (`codel`, `deadline`, `queue-full`, `shed`, `closed`), also sent in the default
   * body as `reason`.
   */
  readonly reason: string;
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

/** A guard whose wait ended because it closed, refused as a shed. */
export const CLOSING: Decision = Object.freeze({
  allowed: false,
  reason: 'shed',
  remaining: 0,
  limit: 0,
  retryAfterMs: 1000,
  resetMs: 1000,
  factor: 0,
});

/** Builds the refusal for a decision: status, Retry-After (jittered on 503), RateLimit fields, body. */
export function buildRefusal(
  settings: ResponseSettings,
  route: Route,
  d: Decision,
  stage: 'key' | 'process',
  req: { key: string; priority: Priority; cost: number },
  quota: Decision | undefined,
): Refusal {
  const status: 429 | 503 = stage === 'process' || d.reason === 'shed' ? 503 : 429;
  const retryAfterSec = retryAfterSeconds(d.retryAfterMs, {
    maxSec: settings.maxRetryAfterSec,
    jitter: status === 503 ? settings.jitter : 0,
    random: settings.random,
  });
  const cause = concurrencyCause(d);
  let body = defaultProblemBody(status, retryAfterSec, route.policyJson);
  // A problem extension member; the causes are fixed identifiers, safe to splice in.
  if (cause !== undefined) body = `${body.slice(0, -1)},"reason":"${cause}"}`;
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'content-length': String(Buffer.byteLength(body)),
    'retry-after': String(retryAfterSec),
  };
  // Refused because the guard closes with its server: let the connection go too, so that the
  // server's close is not held up by an idle keep-alive socket.
  if (d === CLOSING) headers.connection = 'close';
  if (quota !== undefined && settings.headersMode !== 'none' && Number.isFinite(quota.limit)) {
    headers['ratelimit-policy'] = policyField(route, quota.limit, req.key);
    headers.ratelimit = formatRateLimit(route.policyQuoted, quota.remaining, quota.resetMs / 1000);
  }
  return {
    status,
    decision: d,
    stage,
    reason: cause ?? d.reason,
    key: req.key,
    priority: req.priority,
    cost: req.cost,
    retryAfterSec,
    policyName: route.policyName,
    headers,
    body,
  };
}

/**
 * Sets the RateLimit fields of an admitted response (when the mode is 'all' and the limit is
 * finite): on `res`, or on `fields` when given (a Fastify reply).
 */
export function setQuotaHeaders(
  settings: ResponseSettings,
  res: ServerResponse,
  route: Route,
  key: string | undefined,
  quota: Decision | undefined,
  fields?: { header(name: string, value: string): unknown },
): void {
  if (quota === undefined || settings.headersMode !== 'all' || !Number.isFinite(quota.limit)) return;
  const policy = policyField(route, quota.limit, key);
  const state = rateLimitField(route, quota.remaining, quota.resetMs / 1000);
  if (fields === undefined) {
    res.setHeader('ratelimit-policy', policy);
    res.setHeader('ratelimit', state);
  } else {
    fields.header('ratelimit-policy', policy);
    fields.header('ratelimit', state);
  }
}

/**
 * The route's `RateLimit-Policy` value for `limit` and the window in force for `key` (its tier's,
 * when keys have tiers): formatted again only when either changed (the factor moved, a policy
 * reload changed the limiter's rate or burst, a key of another tier).
 */
function policyField(route: Route, limit: number, key: string | undefined): string {
  const cache = route.policyField;
  const windowSec = routeWindowSec(route, key);
  if (cache.limit !== limit || cache.windowSec !== windowSec) {
    cache.value = formatPolicy(route.policyQuoted, limit, windowSec);
    cache.limit = limit;
    cache.windowSec = windowSec;
  }
  return cache.value;
}

/**
 * The route's `RateLimit` value for an admitted response: formatted again only when `r` or `t`
 * differ from the last one sent. Most admitted responses carry the same value: a client within
 * its rate finds its bucket full again (`r` is the burst less the request's cost, `t` the time
 * its tokens take to come back), whatever the client. Comparing two integers costs less than
 * printing them into a new string, which node's header check then reads again.
 */
function rateLimitField(route: Route, remaining: number, resetSec: number): string {
  const cache = route.rateLimitField;
  const r = sfInt(remaining);
  const t = sfInt(Math.ceil(resetSec));
  if (cache.remaining !== r || cache.resetSec !== t) {
    cache.value = formatRateLimit(route.policyQuoted, r, t);
    cache.remaining = r;
    cache.resetSec = t;
  }
  return cache.value;
}

/** The body for a refusal: the default problem+json, or the `problem` builder's answer, with its headers. */
export function refusalResponse(
  settings: ResponseSettings,
  refusal: Refusal,
  req: IncomingMessage,
): { headers: Record<string, string>; body: string } {
  if (settings.problem === undefined)
    return { headers: refusal.headers as Record<string, string>, body: refusal.body };
  const body = JSON.stringify(settings.problem(refusal, req));
  return { headers: { ...refusal.headers, 'content-length': String(Buffer.byteLength(body)) }, body };
}

/** Writes a JSON body with status 200, uncached (the status endpoint). */
export function sendJson(res: ServerResponse, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
  });
  res.end(body);
}

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
