/**
 * Option checks shared by every constructor. Each throws a ConfigError naming the option, the value
 * received and what is allowed; nothing is silently clamped.
 */
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

/** Throws when `options` has a key that `known` does not list (a typo is never silently ignored). */
export function knownKeys(where: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new ConfigError(
        `${where}.${key}`,
        (options as Record<string, unknown>)[key],
        `one of the known options (${known.join(', ')})`,
      );
    }
  }
}

function rangeText(min: number, max: number, kind: string): string {
  if (min === -Infinity && max === Infinity) return kind;
  if (max === Infinity) return `${kind} >= ${min}`;
  if (min === -Infinity) return `${kind} <= ${max}`;
  return `${kind} from ${min} to ${max}`;
}
