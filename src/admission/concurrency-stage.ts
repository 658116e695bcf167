/**
 * The concurrency stage: a ConcurrencyLimiter as a pipeline stage. It admits while a slot is free
 * for the request's priority and otherwise makes the request wait in the limiter's bounded queue
 * (deadline, CoDel, adaptive LIFO); every refusal is `shed` (503), with the limiter's
 * `retryAfterMs`, and says why in `cause` (`codel`, `deadline`, `queue-full`, `shed`, `closed`).
 * `refund` and `release` give the request's slot back exactly once; a release after work that did
 * not complete (the client left) gives no latency sample to the adaptive limit.
 *
 * With `keyed`, each request names its `key` to the limiter, which then refuses the keys sending
 * more than their fair share first when it must refuse (see ConcurrencyLimiter, "Fair between keys"): the
 * HTTP guard turns it on when a key function is configured (`key`, `keyHeader`, a route's `key`).
 */
import { AbortError } from '../errors.js';
import type { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import type {
  ConcurrencyDecision,
  ConcurrencyPermit,
  ConcurrencyRefusalReason,
} from '../limiters/concurrency/types.js';
import type { Decision } from '../limiters/types.js';
import type { AdmissionRequest, Stage } from './stage.js';

/** The concurrency stage's decision: a Decision, with the limiter's own reason and wait. */
export interface ConcurrencyStageDecision extends Decision {
  /** `ok` when admitted, else why the limiter refused. */
  readonly cause: 'ok' | ConcurrencyRefusalReason;
  /** Time spent in the wait queue, in ms. */
  readonly waitedMs: number;
}

/** The concurrency limiter's reason for a decision, when it came from a concurrency stage. */
export function concurrencyCause(d: Decision): ConcurrencyStageDecision['cause'] | undefined {
  return (d as Partial<ConcurrencyStageDecision>).cause;
}

export class ConcurrencyStage implements Stage {
  readonly name = 'concurrency' as const;
  readonly waits = true;
  readonly quota = false;
  readonly limiter: ConcurrencyLimiter;
  /** Whether requests name their key to the limiter (fair refusals between keys). */
  readonly keyed: boolean;
  /**
   * While true, a request this stage refuses still spends its key's quota (Stage.spendsQuota,
   * pipeline rule 5a). The HTTP guard's governor feed sets it while this stage's refusals are
   * pressure (its limiter does not follow the fed governor; governor-feed.ts). @default false
   */
  spendsQuota = false;
  readonly #permits = new WeakMap<AdmissionRequest, ConcurrencyPermit>();

  constructor(limiter: ConcurrencyLimiter, options: { keyed?: boolean } = {}) {
    this.limiter = limiter;
    this.keyed = options.keyed === true;
  }

  admit(req: AdmissionRequest): Decision | Promise<Decision> {
    const cost = Math.max(1, Math.ceil(req.cost));
    const key = this.keyed ? req.key : undefined;
    // The fast path: a free slot answers synchronously, with no promise.
    const now = this.limiter.tryAcquire({ priority: req.priority, cost, key });
    if (now.allowed) return this.#admitted(req, now);
    return this.limiter
      .acquire({ priority: req.priority, cost, key, ...(req.signal ? { signal: req.signal } : {}) })
      .then((d) => {
        if (d.allowed) return this.#admitted(req, d);
        if (d.reason === 'aborted') throw new AbortError(req.signal?.reason);
        return this.#decision(d);
      });
  }

  refund(req: AdmissionRequest): void {
    this.#release(req, false);
  }

  /** Frees the slot; `completed: false` (the client left mid-work) keeps the hold time out of the estimate. */
  release(req: AdmissionRequest, completed = true): void {
    this.#release(req, completed);
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

  #decision(d: ConcurrencyDecision): ConcurrencyStageDecision {
    const inFlight = this.limiter.inFlight;
    return {
      allowed: d.allowed,
      reason: d.allowed ? 'ok' : 'shed',
      cause: d.reason,
      waitedMs: d.waitedMs,
      remaining: Math.max(0, d.limit - inFlight),
      limit: d.limit,
      retryAfterMs: d.retryAfterMs,
      resetMs: d.allowed ? 0 : d.retryAfterMs,
      factor: d.factor,
    };
  }
}
