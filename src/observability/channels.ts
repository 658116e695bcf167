/**
 * What Spillway publishes on `node:diagnostics_channel`, so metrics, logs, traces and APM agents
 * can subscribe. Publishing costs nothing when nobody listens (check `channel.hasSubscribers`
 * before building a message). Pure names and types: the publishers import `node:diagnostics_channel`.
 */
import type { DecisionRecord, Governor } from '../governor/governor.js';
import type { Priority } from '../limiters/types.js';

/** One admission decision of a guard or pool guard: `DecisionMessage`. */
export const DECISION_CHANNEL = 'spillway:decision';
/** Every throttle factor change of a governor: the governor's `DecisionRecord` (`FactorMessage`). */
export const FACTOR_CHANNEL = 'spillway:factor';

/** What FACTOR_CHANNEL carries: the change's `DecisionRecord`, and the governor it came from. */
export interface FactorMessage extends DecisionRecord {
  readonly governor: Governor;
}

/**
 * - `admitted`: admitted (after a wait in the queue, if any).
 * - `limited`: refused because the key is over its quota (429).
 * - `shed`: refused because the process is overloaded (503).
 * - `queued`: put in a wait queue; a later message says how it ended.
 * - `timed_out`: waited until its deadline and was refused.
 * - `canceled`: the caller gave up (abort, client disconnected) while it waited.
 */
export type DecisionOutcome = 'admitted' | 'limited' | 'shed' | 'queued' | 'timed_out' | 'canceled';

/** The stage of the admission pipeline that decided. */
export type DecisionStage = 'turn-budget' | 'key' | 'shedder' | 'concurrency';

export interface DecisionMessage {
  /** The name the user gave the guard (or pool guard), to tell several apart. @default 'default' */
  readonly name: string;
  readonly outcome: DecisionOutcome;
  /** The stage that refused or queued; the last stage when admitted. */
  readonly stage: DecisionStage;
  /** A short reason: the decision's reason ('ok', 'limited', 'shed', 'blocked', 'deadline', ...). */
  readonly reason: string;
  readonly priority: Priority;
  /** A bounded route label: the route policy's name or path; never the raw URL. */
  readonly route: string;
  /** The throttle factor applied, from 0 to 1. */
  readonly factor: number;
  /** The limit in force (tokens, or concurrent requests for the concurrency stage). */
  readonly limit: number;
  /** 0 when admitted. */
  readonly retryAfterMs: number;
  /** Time spent in a wait queue, when the request waited. */
  readonly queueWaitMs?: number;
}

/**
 * A store's trouble: an operation failed (`error`), a decision was made without it under its
 * failure policy (`fallback`), or its circuit breaker changed state (`state`). The Redis store
 * publishes `StoreMessage`; any store of yours may too.
 */
export const STORE_CHANNEL = 'spillway:store';

/** A circuit breaker's state: `closed` (calls go to the store), `open` (they skip it), `half-open` (one probe). */
export type StoreCircuitState = 'closed' | 'open' | 'half-open';

export interface StoreMessage {
  /** The name the user gave the store, to tell several apart. @default 'default' */
  readonly name: string;
  readonly event: 'error' | 'fallback' | 'state';
  /** The store operation: 'take', 'peek', 'refund', 'reset' or 'connect'; 'breaker' for `state`. */
  readonly operation: string;
  /** For `fallback`: what the failure policy did ('open' admits, 'closed' refuses, 'local' uses memory). */
  readonly policy?: string;
  /** For `error`: what went wrong. */
  readonly error?: unknown;
  /** For `state`: the breaker's new state and the one it left. */
  readonly state?: StoreCircuitState;
  readonly previousState?: StoreCircuitState;
}

/**
 * The end of admitted (or refused) work: the response was finished (or its connection closed).
 * `durationMs` runs from the admission decision to that moment. The HTTP guards (node:http,
 * Express, Fastify) publish `ResponseMessage` for every request they admit or refuse.
 */
export const RESPONSE_CHANNEL = 'spillway:response';

export interface ResponseMessage {
  readonly name: string;
  /** The decision's outcome: 'admitted', or the refusal's outcome for a refused request. */
  readonly outcome: DecisionOutcome;
  readonly route: string;
  readonly priority: Priority;
  /** The HTTP status sent; absent when the connection closed before the response ended. */
  readonly status?: number;
  /** True when the response ended normally; false when its connection closed first (client abort). */
  readonly finished: boolean;
  /** From the admission decision to the end of the response, in ms. */
  readonly durationMs: number;
}
