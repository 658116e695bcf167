/**
 * Option checks shared by every constructor. Each throws a ConfigError naming the option, the value
 * received and what is allowed; nothing is silently clamped.
 */
import type { Clock } from './clock.js';
import { ConfigError } from './errors.js';

export function finiteNumber(option: string, value: unknown, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(option, value, rangeText(min, max, 'a finite number'));
  }
  return value;
}

/** A finite number strictly greater than `min` (default 0). */
export function positiveNumber(option: string, value: unknown, min = 0, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !(value > min) || value > max) {
    const upper = max === Infinity ? '' : ` and <= ${max}`;
    throw new ConfigError(option, value, `a finite number > ${min}${upper}`);
  }
  return value;
}

export function integer(option: string, value: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(option, value, rangeText(min, max, 'an integer'));
  }
  return value;
}

/** A ratio from 0 to 1, inclusive. */
export function ratio(option: string, value: unknown): number {
  return finiteNumber(option, value, 0, 1);
}

export function boolean(option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(option, value, 'a boolean');
  return value;
}

export function fn<T extends (...args: never[]) => unknown>(option: string, value: unknown): T {
  if (typeof value !== 'function') throw new ConfigError(option, value, 'a function');
  return value as T;
}

export function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new ConfigError(option, value, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
  }
  return value as T;
}

/**
 * Throws when `options` has a key that `known` does not list (a typo is never silently ignored), or
 * an option set to `null`: `null` never means "the default" (leave the option out for that), except
 * for the options in `nullable`, where it has a documented meaning of its own (a guard's
 * `limiter: null` turns that stage off).
 */
export function knownKeys(
  where: string,
  options: object,
  known: readonly string[],
  nullable: readonly string[] = [],
): void {
  for (const key of Object.keys(options)) {
    const value = (options as Record<string, unknown>)[key];
    if (!known.includes(key)) {
      throw new ConfigError(`${where}.${key}`, value, `one of the known options (${known.join(', ')})`);
    }
    if (value === null && !nullable.includes(key)) {
      throw new ConfigError(`${where}.${key}`, value, NOT_NULL);
    }
  }
}

const NOT_NULL = 'a value (null is not accepted: leave the option out for its default)';

/**
 * A Clock option: undefined gives `fallback`; anything else must have `now()` returning a finite
 * number and, unless `timers` is false, a `setTimeout()`. Checked here so that a bad clock fails at
 * construction with a ConfigError, never later with a TypeError (or NaN times) in the first call.
 */
export function clockOption(option: string, value: unknown, fallback: Clock, timers = true): Clock {
  if (value === undefined) return fallback;
  const expected = timers ? 'a Clock { now(), setTimeout() }' : 'a Clock { now() }';
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as Clock).now !== 'function' ||
    (timers && typeof (value as Clock).setTimeout !== 'function')
  ) {
    throw new ConfigError(option, value, expected);
  }
  const now = (value as Clock).now();
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new ConfigError(`${option}.now()`, now, 'a number of milliseconds');
  }
  return value as Clock;
}

/**
 * The options object of a call (`acquire(cost, options)`): undefined gives `{}`, anything but an
 * object is refused. Its known fields are checked by the caller, one by one.
 */
export function callOptions<T extends object>(value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError('options', value, 'an object or undefined');
  }
  return value;
}

/** A per-call wait in ms: undefined gives `fallback`; else a number >= 0, or Infinity. */
export function waitOption(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0)) {
    throw new ConfigError(option, value, 'a number >= 0 (or Infinity)');
  }
  return value;
}

/** A per-call `signal`: undefined or null (as `fetch` takes it) for none, else an AbortSignal. */
export function abortSignalOption(option: string, value: unknown): AbortSignal | undefined {
  if (value === undefined || value === null) return undefined;
  if (
    typeof value !== 'object' ||
    typeof (value as AbortSignal).aborted !== 'boolean' ||
    typeof (value as AbortSignal).addEventListener !== 'function' ||
    typeof (value as AbortSignal).removeEventListener !== 'function'
  ) {
    throw new ConfigError(option, value, 'an AbortSignal');
  }
  return value as AbortSignal;
}

function rangeText(min: number, max: number, kind: string): string {
  if (min === -Infinity && max === Infinity) return kind;
  if (max === Infinity) return `${kind} >= ${min}`;
  if (min === -Infinity) return `${kind} <= ${max}`;
  return `${kind} from ${min} to ${max}`;
}
