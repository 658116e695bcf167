/**
 * Values computed from a request (priority, cost, key) by the user's functions. A request can make
 * such a function return anything (`priority: req => req.headers['x-priority']` returns whatever
 * the client sent), so a bad value is never fatal: the request gets the default (the guard's
 * priority or cost, the client address for a key). `undefined` means "the default" and is not
 * reported; any other bad value makes the guard emit `invalidValue` and count it,
 * and the first bad value of each option is reported once as a process warning. Options given as
 * fixed values are still checked at construction and throw ConfigError.
 */
import type { IncomingMessage } from 'node:http';
import { describe } from '../errors.js';
import type { Priority } from '../limiters/types.js';

/** What `invalidValue` reports: the option, the value a request produced, and what was used instead. */
export interface InvalidValue {
  /** The option whose function produced the value: `priority`, `cost`, `key`, or `routes[i].…`. */
  readonly option: string;
  /** The value the function returned. */
  readonly value: unknown;
  /** The value used instead. */
  readonly used: unknown;
}

export type InvalidValueListener = (invalid: InvalidValue) => void;

export function isPriority(v: unknown): v is Priority {
  return (
    v === 'normal' || v === 'critical' || v === 'sheddable' || (typeof v === 'number' && v >= 0 && v <= 1)
  );
}

export function isCost(v: unknown): v is number {
  return typeof v === 'number' && v > 0 && Number.isFinite(v);
}

/** Checks a user function's result; a bad one is reported and replaced by `fallback`. */
export function checkedPriority(
  option: string,
  user: (req: IncomingMessage) => Priority,
  fallback: Priority,
  report: InvalidValueListener,
): (req: IncomingMessage) => Priority {
  return (req) => {
    const v = user(req);
    if (isPriority(v)) return v;
    if (v !== undefined) report({ option, value: v, used: fallback });
    return fallback;
  };
}

export function checkedCost(
  option: string,
  user: (req: IncomingMessage) => number,
  fallback: number,
  report: InvalidValueListener,
): (req: IncomingMessage) => number {
  return (req) => {
    const v = user(req);
    if (isCost(v)) return v;
    if (v !== undefined) report({ option, value: v, used: fallback });
    return fallback;
  };
}

/** A user key function: `undefined` falls back silently (documented), anything but a string is reported. */
export function checkedKey(
  option: string,
  user: (req: IncomingMessage) => string | undefined,
  fallback: (req: IncomingMessage) => string,
  report: InvalidValueListener,
): (req: IncomingMessage) => string {
  return (req) => {
    const v = user(req);
    if (typeof v === 'string') return v;
    const used = fallback(req);
    if (v !== undefined && v !== null) report({ option, value: v, used });
    return used;
  };
}

/**
 * The guard's reporter: counts every bad value, hands it to `listener`, and warns once per option
 * for the life of the guard (a warning per request would flood the log an attacker can write to).
 */
function brief(v: unknown): string {
  const s = describe(v);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}

export class InvalidValues {
  count = 0;
  readonly #warned = new Set<string>();
  listener: InvalidValueListener | undefined;

  readonly report = (invalid: InvalidValue): void => {
    this.count++;
    this.listener?.(invalid);
    if (this.#warned.has(invalid.option)) return;
    this.#warned.add(invalid.option);
    process.emitWarning(
      `spillway: the \`${invalid.option}\` function returned ${brief(invalid.value)} for a request; ` +
        `used ${brief(invalid.used)} instead (reported once per option; see guard.invalidValues)`,
      { code: 'SPILLWAY_INVALID_VALUE' },
    );
  };
}
