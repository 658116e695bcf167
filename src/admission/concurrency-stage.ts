/**
 * The concurrency stage: a ConcurrencyLimiter as a pipeline stage. It admits while a slot is free
 * for the request's priority and otherwise makes the request wait in the limiter's bounded queue
 * (deadline, CoDel, adaptive LIFO); every refusal is `shed` (503), with the limiter's
 * `retryAfterMs`. `refund` and `release` give the request's slot back exactly once.
 */
import { AbortError } from '../errors.js';
import type { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import type { ConcurrencyDecision, ConcurrencyPermit } from '../limiters/concurrency/types.js';
import type { Decision } from '../limiters/types.js';
import type { AdmissionRequest, Stage } from './stage.js';

export class ConcurrencyStage implements Stage {
  readonly name = 'concurrency' as const;
  readonly waits = true;
  readonly quota = false;
  readonly limiter: ConcurrencyLimiter;
  readonly #permits = new WeakMap<AdmissionRequest, ConcurrencyPermit>();

  constructor(limiter: ConcurrencyLimiter) {
    this.limiter = limiter;
  }

  admit(req: AdmissionRequest): Decision | Promise<Decision> {
    const cost = Math.max(1, Math.ceil(req.cost));
    // The fast path: a free slot answers synchronously, with no promise.
    const now = this.limiter.tryAcquire({ priority: req.priority, cost });
    if (now.allowed) return this.#admitted(req, now);
    return this.limiter
      .acquire({ priority: req.priority, cost, ...(req.signal ? { signal: req.signal } : {}) })
      .then((d) => {
        if (d.allowed) return this.#admitted(req, d);
        if (d.reason === 'aborted') throw new AbortError(req.signal?.reason);
        return this.#decision(d);
      });
  }

  refund(req: AdmissionRequest): void {
    this.#release(req, false);
  }

  release(req: AdmissionRequest): void {
    this.#release(req, true);
  }

  #release(req: AdmissionRequest, sample: boolean): void {
    const p = this.#permits.get(req);
    if (p === undefined) return;
    this.#permits.delete(req);
    p.release({ sample });
  }

  #admitted(req: AdmissionRequest, p: ConcurrencyPermit): Decision {
    this.#permits.set(req, p);
    return this.#decision(p);
  }

  #decision(d: ConcurrencyDecision): Decision {
    const inFlight = this.limiter.inFlight;
    return {
      allowed: d.allowed,
      reason: d.allowed ? 'ok' : 'shed',
      remaining: Math.max(0, d.limit - inFlight),
      limit: d.limit,
      retryAfterMs: d.retryAfterMs,
      resetMs: d.allowed ? 0 : d.retryAfterMs,
      factor: d.factor,
    };
  }
}
