/**
 * The model server's handling of one request, as the HTTP guard does it: the loop picks the
 * request up and the protection's pipeline decides. An admission costs one service time, then (for
 * a share of requests) waits for a downstream pool slot and comes back through the loop for its
 * callback; a refusal costs `refusalCostMs` and the client may retry after its Retry-After. A
 * request the pipeline queues (a concurrency stage) costs what a refusal costs to decide, and its
 * verdict comes later; if its client left meanwhile, an admission is refunded and nothing runs.
 */
import type { ManualClock } from 'spillway';
import { retryAfterSeconds, type Verdict } from 'spillway/pipeline';
import type { Attempt } from './clients.js';
import type { Protection, SimRequest } from './protection.js';
import type { Random } from './random.js';
import type { Recorder } from './recorder.js';
import type { ServerSpec } from './scenario.js';
import type { EventLoop, Pool, WorkItem } from './server.js';

/** The HTTP adapter's default cap on Retry-After, in seconds. */
const RETRY_AFTER_MAX_SEC = 60;

export interface HandlingOptions {
  readonly clock: ManualClock;
  readonly server: ServerSpec;
  readonly loop: EventLoop;
  /** The server's requests in flight (shared with the model's signals). */
  readonly state: { inFlight: number };
  readonly pool: Pool | undefined;
  readonly protection: Protection;
  readonly recorder: Recorder;
  /** One admitted request's service time, in ms. */
  readonly service: () => number;
  /** Draws whether an admitted request goes downstream. */
  readonly routing: Random;
  /** Jitters a 503's Retry-After. */
  readonly headerRandom: Random;
  /** The client of a refused attempt may retry (after `retryAfterMs` if it honours it). */
  readonly retry: (a: Attempt, retryAfterMs: number) => void;
}

export class RequestHandling {
  readonly #o: HandlingOptions;
  readonly #callbackCost: number;
  /** Pipeline runs that have not settled yet. */
  #pending = 0;

  constructor(options: HandlingOptions) {
    this.#o = options;
    this.#callbackCost = options.server.downstream?.callbackCostMs ?? 0;
  }

  get pending(): number {
    return this.#pending;
  }

  /** A request reaches the server: it waits for the loop. */
  arrive(a: Attempt): void {
    this.#o.state.inFlight++;
    this.#o.loop.enqueue(this.#requestItem(a));
  }

  #finish(a: Attempt): void {
    this.#o.state.inFlight--;
    a.answered = true;
  }

  #complete(a: Attempt): void {
    this.#finish(a);
    const now = this.#o.clock.now();
    this.#o.recorder.completed(a.source.tenant, a.sentAt, now, !a.gaveUp && now <= a.deadline);
  }

  #refused(a: Attempt, retryAfterMs: number): void {
    this.#finish(a);
    const now = this.#o.clock.now();
    this.#o.recorder.refusalAnswered(now - a.sentAt);
    if (a.gaveUp || now > a.deadline) return; // nobody is listening any more
    this.#o.retry(a, retryAfterMs);
  }

  /** Counts a verdict when the loop acts on it; returns the loop time it costs. */
  #decided(a: Attempt, v: Verdict<SimRequest>): { cost: number; retryAfterMs: number } {
    const { clock, recorder } = this.#o;
    if (v.allowed) {
      recorder.admitted(clock.now());
      return { cost: this.#o.service(), retryAfterMs: 0 };
    }
    const d = v.decision;
    recorder.refused(clock.now(), d.reason === 'shed', a.priority);
    // What the HTTP adapter would put on the wire: whole seconds, at least 1, jittered on 503.
    const retryAfterMs =
      1000 *
      retryAfterSeconds(d.retryAfterMs, {
        maxSec: RETRY_AFTER_MAX_SEC,
        jitter: d.reason === 'shed' ? 0.5 : 0,
        random: this.#o.headerRandom,
      });
    return { cost: this.#o.server.refusalCostMs, retryAfterMs };
  }

  /** After the loop ran the handler (or wrote the refusal). Admitted work is released once answered. */
  #handled(a: Attempt, v: Verdict<SimRequest>, retryAfterMs: number): void {
    if (!v.allowed) {
      this.#refused(a, retryAfterMs);
      return;
    }
    const { pool, clock, loop } = this.#o;
    const pipeline = this.#o.protection.pipeline;
    const ds = this.#o.server.downstream;
    if (pool === undefined || ds === undefined || !(this.#o.routing() < ds.share)) {
      this.#complete(a);
      pipeline.release(a.req);
      return;
    }
    const ok = pool.use(() => {
      loop.enqueue({
        enqueuedAt: clock.now(),
        start: () => this.#callbackCost,
        end: () => {
          this.#complete(a);
          pipeline.release(a.req);
        },
      });
    });
    if (!ok) {
      this.#o.recorder.poolFailed(clock.now());
      pipeline.release(a.req);
      this.#refused(a, 0);
    }
  }

  /** The loop item that runs a verdict: the handler, or the refusal. */
  #verdictItem(a: Attempt, v: Verdict<SimRequest>): WorkItem {
    let retryAfterMs = 0;
    return {
      enqueuedAt: this.#o.clock.now(),
      start: () => {
        const d = this.#decided(a, v);
        retryAfterMs = d.retryAfterMs;
        return d.cost;
      },
      end: () => this.#handled(a, v, retryAfterMs),
    };
  }

  /**
   * A verdict after a wait (the concurrency stage queued the request). As in the guard: if the
   * client left meanwhile, an admission is refunded and nothing runs.
   */
  #resumed(a: Attempt, v: Verdict<SimRequest>): void {
    this.#pending--;
    this.#o.protection.record(v);
    if (a.gaveUp) {
      if (v.allowed) this.#o.protection.pipeline.refund(a.req);
      this.#o.recorder.canceled();
      this.#finish(a);
      return;
    }
    this.#o.loop.enqueueNext(this.#verdictItem(a, v));
  }

  /** The wait was aborted: the client left while its request waited. Nothing stays charged. */
  #abandoned(a: Attempt): void {
    this.#pending--;
    this.#o.recorder.canceled();
    this.#finish(a);
  }

  #requestItem(a: Attempt): WorkItem {
    let verdict: Verdict<SimRequest> | undefined;
    let retryAfterMs = 0;
    return {
      enqueuedAt: a.sentAt,
      start: (): number => {
        const v = this.#o.protection.pipeline.run(a.req);
        if (v instanceof Promise) {
          // Queued: deciding so costs the loop what a refusal costs; the verdict comes later.
          this.#pending++;
          v.then(
            (r) => this.#resumed(a, r),
            () => this.#abandoned(a),
          );
          return this.#o.server.refusalCostMs;
        }
        verdict = v;
        this.#o.protection.record(v);
        const d = this.#decided(a, v);
        retryAfterMs = d.retryAfterMs;
        return d.cost;
      },
      end: (): void => {
        if (verdict !== undefined) this.#handled(a, verdict, retryAfterMs);
      },
    };
  }
}
