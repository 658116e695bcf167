/**
 * Decision records for logs: refusals (sampled, rate-capped, with their reason) and every factor
 * change once, as its human sentence. The sink receives plain objects, so pino, winston, console
 * or a test array plug in alike. Fed by the diagnostics channels: nothing is built while no
 * `logDecisions` is open.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import type { Governor } from '../governor/governor.js';
import { clockOption, knownKeys } from '../validate.js';
import {
  DECISION_CHANNEL,
  type DecisionMessage,
  type DecisionOutcome,
  FACTOR_CHANNEL,
  type FactorMessage,
} from './channels.js';
import { priorityLabel } from './labels.js';

/** A refusal (or other chosen outcome), as the sink receives it. */
export interface DecisionLogEntry {
  readonly event: 'spillway.decision';
  readonly level: 'warn' | 'info';
  /** One line for humans, such as "spillway api: shed /users (sheddable, factor 0.42, limit 12, retry after 1000 ms)". */
  readonly msg: string;
  readonly name: string;
  readonly outcome: DecisionOutcome;
  readonly stage: string;
  readonly reason: string;
  readonly priority: string;
  readonly route: string;
  readonly factor: number;
  readonly limit: number;
  /** null when the request can never be admitted at this factor (Infinity does not survive JSON). */
  readonly retryAfterMs: number | null;
  readonly queueWaitMs?: number;
  /** Entries dropped by `maxPerSec` since the last one logged. */
  readonly suppressed?: number;
}

/** A factor change, as the sink receives it. */
export interface FactorLogEntry {
  readonly event: 'spillway.factor';
  /** 'warn' for a cut, 'info' otherwise. */
  readonly level: 'warn' | 'info';
  /** The change's human sentence (the DecisionRecord's reason). */
  readonly msg: string;
  /** The governor's name from `governors`, or 'default'. */
  readonly name: string;
  readonly factor: number;
  readonly previousFactor: number;
  readonly appliedFactor: number;
  readonly state: string;
  readonly pressure: number;
  readonly smoothedPressure: number;
  readonly dominantSignal: string | null;
  /** The governor clock's time of the change, in ms. */
  readonly atMs: number;
}

export type LogEntry = DecisionLogEntry | FactorLogEntry;

export interface LogDecisionsOptions {
  /** Receives each entry, a plain object. Must not throw (a throw is caught and counted). */
  sink: (entry: LogEntry) => void;
  /** The share of matching decisions logged, from 0 to 1. @default 1 */
  sample?: number;
  /** The outcomes logged. @default ['limited', 'shed', 'timed_out'] */
  outcomes?: readonly DecisionOutcome[];
  /**
   * The most decision entries per second; the rest are counted and the next entry logged says how
   * many (`suppressed`). Factor changes are never capped. A number > 0, or Infinity. @default 100
   */
  maxPerSec?: number;
  /** Log every factor change of every governor. @default true */
  factorChanges?: boolean;
  /** Names for governors, shown in their factor entries: `{ api: governor }`. @default none: 'default' */
  governors?: Readonly<Record<string, Governor>>;
  /** Uniform random numbers in [0, 1) for sampling. @default Math.random */
  random?: () => number;
  /** Times the per-second cap. @default systemClock */
  clock?: Clock;
}

export interface DecisionLogStats {
  /** Entries handed to the sink. */
  readonly logged: number;
  /** Matching decisions left out by sampling. */
  readonly sampledOut: number;
  /** Matching decisions dropped by `maxPerSec`. */
  readonly suppressed: number;
  /** Throws from the sink. */
  readonly sinkErrors: number;
}

export interface DecisionLog {
  readonly stats: DecisionLogStats;
  /** Unsubscribes. Idempotent. */
  close(): void;
}

const OUTCOMES: readonly DecisionOutcome[] = [
  'admitted',
  'limited',
  'shed',
  'queued',
  'timed_out',
  'canceled',
];
const OPTION_KEYS = [
  'sink',
  'sample',
  'outcomes',
  'maxPerSec',
  'factorChanges',
  'governors',
  'random',
  'clock',
] as const;

export const LOG_DECISIONS_DEFAULTS = Object.freeze({
  sample: 1,
  outcomes: Object.freeze(['limited', 'shed', 'timed_out'] as DecisionOutcome[]),
  maxPerSec: 100,
  factorChanges: true,
});

/** Logs refusals and factor changes to `sink` until `close()`. See docs/observability.md. */
export function logDecisions(options: LogDecisionsOptions): DecisionLog {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object with `sink` (a function)');
  }
  knownKeys('logDecisions', options, OPTION_KEYS);
  const sink = options.sink;
  if (typeof sink !== 'function')
    throw new ConfigError('sink', sink, 'a function that receives plain objects');
  const sample = options.sample ?? LOG_DECISIONS_DEFAULTS.sample;
  if (typeof sample !== 'number' || !(sample >= 0 && sample <= 1)) {
    throw new ConfigError('sample', sample, 'a number from 0 to 1');
  }
  const outcomes = options.outcomes ?? LOG_DECISIONS_DEFAULTS.outcomes;
  if (!Array.isArray(outcomes))
    throw new ConfigError('outcomes', outcomes, `an array of ${OUTCOMES.join(', ')}`);
  outcomes.forEach((o, i) => {
    if (!OUTCOMES.includes(o)) throw new ConfigError(`outcomes[${i}]`, o, `one of ${OUTCOMES.join(', ')}`);
  });
  const maxPerSec = options.maxPerSec ?? LOG_DECISIONS_DEFAULTS.maxPerSec;
  if (typeof maxPerSec !== 'number' || !(maxPerSec > 0)) {
    throw new ConfigError('maxPerSec', maxPerSec, 'a number > 0, or Infinity');
  }
  const factorChanges = options.factorChanges ?? LOG_DECISIONS_DEFAULTS.factorChanges;
  if (typeof factorChanges !== 'boolean')
    throw new ConfigError('factorChanges', factorChanges, 'true or false');
  const random = options.random ?? Math.random;
  if (typeof random !== 'function') throw new ConfigError('random', random, 'a function returning [0, 1)');
  const clock = clockOption('clock', options.clock, systemClock, false);
  const names = new Map<Governor, string>();
  if (options.governors !== undefined) {
    if (typeof options.governors !== 'object' || options.governors === null) {
      throw new ConfigError('governors', options.governors, 'an object of { name: Governor }');
    }
    for (const [name, g] of Object.entries(options.governors)) {
      if (typeof g !== 'object' || g === null || typeof (g as Governor).snapshot !== 'function') {
        throw new ConfigError(`governors.${name}`, g, 'a Governor');
      }
      names.set(g, name);
    }
  }

  const wanted = new Set(outcomes);
  const stats = { logged: 0, sampledOut: 0, suppressed: 0, sinkErrors: 0 };
  // A one-second window: up to maxPerSec entries, then a count of the dropped ones.
  let windowStart = -Infinity;
  let inWindow = 0;
  let pendingSuppressed = 0;

  const emit = (entry: LogEntry): void => {
    try {
      sink(entry);
      stats.logged++;
    } catch {
      // A logger's failure must not fail the request that was being decided.
      stats.sinkErrors++;
    }
  };

  const onDecision = (raw: unknown): void => {
    if (typeof raw !== 'object' || raw === null) return;
    const m = raw as DecisionMessage;
    if (!wanted.has(m.outcome)) return;
    if (sample < 1 && !(random() < sample)) {
      stats.sampledOut++;
      return;
    }
    const now = clock.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      inWindow = 0;
    }
    if (inWindow >= maxPerSec) {
      stats.suppressed++;
      pendingSuppressed++;
      return;
    }
    inWindow++;
    const priority = priorityLabel(m.priority);
    const retryAfterMs = Number.isFinite(m.retryAfterMs) ? m.retryAfterMs : null;
    const entry: DecisionLogEntry = {
      event: 'spillway.decision',
      level: m.outcome === 'admitted' || m.outcome === 'queued' ? 'info' : 'warn',
      msg: decisionSentence(m, priority, retryAfterMs),
      name: m.name,
      outcome: m.outcome,
      stage: m.stage,
      reason: m.reason,
      priority,
      route: m.route,
      factor: m.factor,
      limit: m.limit,
      retryAfterMs,
      ...(m.queueWaitMs === undefined ? {} : { queueWaitMs: m.queueWaitMs }),
      ...(pendingSuppressed > 0 ? { suppressed: pendingSuppressed } : {}),
    };
    pendingSuppressed = 0;
    emit(entry);
  };

  const onFactor = (raw: unknown): void => {
    if (typeof raw !== 'object' || raw === null) return;
    const m = raw as FactorMessage;
    emit({
      event: 'spillway.factor',
      level: m.factor < m.previousFactor ? 'warn' : 'info',
      msg: m.reason,
      name: names.get(m.governor) ?? 'default',
      factor: m.factor,
      previousFactor: m.previousFactor,
      appliedFactor: m.appliedFactor,
      state: m.state,
      pressure: m.pressure,
      smoothedPressure: m.smoothedPressure,
      dominantSignal: m.dominant?.name ?? null,
      atMs: m.atMs,
    });
  };

  if (wanted.size > 0) subscribe(DECISION_CHANNEL, onDecision);
  if (factorChanges) subscribe(FACTOR_CHANNEL, onFactor);
  let closed = false;
  return {
    stats,
    close() {
      if (closed) return;
      closed = true;
      if (wanted.size > 0) unsubscribe(DECISION_CHANNEL, onDecision);
      if (factorChanges) unsubscribe(FACTOR_CHANNEL, onFactor);
    },
  };
}

function decisionSentence(m: DecisionMessage, priority: string, retryAfterMs: number | null): string {
  const parts = [`${priority}`, `factor ${round(m.factor)}`, `limit ${round(m.limit)}`];
  if (m.queueWaitMs !== undefined) parts.push(`waited ${round(m.queueWaitMs)} ms`);
  if (m.outcome !== 'admitted' && m.outcome !== 'queued') {
    parts.push(retryAfterMs === null ? 'no retry at this factor' : `retry after ${round(retryAfterMs)} ms`);
  }
  const reason = m.reason === m.outcome ? '' : ` (${m.reason})`;
  return `spillway ${m.name}: ${m.outcome}${reason} at ${m.stage} for ${m.route}; ${parts.join(', ')}`;
}

function round(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toFixed(3)));
}
