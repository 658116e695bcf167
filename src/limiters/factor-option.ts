/**
 * The one factor contract every limiter shares: the `factor` option is either a FactorSource to
 * follow (a Governor, a ManualFactor, a FleetFactor...) or a fixed number from 0 to 1. A limiter
 * given a source reads its factor at construction and follows every change until `close()`.
 */
import { ConfigError } from '../errors.js';
import { ratio } from '../validate.js';
import type { FactorSource } from './types.js';

/** Where a limiter's throttle factor comes from: a FactorSource to follow, or a fixed number from 0 to 1. */
export type FactorOption = FactorSource | number;

export interface ResolvedFactor {
  /** The factor at construction, from 0 to 1. */
  readonly initial: number;
  /** The source to follow, when one was given. */
  readonly source: FactorSource | undefined;
}

export function isFactorSource(value: unknown): value is FactorSource {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as FactorSource).subscribe === 'function' &&
    typeof (value as FactorSource).factor === 'number'
  );
}

/** Validates a `factor` option (undefined means 1). */
export function resolveFactor(value: unknown, option = 'factor'): ResolvedFactor {
  if (value === undefined) return { initial: 1, source: undefined };
  if (typeof value === 'number') return { initial: ratio(option, value), source: undefined };
  if (!isFactorSource(value)) {
    throw new ConfigError(
      option,
      value,
      'a FactorSource (a Governor or a ManualFactor) or a number from 0 to 1',
    );
  }
  return { initial: ratio(`${option}.factor`, value.factor), source: value };
}

/** A factor from a source's notification, clamped to [0, 1]; undefined when it is not a number. */
export function clampFactor(next: unknown): number | undefined {
  if (typeof next !== 'number' || Number.isNaN(next)) return undefined;
  return next < 0 ? 0 : next > 1 ? 1 : next;
}

/**
 * Subscribes `apply` to the source in `resolved` (each notification clamped to [0, 1]); answers
 * the unsubscribe function, or undefined for a fixed factor.
 */
export function followFactor(
  resolved: ResolvedFactor,
  apply: (factor: number) => void,
): (() => void) | undefined {
  if (resolved.source === undefined) return undefined;
  return resolved.source.subscribe((next) => {
    const f = clampFactor(next);
    if (f !== undefined) apply(f);
  });
}
