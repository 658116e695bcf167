/**
 * What a refusal says on the wire: `Retry-After` (RFC 9110), the `RateLimit-Policy` and `RateLimit`
 * fields of draft-ietf-httpapi-ratelimit-headers (structured-field lists, draft 09 and later), and
 * RFC 9457 problem details with the draft's problem types. Pure formatting, no I/O.
 */
import { ConfigError } from '../errors.js';

/** Problem type URIs registered by draft-ietf-httpapi-ratelimit-headers. */
export const PROBLEM_TYPES = Object.freeze({
  /** A client exceeded its quota (429). */
  quotaExceeded: 'https://iana.org/assignments/http-problem-types#quota-exceeded',
  /** The server reduced its capacity for a while (503). */
  temporaryReducedCapacity: 'https://iana.org/assignments/http-problem-types#temporary-reduced-capacity',
});

export interface RetryAfterOptions {
  /** Upper bound, in seconds; also the answer when the wait is unbounded (`Infinity`). */
  maxSec: number;
  /**
   * Extra random share, from 0 to 1: the result is one of the whole seconds from base to
   * base + ceil(base · jitter), each equally likely. 0 for none.
   */
  jitter: number;
  /** A uniform random number in [0, 1). */
  random: () => number;
}

/**
 * `Retry-After` in whole seconds, at least 1: base = `ceil(retryAfterMs / 1000)` capped at `maxSec`
 * (`maxSec` itself for an unbounded wait), then spread by `jitter` so that clients refused together
 * do not all come back in the same second: `base + floor(u · (ceil(base · jitter) + 1))`, u uniform
 * in [0, 1), which is uniform over the whole seconds `base … base + ceil(base · jitter)`. A base of
 * 1 s with jitter 0.5 gives 1 or 2 s, half each; 10 s gives 10 … 15 s. (Spreading the base and
 * rounding up, `ceil(base · (1 + jitter · u))`, gave 2 s every time for a base of 1 s.)
 */
export function retryAfterSeconds(retryAfterMs: number, o: RetryAfterOptions): number {
  const base = Number.isFinite(retryAfterMs)
    ? Math.min(o.maxSec, Math.max(1, Math.ceil(retryAfterMs / 1000)))
    : o.maxSec;
  if (!(o.jitter > 0)) return base;
  const u = o.random();
  const spread = Math.ceil(base * o.jitter);
  return base + Math.floor((u >= 0 && u < 1 ? u : 0) * (spread + 1));
}

/** A structured-field string (RFC 8941 §3.3.3): printable ASCII only; `"` and `\` escaped. */
export function sfString(option: string, value: unknown): string {
  if (typeof value !== 'string' || !/^[\x20-\x7e]*$/.test(value)) {
    throw new ConfigError(option, value, 'a string of printable ASCII characters');
  }
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The non-negative sf-integer nearest below `n` (the fields carry integers), 0 for NaN. */
export function sfInt(n: number): number {
  if (!(n > 0)) return 0;
  return Math.min(Math.floor(n), 999_999_999_999_999);
}

/**
 * One `RateLimit-Policy` list member: `"name";q=<quota>` plus `;w=<window seconds>` when known.
 * `quotedName` is already an sf-string (see `sfString`).
 */
export function formatPolicy(quotedName: string, quota: number, windowSec: number | undefined): string {
  const q = `${quotedName};q=${sfInt(quota)}`;
  return windowSec === undefined ? q : `${q};w=${Math.max(1, Math.ceil(windowSec))}`;
}

/** One `RateLimit` list member: `"name";r=<remaining>;t=<seconds until the quota is full again>`. */
export function formatRateLimit(quotedName: string, remaining: number, resetSec: number): string {
  return `${quotedName};r=${sfInt(remaining)};t=${sfInt(Math.ceil(resetSec))}`;
}

/** The fields of an RFC 9457 problem details body for a refusal. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** Seconds, the same number as `Retry-After`. */
  retryAfter: number;
  /** Names of the quota policies that refused (429 only), as the draft's problem type defines. */
  'violated-policies'?: string[];
  [extension: string]: unknown;
}

/** The default problem for a refusal: `quota-exceeded` for 429, `temporary-reduced-capacity` for 503. */
export function defaultProblem(status: 429 | 503, retryAfterSec: number, policyName: string): ProblemDetails {
  if (status === 429) {
    return {
      type: PROBLEM_TYPES.quotaExceeded,
      title: 'Quota exceeded',
      status,
      detail: `Too many requests for this client; retry in ${retryAfterSec} s.`,
      retryAfter: retryAfterSec,
      'violated-policies': [policyName],
    };
  }
  return {
    type: PROBLEM_TYPES.temporaryReducedCapacity,
    title: 'Temporarily reduced capacity',
    status,
    detail: `The server is overloaded and sheds load; retry in ${retryAfterSec} s.`,
    retryAfter: retryAfterSec,
  };
}

const BODY_429_A = `{"type":"${PROBLEM_TYPES.quotaExceeded}","title":"Quota exceeded","status":429,"detail":"Too many requests for this client; retry in `;
const BODY_503_A = `{"type":"${PROBLEM_TYPES.temporaryReducedCapacity}","title":"Temporarily reduced capacity","status":503,"detail":"The server is overloaded and sheds load; retry in `;

/**
 * `JSON.stringify(defaultProblem(status, retryAfterSec, policyName))`, built from constant pieces so
 * that a refusal costs a string concatenation, not an object and a serialisation.
 * `policyJson` is `JSON.stringify(policyName)`, computed once at construction.
 */
export function defaultProblemBody(status: 429 | 503, retryAfterSec: number, policyJson: string): string {
  if (status === 429) {
    return `${BODY_429_A}${retryAfterSec} s.","retryAfter":${retryAfterSec},"violated-policies":[${policyJson}]}`;
  }
  return `${BODY_503_A}${retryAfterSec} s.","retryAfter":${retryAfterSec}}`;
}
