/**
 * Typed errors with stable codes. Admission outcomes are values (decisions), never errors: these
 * are for misuse (ConfigError) and for the promise-returning APIs that must reject
 * (RejectedError, AbortError).
 */
import type { Decision } from './limiters/types.js';

export type SpillwayErrorCode =
  | 'ERR_SPILLWAY_CONFIG'
  | 'ERR_SPILLWAY_REJECTED'
  | 'ERR_SPILLWAY_ABORTED'
  | 'ERR_SPILLWAY_POOL_OVERLOADED';

export class SpillwayError extends Error {
  readonly code: SpillwayErrorCode;
  constructor(code: SpillwayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'SpillwayError';
  }
}

/** An option or argument is invalid. The message names it, the value received and what is allowed. */
export class ConfigError extends SpillwayError {
  readonly option: string;
  readonly value: unknown;
  constructor(option: string, value: unknown, expected: string) {
    super('ERR_SPILLWAY_CONFIG', `Expected \`${option}\` to be ${expected}, got ${describe(value)}`);
    this.name = 'ConfigError';
    this.option = option;
    this.value = value;
  }
}

/** A wait for admission was refused (it would exceed its deadline, or the queue is full). */
export class RejectedError extends SpillwayError {
  readonly decision: Decision;
  readonly retryAfterMs: number;
  readonly reason: Decision['reason'];
  constructor(decision: Decision, message?: string) {
    super(
      'ERR_SPILLWAY_REJECTED',
      message ?? `Refused (${decision.reason}); retry after ${Math.ceil(decision.retryAfterMs)} ms`,
    );
    this.name = 'RejectedError';
    this.decision = decision;
    this.retryAfterMs = decision.retryAfterMs;
    this.reason = decision.reason;
  }
}

/** A wait was cancelled through its AbortSignal. `cause` holds the signal's reason. */
export class AbortError extends SpillwayError {
  constructor(reason?: unknown) {
    super('ERR_SPILLWAY_ABORTED', 'The wait was aborted', { cause: reason });
    this.name = 'AbortError';
  }
}

/**
 * A guarded pool refused to hand out a resource: its queue was full, the wait passed its deadline
 * or its CoDel target, the throttle factor shed it, or the guard was closed. Carries the reason and
 * a suggested `retryAfterMs`.
 */
export class PoolOverloadedError extends SpillwayError {
  readonly reason: 'queue-full' | 'deadline' | 'codel' | 'shed' | 'closed';
  readonly retryAfterMs: number;
  /** Time spent waiting before the refusal, in ms. */
  readonly waitedMs: number;
  constructor(
    reason: PoolOverloadedError['reason'],
    retryAfterMs: number,
    waitedMs: number,
    name = 'default',
  ) {
    super(
      'ERR_SPILLWAY_POOL_OVERLOADED',
      `Pool '${name}' refused (${reason}) after ${Math.round(waitedMs)} ms; retry after ${Math.ceil(retryAfterMs)} ms`,
    );
    this.name = 'PoolOverloadedError';
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
    this.waitedMs = waitedMs;
  }
}

function hasCode(err: unknown, code: SpillwayErrorCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** Guards that work across package copies, where `instanceof` does not. */
export const isConfigError = (err: unknown): err is ConfigError => hasCode(err, 'ERR_SPILLWAY_CONFIG');
export const isRejectedError = (err: unknown): err is RejectedError => hasCode(err, 'ERR_SPILLWAY_REJECTED');
export const isPoolOverloadedError = (err: unknown): err is PoolOverloadedError =>
  hasCode(err, 'ERR_SPILLWAY_POOL_OVERLOADED');
export const isAbortError = (err: unknown): err is AbortError => hasCode(err, 'ERR_SPILLWAY_ABORTED');

/** The longest a value is printed in an error message, in characters (then it is cut with `…`). */
export const MAX_VALUE_CHARS = 80;

/**
 * A value as an error message prints it: briefly. Strings and plain objects or arrays are shown as
 * JSON cut at MAX_VALUE_CHARS; an instance of a class is named, not dumped (`[object Governor]`),
 * so that passing a governor where a number belongs does not print its internals. Never throws,
 * and reads only as much of a large or deeply nested value as it prints.
 */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `\`${cut(JSON.stringify(value))}\` (string)`;
  if (typeof value === 'function') return value.name ? `(function ${cut(value.name)})` : '(function)';
  if (value === null) return '`null`';
  if (typeof value === 'object') {
    const kind = Array.isArray(value) ? 'array' : 'object';
    try {
      const name = className(value);
      if (name !== undefined) return `\`[object ${cut(name)}]\` (object)`;
      const out: string[] = [];
      brief(value, out, { left: MAX_VALUE_CHARS + 1 }, 0);
      return `\`${cut(out.join(''))}\` (${kind})`;
    } catch {
      return `(${kind})`;
    }
  }
  return `\`${cut(String(value))}\` (${typeof value})`;
}

function cut(text: string): string {
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

/** The class of an object that is neither plain nor an array (undefined for those). */
function className(value: object): string | undefined {
  if (Array.isArray(value)) return undefined;
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto === null || proto === Object.prototype) return undefined;
  const ctor = (proto as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'Object';
}

/** JSON-like text of `value` into `out`, stopping once `budget.left` characters are written. */
function brief(value: unknown, out: string[], budget: { left: number }, depth: number): void {
  if (budget.left <= 0) return;
  const scalar = scalarText(value, depth);
  if (scalar !== undefined) {
    out.push(scalar);
    budget.left -= scalar.length;
    return;
  }
  const array = Array.isArray(value);
  out.push(array ? '[' : '{');
  budget.left -= 1;
  let first = true;
  for (const key of Object.keys(value as object)) {
    if (budget.left <= 0) return;
    const head = `${first ? '' : ','}${array ? '' : `${JSON.stringify(short(key))}:`}`;
    first = false;
    out.push(head);
    budget.left -= head.length;
    brief((value as Record<string, unknown>)[key], out, budget, depth + 1);
  }
  out.push(array ? ']' : '}');
  budget.left -= 1;
}

/** The text of anything but a plain object or array within the depth limit (undefined for those). */
function scalarText(value: unknown, depth: number): string | undefined {
  if (typeof value === 'string') return JSON.stringify(short(value));
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value !== 'object') return `(${typeof value})`;
  const name = className(value);
  if (name !== undefined) return `[object ${name}]`;
  if (depth >= 4) return Array.isArray(value) ? '[…]' : '{…}';
  return undefined;
}

function short(text: string): string {
  return text.length > MAX_VALUE_CHARS ? text.slice(0, MAX_VALUE_CHARS) : text;
}
