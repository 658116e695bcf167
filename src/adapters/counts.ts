/**
 * The guard's counts (requests in flight, requests waiting) and the queue-depth signals a governor
 * can read from them.
 */
import { ConfigError } from '../errors.js';
import { type QueueDepthOptions, queueDepth } from '../signals/queue-depth.js';
import type { Signal } from '../signals/types.js';
import { knownKeys } from '../validate.js';

/** Which of the guard's counts to offer a governor, and where pressure starts and peaks (in requests). */
export interface GuardSignalsOptions {
  /** Requests admitted and not finished. */
  inFlight?: QueueDepthOptions;
  /** Requests waiting in queueing mode. */
  queued?: QueueDepthOptions;
  /** Signal name prefix: `<name>-in-flight`, `<name>-queued`. @default 'http' */
  name?: string;
}

export class GuardCounts {
  inFlight = 0;
  queued = 0;
  /** Requests whose forwarding header was malformed and so not believed. */
  malformedForwarded = 0;

  /** Queue-depth signals over these counts; see HttpGuard.signals. */
  signals(options: GuardSignalsOptions): Signal[] {
    const allowed = 'an object with inFlight and/or queued { target, limit }';
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('signals.options', options, allowed);
    }
    knownKeys('signals', options, ['inFlight', 'queued', 'name']);
    const name = options.name ?? 'http';
    const out: Signal[] = [];
    if (options.inFlight !== undefined) {
      out.push(queueDepth(`${name}-in-flight`, () => this.inFlight, options.inFlight));
    }
    if (options.queued !== undefined)
      out.push(queueDepth(`${name}-queued`, () => this.queued, options.queued));
    if (out.length === 0) throw new ConfigError('signals.options', options, allowed);
    return out;
  }
}
