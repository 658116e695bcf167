/**
 * Helpers shared by the built-in signals: option checks for the target/limit pair and the
 * onFailure mode. Internal: not exported from the package.
 */
import { ConfigError } from '../errors.js';
import { finiteNumber, oneOf } from '../validate.js';
import type { SignalFailureMode } from './types.js';

export const FAILURE_MODES: readonly SignalFailureMode[] = ['ignore', 'overloaded'];

/** An options argument that may be omitted, but is an object when given. */
export function optionsObject<T extends object>(where: string, value: T | undefined): T {
  if (value === undefined) return {} as T;
  if (typeof value !== 'object' || value === null) {
    throw new ConfigError(`${where}.options`, value, 'an object or undefined');
  }
  return value;
}

/**
 * Validates a target/limit pair: both finite, within [min, max], and target < limit (a signal whose
 * pressure would jump from 0 to 1 at one value, or fall as load rises, is a configuration mistake).
 */
export function targetAndLimit(
  targetOption: string,
  target: unknown,
  limitOption: string,
  limit: unknown,
  min: number,
  max = Infinity,
): { target: number; limit: number } {
  const t = finiteNumber(targetOption, target, min, max);
  const l = finiteNumber(limitOption, limit, min, max);
  if (!(t < l)) {
    throw new ConfigError(limitOption, limit, `a finite number greater than \`${targetOption}\` (${t})`);
  }
  return { target: t, limit: l };
}

export function failureMode(option: string, value: unknown, fallback: SignalFailureMode): SignalFailureMode {
  return value === undefined ? fallback : oneOf(option, value, FAILURE_MODES);
}
