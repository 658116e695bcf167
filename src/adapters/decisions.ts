/**
 * Publishes the guard's decisions on `node:diagnostics_channel` (`spillway:decision`), for
 * metrics, logs and traces. Nothing is built unless the channel has subscribers: the hot path
 * costs one property read.
 */
import { channel } from 'node:diagnostics_channel';
import { concurrencyCause } from '../admission/concurrency-stage.js';
import type { Verdict } from '../admission/pipeline.js';
import type { Decision, Priority } from '../limiters/types.js';
import {
  DECISION_CHANNEL,
  type DecisionMessage,
  type DecisionOutcome,
  type DecisionStage,
} from '../observability/channels.js';
import type { Route } from './routes.js';

const decisions = channel(DECISION_CHANNEL);

/** True while someone listens: only then build a message. */
export function publishingDecisions(): boolean {
  return decisions.hasSubscribers;
}

interface Asked {
  readonly priority: Priority;
}

function message(
  name: string,
  route: Route,
  req: Asked,
  outcome: DecisionOutcome,
  stage: DecisionStage,
  d: Decision | undefined,
  queueWaitMs: number | undefined,
): DecisionMessage {
  const m: {
    -readonly [K in keyof DecisionMessage]: DecisionMessage[K];
  } = {
    name,
    outcome,
    stage,
    reason: (d && concurrencyCause(d)) ?? d?.reason ?? (outcome === 'canceled' ? 'canceled' : 'ok'),
    priority: req.priority,
    route: route.label,
    factor: d?.factor ?? 1,
    limit: d?.limit ?? Infinity,
    retryAfterMs: d === undefined || d.allowed ? 0 : d.retryAfterMs,
  };
  if (queueWaitMs !== undefined) m.queueWaitMs = queueWaitMs;
  return m;
}

/** Publishes the pipeline's verdict for one request (call only when `publishingDecisions()`). */
export function publishVerdict(
  name: string,
  route: Route,
  req: Asked,
  v: Verdict,
  status: 429 | 503 | undefined,
  queueWaitMs?: number,
): void {
  const stages = route.pipeline.stages;
  if (v.allowed) {
    if (stages.length === 0) return;
    const last = stages[stages.length - 1]!.name;
    decisions.publish(message(name, route, req, 'admitted', last, v.quota, queueWaitMs));
    return;
  }
  let outcome: DecisionOutcome = status === 429 ? 'limited' : 'shed';
  // As the pool reports it: a request that waited for a slot until its deadline timed out.
  if (concurrencyCause(v.decision) === 'deadline' && (v.decision as { waitedMs?: number }).waitedMs! > 0) {
    outcome = 'timed_out';
  }
  decisions.publish(message(name, route, req, outcome, v.stage.name, v.decision, queueWaitMs));
}

/** Publishes a wait's start (`queued`), or its end without a verdict (`canceled`, or `shed` when the guard closed). */
export function publishWait(
  name: string,
  route: Route,
  req: Asked,
  outcome: 'queued' | 'canceled' | 'shed',
  d?: Decision,
  queueWaitMs?: number,
): void {
  const waiting = route.pipeline.stages.find((s) => s.waits)?.name ?? 'key';
  decisions.publish(message(name, route, req, outcome, waiting, d, queueWaitMs));
}
