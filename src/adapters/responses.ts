/**
 * Publishes the end of each guarded response on `node:diagnostics_channel` (`spillway:response`):
 * status, time from the admission decision, and the decision's outcome. Nothing is built and no
 * listener is added unless the channel has subscribers when the decision is made: the hot path
 * costs one property read.
 */
import { channel } from 'node:diagnostics_channel';
import type { ServerResponse } from 'node:http';
import { systemClock } from '../clock.js';
import type { Priority } from '../limiters/types.js';
import { RESPONSE_CHANNEL, type ResponseMessage } from '../observability/channels.js';
import type { Route } from './routes.js';

const responses = channel(RESPONSE_CHANNEL);

/** True while someone listens: only then watch a response. */
export function publishingResponses(): boolean {
  return responses.hasSubscribers;
}

/**
 * Publishes one `ResponseMessage` when `res` closes (after its end was written, or when its
 * connection went first: then `finished` is false and no status is given). Call only when
 * `publishingResponses()`; the clock starts now, at the decision.
 */
export function watchResponse(
  res: ServerResponse,
  name: string,
  route: Route,
  req: { readonly priority: Priority },
  outcome: ResponseMessage['outcome'],
): void {
  const start = systemClock.now();
  res.once('close', () => {
    if (!responses.hasSubscribers) return;
    const finished = res.writableFinished;
    const m: { -readonly [K in keyof ResponseMessage]: ResponseMessage[K] } = {
      name,
      outcome,
      route: route.label,
      priority: req.priority,
      finished,
      durationMs: Math.max(0, systemClock.now() - start),
    };
    if (finished) m.status = res.statusCode;
    responses.publish(m);
  });
}
