/**
 * `spillway/otel`: decision points annotate the active OpenTelemetry span. A subscriber to the
 * decision channel adds attributes and a `spillway.decision` event to whatever span is active
 * where the decision is made (the request's server span, with the usual http instrumentation).
 * `@opentelemetry/api` is an optional peer dependency: without it `enableTracing` answers
 * `enabled: false` and nothing is subscribed, so nothing is paid.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { ConfigError } from '../errors.js';
import { knownKeys } from '../validate.js';
import { DECISION_CHANNEL, type DecisionMessage } from './channels.js';
import { priorityLabel } from './labels.js';

type AttributeValue = string | number | boolean;
type Attributes = Record<string, AttributeValue>;

/** The part of an OpenTelemetry `Span` that tracing uses (declared here, so no types are needed from the peer). */
export interface SpanLike {
  isRecording(): boolean;
  setAttributes(attributes: Attributes): unknown;
  addEvent(name: string, attributes?: Attributes): unknown;
}

/** The part of `@opentelemetry/api` that tracing uses. */
export interface TraceApi {
  readonly trace: { getActiveSpan(): SpanLike | undefined };
}

/** A variable, so that TypeScript does not need the optional peer's types to build. */
const OTEL_API = '@opentelemetry/api';

export interface TracingOptions {
  /** The API module to use. @default `await import('@opentelemetry/api')` */
  api?: TraceApi;
  /** Also add a `spillway.decision` span event per decision (a queued request gets two). @default true */
  events?: boolean;
  /** Annotate only these outcomes. @default all */
  outcomes?: readonly DecisionMessage['outcome'][];
}

export interface Tracing {
  /** Whether decisions are being traced. */
  readonly enabled: boolean;
  /** Why not, when not enabled. */
  readonly reason?: string;
  /** Stops tracing. Idempotent. */
  disable(): void;
}

const OPTION_KEYS = ['api', 'events', 'outcomes'] as const;

/** The span attributes a decision sets (OpenTelemetry attribute names). */
export const SPAN_ATTRIBUTES = Object.freeze({
  decision: 'spillway.decision',
  reason: 'spillway.reason',
  factor: 'spillway.factor',
  limit: 'spillway.limit',
  retryAfterMs: 'spillway.retry_after_ms',
  policy: 'spillway.policy',
  priority: 'spillway.priority',
  stage: 'spillway.stage',
  name: 'spillway.name',
  queueWaitMs: 'spillway.queue_wait_ms',
});

/**
 * Starts annotating active spans with admission decisions. Resolves `enabled: false` (and
 * subscribes nothing) when `@opentelemetry/api` cannot be loaded.
 */
export async function enableTracing(options: TracingOptions = {}): Promise<Tracing> {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object or undefined');
  }
  knownKeys('enableTracing', options, OPTION_KEYS);
  let api = options.api;
  if (api === undefined) {
    try {
      api = (await import(OTEL_API)) as TraceApi;
    } catch (error) {
      return {
        enabled: false,
        reason: `@opentelemetry/api could not be loaded (${error instanceof Error ? error.message.split('\n')[0] : String(error)}): install it to trace decisions`,
        disable() {},
      };
    }
  }
  return traceDecisions(api, options);
}

/** The synchronous form of `enableTracing`, for a caller that already holds the API module. */
export function traceDecisions(api: TraceApi, options: Omit<TracingOptions, 'api'> = {}): Tracing {
  if (typeof api !== 'object' || api === null || typeof api.trace?.getActiveSpan !== 'function') {
    throw new ConfigError('api', api, 'the @opentelemetry/api module (with trace.getActiveSpan)');
  }
  const events = options.events ?? true;
  if (typeof events !== 'boolean') throw new ConfigError('events', events, 'true or false');
  const outcomes = options.outcomes === undefined ? undefined : new Set(options.outcomes);
  const trace = api.trace;
  const A = SPAN_ATTRIBUTES;

  const onDecision = (raw: unknown): void => {
    const span = trace.getActiveSpan();
    if (span === undefined || !span.isRecording()) return;
    if (typeof raw !== 'object' || raw === null) return;
    const m = raw as DecisionMessage;
    if (outcomes !== undefined && !outcomes.has(m.outcome)) return;
    const attributes: Attributes = {
      [A.decision]: m.outcome,
      [A.reason]: m.reason,
      [A.factor]: m.factor,
      [A.limit]: m.limit,
      [A.policy]: m.route,
      [A.priority]: priorityLabel(m.priority),
      [A.stage]: m.stage,
      [A.name]: m.name,
    };
    // Infinity (never admitted at this factor) is not a value exporters carry: leave it out.
    if (Number.isFinite(m.retryAfterMs)) attributes[A.retryAfterMs] = m.retryAfterMs;
    if (typeof m.queueWaitMs === 'number') attributes[A.queueWaitMs] = m.queueWaitMs;
    try {
      span.setAttributes(attributes);
      if (events) span.addEvent('spillway.decision', attributes);
    } catch {
      // A tracer's failure must not fail the request being decided.
    }
  };

  subscribe(DECISION_CHANNEL, onDecision);
  let enabled = true;
  return {
    get enabled() {
      return enabled;
    },
    disable() {
      if (!enabled) return;
      enabled = false;
      unsubscribe(DECISION_CHANNEL, onDecision);
    },
  };
}
