/**
 * The admission pipeline: an ordered list of stages, run the same way in every adapter and in the
 * simulator.
 *
 * The rule, all-or-nothing charging:
 * 1. Stages are asked in order. The first refusal decides: later stages are not asked.
 * 2. A stage that offers `peek` (and is not the last) is only peeked in its place; it is charged
 *    after every later stage has admitted. A refused peek is confirmed by `admit` at once, so the
 *    stage records the refusal (a block streak counts it) and answers the same. (For a stage that
 *    cannot refund exactly: the key stage offers `peek` only over a user's limiter that has a
 *    `peek` and no `refund`; every limiter `createLimiter` makes has a `refund`.)
 * 3. Every other stage is charged (`admit`) in its place: the key stage over any limiter with
 *    `refund` (in memory, or over a store such as Redis), the turn budget, the shedder, the
 *    concurrency stage. A request that then waits in a later stage (the concurrency stage's queue)
 *    holds its key's quota while it waits, so the wait cannot end in a refusal by its own quota.
 * 4. When a stage refuses, every stage already charged is refunded, last charged first (a stage
 *    without `refund` has nothing to give back, as the Shedder's learning counts what it admitted).
 *    The quota shown with the refusal has the refunded cost added back to `remaining`.
 * 5. A stage may answer with a promise (it queues the request, or decides remotely, as a key
 *    limiter over Redis does): the pipeline continues with the next stage once it settles, and
 *    rules 1-4 hold across the await (a later refusal refunds it too). If it rejects (an abort),
 *    the stages charged before it are refunded and the rejection goes to the caller. If it admits
 *    but `req.signal` aborted meanwhile (the client left while Redis answered), it and every
 *    stage charged before it are refunded, no later stage is asked, and the run rejects with the
 *    signal's reason: nothing stays charged, nothing is charged twice.
 * 5a. One exception to rule 4, for the quota only: when the refusing stage `spendsQuota` (the
 *    loop-turn budget, or a concurrency stage, while the guard feeds them to a governor), the
 *    quota stage (the key limiter) stays
 *    charged: charged now if it was peeked, not refunded if it was charged in its place. Every
 *    other stage is still refunded. Why: governor-feed.ts, "The turn budget's refusals spend the
 *    quota".
 * 6. When every stage admitted, the verdict is admitted; the caller calls `release` once the work
 *    completes (stages with a slot free it), or `refund` if the request is dropped before it runs.
 *
 * The synchronous path allocates nothing but the verdict: a promise exists only once a stage
 * answered with one. A peekable stage (rule 2) must answer `peek` and `admit` synchronously.
 */
import type { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import type { Decision } from '../limiters/types.js';
import { ConcurrencyStage } from './concurrency-stage.js';
import type { AdmissionRequest, Stage } from './stage.js';
import {
  type KeyAdmission,
  keyStage,
  type ProcessAdmission,
  shedderStage,
  turnBudgetStage,
} from './stages.js';
import type { TurnBudget } from './turn-budget.js';

export interface Admitted {
  readonly allowed: true;
  /** The quota stage's decision (for RateLimit headers), if the pipeline has one. */
  readonly quota: Decision | undefined;
}

export interface Refused<R extends AdmissionRequest = AdmissionRequest> {
  readonly allowed: false;
  /** The stage that refused. */
  readonly stage: Stage<R>;
  /** Its decision. */
  readonly decision: Decision;
  /**
   * The quota stage's decision as it stands after the refusal: its own refusal, or its admission
   * (with the refunded cost added back to `remaining` when it was refunded).
   */
  readonly quota: Decision | undefined;
}

export type Verdict<R extends AdmissionRequest = AdmissionRequest> = Admitted | Refused<R>;

export class Pipeline<R extends AdmissionRequest = AdmissionRequest> {
  readonly stages: readonly Stage<R>[];
  /** True when some stage may answer with a promise: pass `signal` in the request. */
  readonly waits: boolean;
  /** True when some stage must hear about completed work (`release`). */
  readonly releases: boolean;
  /** The stages with a `release`, in order: the only ones `release` calls. */
  readonly #releasing: readonly Stage<R>[];

  constructor(stages: readonly Stage<R>[]) {
    if (stages.length > 30) throw new RangeError('a pipeline holds at most 30 stages');
    this.stages = Object.freeze([...stages]);
    this.waits = stages.some((s) => s.waits);
    this.#releasing = this.stages.filter((s) => s.release !== undefined);
    this.releases = this.#releasing.length > 0;
  }

  /**
   * Decides for `req`, charging all-or-nothing. Synchronous unless a stage answered with a
   * promise (it waits, or decides remotely): check the result with `instanceof Promise`.
   */
  run(req: R): Verdict<R> | Promise<Verdict<R>> {
    return this.#from(0, req, 0, 0, undefined);
  }

  /**
   * `run` for a pipeline with no waiting stage (the simulator, a synchronous caller): throws a
   * TypeError if a stage answers with a promise.
   */
  runSync(req: R): Verdict<R> {
    const v = this.run(req);
    if (v instanceof Promise) {
      // The caller will not see this run: whatever it admits is given back, and nothing escapes.
      v.then(
        (late) => {
          if (late.allowed) this.refund(req);
        },
        () => {},
      );
      throw new TypeError('a pipeline stage answered with a promise; use run()');
    }
    return v;
  }

  /** Gives back every charge of an admitted request that will not run (its client left). */
  refund(req: R): void {
    for (let i = this.stages.length - 1; i >= 0; i--) this.stages[i]!.refund?.(req);
  }

  /**
   * The admitted request's work is done: stages holding a slot for it free it. `completed` false:
   * it was cut short (see Stage.release).
   */
  release(req: R, completed = true): void {
    const releasing = this.#releasing;
    for (let i = 0; i < releasing.length; i++) releasing[i]!.release!(req, completed);
  }

  /**
   * Runs stages from `i`. `charged` and `deferred` are bit masks of the stages charged so far and
   * of those peeked and still to charge; `quota` the quota stage's decision so far.
   */
  #from(
    i: number,
    req: R,
    charged: number,
    deferred: number,
    quota: Decision | undefined,
  ): Verdict<R> | Promise<Verdict<R>> {
    const stages = this.stages;
    const last = stages.length - 1;
    for (; i <= last; i++) {
      const s = stages[i]!;
      if (s.peek !== undefined && i < last) {
        const p = s.peek(req);
        if (p.allowed) {
          deferred |= 1 << i;
          if (s.quota) quota = p;
          continue;
        }
      }
      const d = s.admit(req);
      if (d instanceof Promise) return this.#await(d, i, req, charged, deferred, quota);
      if (s.quota) quota = d;
      if (!d.allowed) return this.#refuse(s, d, req, charged, quota, deferred);
      charged |= 1 << i;
    }
    for (let j = 0; deferred !== 0; j++) {
      const bit = 1 << j;
      if ((deferred & bit) === 0) continue;
      deferred &= ~bit;
      const s = stages[j]!;
      const d = s.admit(req) as Decision;
      if (s.quota) quota = d;
      if (!d.allowed) return this.#refuse(s, d, req, charged, quota);
      charged |= bit;
    }
    return { allowed: true, quota };
  }

  async #await(
    pending: Promise<Decision>,
    i: number,
    req: R,
    charged: number,
    deferred: number,
    quota: Decision | undefined,
  ): Promise<Verdict<R>> {
    const s = this.stages[i]!;
    let d: Decision;
    try {
      d = await pending;
    } catch (err) {
      this.#refundCharged(req, charged);
      throw err;
    }
    if (s.quota) quota = d;
    if (!d.allowed) return this.#refuse(s, d, req, charged, quota, deferred);
    if (req.signal?.aborted) {
      // The caller gave up while this stage was deciding: nothing stays charged.
      this.#refundCharged(req, charged | (1 << i));
      throw req.signal.reason ?? new Error('aborted');
    }
    return this.#from(i + 1, req, charged | (1 << i), deferred, quota);
  }

  #refuse(
    stage: Stage<R>,
    decision: Decision,
    req: R,
    charged: number,
    quota: Decision | undefined,
    deferred = 0,
  ): Refused<R> {
    let shown = quota;
    if (stage.spendsQuota === true) {
      // Rule 5a: the quota stays charged (peeked quota stages are charged now).
      const spent = this.#spendQuota(req, charged, deferred);
      charged = spent.charged;
      if (spent.quota !== undefined) shown = spent.quota;
    }
    if (charged !== 0) {
      const stages = this.stages;
      for (let j = stages.length - 1; j >= 0; j--) {
        if ((charged & (1 << j)) === 0) continue;
        const s = stages[j]!;
        if (s.refund === undefined) continue;
        s.refund(req);
        if (s.quota && shown !== undefined) shown = { ...shown, remaining: shown.remaining + req.cost };
      }
    }
    return { allowed: false, stage, decision, quota: shown };
  }

  /**
   * Rule 5a: charges the peeked quota stages of `deferred` and takes the quota stages out of
   * `charged` (they keep their charge). Returns what is left to refund and the quota's decision
   * after the charge, if one was made.
   */
  #spendQuota(req: R, charged: number, deferred: number): { charged: number; quota: Decision | undefined } {
    const stages = this.stages;
    let quota: Decision | undefined;
    for (let j = 0; j < stages.length; j++) {
      const s = stages[j]!;
      if (!s.quota) continue;
      const bit = 1 << j;
      if ((charged & bit) !== 0) charged &= ~bit;
      // A peeked stage answers synchronously (rule 2). It admitted when peeked, but a wait since
      // (a concurrency stage) may have let its tokens go: then it refuses and charges nothing.
      else if ((deferred & bit) !== 0) quota = s.admit(req) as Decision;
    }
    return { charged, quota };
  }

  #refundCharged(req: R, charged: number): void {
    const stages = this.stages;
    for (let j = stages.length - 1; j >= 0; j--) {
      if ((charged & (1 << j)) !== 0) stages[j]!.refund?.(req);
    }
  }
}

/**
 * The parts of one admission pipeline, as the HTTP guard compiles them from its options (per
 * route) and as spillway-sim builds them from a scenario: both call `admissionPipeline` with these,
 * so the stages, their order and their rules are the same in the simulator and in production.
 */
export interface PipelineParts {
  /** The per-key limiter (429 over a client's quota). @default none */
  readonly limiter?: KeyAdmission | undefined;
  /** Queueing wait for the key limiter, in ms; 0 refuses at once. @default 0 */
  readonly maxWaitMs?: number | undefined;
  /** The loop-turn budget (see `turnBudgetFor` for the guard's default). @default none */
  readonly turn?: TurnBudget | undefined;
  /** The process shedder (503 when overloaded). @default none */
  readonly shedder?: ProcessAdmission | undefined;
  /** The concurrency limiter (bounded in-flight work and queue time). @default none */
  readonly concurrency?: ConcurrencyLimiter | undefined;
  /**
   * The concurrency stage refuses by key fairness (the requests' `key` comes from a key function
   * the user configured). @default false
   */
  readonly fairKeys?: boolean | undefined;
}

/**
 * The one place that orders the stages: key limiter, loop-turn budget, shedder, concurrency.
 *
 * - The key limiter comes first so that a client over its own quota hears 429 (its own doing)
 *   rather than 503, and so that the later stages only count requests the client was entitled to.
 *   It is charged in its place and refunded when a later stage refuses (every limiter
 *   `createLimiter` makes has an exact `refund`): all-or-nothing, and a request waiting in the
 *   concurrency stage holds its quota meanwhile.
 * - The turn budget and the shedder decide on the process's state, cheaply and synchronously.
 * - The concurrency stage comes last because it may make the request wait and it holds a slot:
 *   a request refused by an earlier stage never queues, and one that queues has passed them all.
 */
export function admissionPipeline(parts: PipelineParts): Pipeline {
  const stages: Stage[] = [];
  if (parts.limiter !== undefined) stages.push(keyStage(parts.limiter, parts.maxWaitMs ?? 0));
  if (parts.turn !== undefined) stages.push(turnBudgetStage(parts.turn));
  if (parts.shedder !== undefined) stages.push(shedderStage(parts.shedder));
  if (parts.concurrency !== undefined)
    stages.push(new ConcurrencyStage(parts.concurrency, { keyed: parts.fairKeys === true }));
  return new Pipeline(stages);
}
