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

export function describe(value: unknown): string {
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`;
  if (typeof value === 'function') return '(function)';
  if (value === null) return '`null`';
  if (typeof value === 'object') {
    try {
      return `\`${JSON.stringify(value)}\` (object)`;
    } catch {
      return '(object)';
    }
  }
  return `\`${String(value)}\` (${typeof value})`;
}
