/**
 * Bounded label values for metrics, logs and spans: a priority as one of a few strings, and route
 * names capped so that a stream of distinct paths can never grow a metric without bound.
 */
import { ConfigError } from '../errors.js';
import type { Priority } from '../limiters/types.js';

/**
 * The priority as a label: 'critical', 'normal', 'sheddable', or a number rounded to one decimal
 * ('0.3'): at most 14 distinct values.
 */
export function priorityLabel(priority: Priority | undefined): string {
  if (priority === undefined) return 'normal';
  if (typeof priority === 'string') return priority;
  if (typeof priority !== 'number' || !Number.isFinite(priority)) return 'normal';
  const p = Math.min(1, Math.max(0, Math.round(priority * 10) / 10));
  return p === 0 ? 'sheddable' : p === 0.5 ? 'normal' : p === 1 ? 'critical' : String(p);
}

/** The route label used past the cap. */
export const OTHER_ROUTE = 'other';

/** Admits the first `max` distinct route names; every later one becomes 'other'. */
export class RouteLabels {
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(max: number, option = 'maxRoutes') {
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 0 || max > 10_000) {
      throw new ConfigError(option, max, 'an integer from 0 to 10000');
    }
    this.#max = max;
  }

  /** The label for `route`: itself while fewer than `max` routes are known, 'other' beyond. */
  label(route: string): string {
    if (this.#seen.has(route)) return route;
    if (this.#seen.size >= this.#max || typeof route !== 'string' || route === '') return OTHER_ROUTE;
    this.#seen.add(route);
    return route;
  }

  get size(): number {
    return this.#seen.size;
  }
}
