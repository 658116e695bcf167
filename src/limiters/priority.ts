/**
 * From the governor's factor and a request's priority to that request's effective factor.
 *
 * e(f, p) = f ^ (4 ^ (0.5 − p)), with p from 0 (sheddable) to 1 (critical):
 *
 *   sheddable (p = 0):   e = f²    at f = 0.5 gets 0.25, at f = 0.1 gets 0.01
 *   normal    (p = 0.5): e = f     the factor itself
 *   critical  (p = 1):   e = √f    at f = 0.5 keeps 0.71, at the default floor 0.05 keeps 0.22
 *
 * The map is continuous and monotone in both arguments, equals 1 for every priority when f = 1
 * (no throttling, no priority effect), and orders classes strictly whenever 0 < f < 1: lower
 * priorities always feel a cut first and hardest, and critical work keeps a reserve down to the floor.
 */
import { ConfigError } from '../errors.js';
import type { Priority } from './types.js';

export const PRIORITY_LEVELS = Object.freeze({ sheddable: 0, normal: 0.5, critical: 1 });

/** The numeric level of a priority, from 0 (shed first) to 1 (shed last). Throws ConfigError on anything else. */
export function priorityLevel(priority: Priority | undefined): number {
  if (priority === undefined || priority === 'normal') return 0.5;
  if (priority === 'critical') return 1;
  if (priority === 'sheddable') return 0;
  if (typeof priority === 'number' && priority >= 0 && priority <= 1) return priority;
  throw new ConfigError('priority', priority, "'critical', 'normal', 'sheddable' or a number from 0 to 1");
}

/**
 * The effective factor for a request of `priority` when the governor's factor is `factor` (both from
 * 0 to 1). A factor outside [0, 1] is clamped into it, and NaN counts as 0 (admit nothing): a broken
 * factor source must not turn into NaN limits, whose comparisons would admit without bound. Never
 * throws on the factor (it is called on every decision); a bad priority is a ConfigError.
 */
export function effectiveFactor(factor: number, priority: Priority | undefined): number {
  const level = priorityLevel(priority);
  if (factor >= 1) return 1;
  if (!(factor > 0)) return 0;
  if (level === 0.5) return factor;
  return factor ** (4 ** (0.5 - level));
}
