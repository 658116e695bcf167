/**
 * The pipeline's stages over Spillway's parts: the loop-turn budget, a key limiter (429 over a
 * client's quota) and a process shedder (503 when overloaded). The concurrency stage lives with
 * the pool. Each adapts one part to the `Stage` contract and adds nothing on the hot path.
 */
import { KeyedLimiter, KeyedWindowLimiter } from '../limiters/keyed-limiter.js';
import { Shedder } from '../limiters/shedder.js';
import type { Decision, Priority } from '../limiters/types.js';
import type { AdmissionRequest, Stage } from './stage.js';
import type { TurnBudget } from './turn-budget.js';

/**
 * Per-key admission: a KeyedLimiter or a window limiter (`createLimiter`), a StoreLimiter
 * (`createLimiter({ store })`, its buckets in Redis or another shared store), or anything with the
 * same `take`.
 */
export interface KeyAdmission {
  /**
   * Decides and charges. A limiter over a shared store answers with a promise (one round trip); the
   * guard then answers the request once it settles. Such a promise should not reject: a store that
   * cannot answer decides by its failure policy, within its own timeout.
   */
  take(key: string, options: { cost: number; priority: Priority }): Decision | Promise<Decision>;
  /** Used in queueing mode (`maxWaitMs > 0`); without it the guard refuses at once. */
  acquire?(
    key: string,
    options: { cost: number; priority: Priority; maxWaitMs: number; signal: AbortSignal },
  ): Promise<Decision>;
  /**
   * Gives back what `take` (or `acquire`) charged for `key` (a later stage refused the request, or
   * its client left before it ran). With it, the key is charged first and refunded when needed,
   * so a request that waits in a later stage holds its quota meanwhile. Every limiter
   * `createLimiter` makes has one: exact in memory (KeyedLimiter.refund,
   * KeyedWindowLimiter.refund), and over a store the way that costs no second round trip. May
   * answer with a promise (it is not awaited; a rejection is ignored, the store reports its own
   * failures).
   */
  refund?(key: string, options: { cost: number; priority: Priority }): void | Promise<void>;
  /**
   * What `take` would answer, without charging. Used only by a limiter without `refund`, and then
   * it must answer synchronously: with it (and a later stage), the pipeline asks the key first,
   * then the later stages, and charges the key only when all admit: all-or-nothing.
   */
  peek?(key: string, options: { cost: number; priority: Priority }): Decision | Promise<Decision>;
  /** When both are numbers, `RateLimit-Policy` advertises `w = burst / ratePerSec` seconds. */
  readonly ratePerSec?: number;
  readonly burst?: number;
}

/** Process-level admission: a Shedder fits. A refusal always means 503. */
export interface ProcessAdmission {
  admit(options: { priority: Priority; cost: number }): Decision;
  /** Told when admitted work completes (a Shedder learns the completion rate from it). */
  complete?(cost: number): void;
}

/**
 * The loop-turn budget as a stage: refuses the rest of an event-loop turn that ran too long.
 *
 * A class, not an object literal: `spendsQuota` follows the budget's, so it is a getter, and a
 * getter written into an object literal sits on the object itself, which made every property the
 * pipeline reads on its stages dearer (+40 ns a request through three stages, measured in
 * process); on the prototype it costs nothing until a refusal reads it.
 */
class TurnBudgetStage implements Stage {
  readonly name = 'turn-budget';
  readonly waits = false;
  readonly quota = false;

  constructor(readonly budget: TurnBudget) {}

  get spendsQuota(): boolean {
    return this.budget.spendsQuota;
  }

  admit(req: AdmissionRequest): Decision {
    return this.budget.admit(req);
  }
}

export function turnBudgetStage(budget: TurnBudget): Stage & { readonly budget: TurnBudget } {
  return new TurnBudgetStage(budget);
}

/**
 * A process shedder as a stage. It has no refund: what it admitted is what it learns from. With a
 * `complete` (a Shedder has one), `release` reports the completed cost, so the Shedder learns the
 * rate the process completes rather than the rate it admits.
 */
export function shedderStage(shedder: ProcessAdmission): Stage {
  const stage: Stage = {
    name: 'shedder',
    waits: false,
    quota: false,
    // A Shedder reads only `cost` and `priority` of its options: it is handed the request itself,
    // which has both, rather than a copy of them made for every request. Any other shedder gets
    // exactly the two fields, as before.
    admit:
      shedder instanceof Shedder
        ? (req) => shedder.admit(req)
        : (req) => shedder.admit({ priority: req.priority, cost: req.cost }),
  };
  if (typeof shedder.complete === 'function') stage.release = (req) => shedder.complete!(req.cost);
  return stage;
}

/**
 * A key limiter as a stage. With `maxWaitMs > 0` and an `acquire`, it queues the request (up to
 * `maxWaitMs`) instead of refusing at once. Either way, when the limiter has `refund` (every
 * limiter `createLimiter` makes: KeyedLimiter, KeyedWindowLimiter, StoreLimiter), the key is
 * charged in its place and refunded on a later refusal (rules 3 and 4 of the pipeline): a request
 * that then waits in the concurrency stage holds its quota while it waits. A limiter without
 * `refund` but with a synchronous `peek` is peeked in its place and charged last (rule 2); one with
 * neither is charged in its place with nothing to give back.
 */
export function keyStage(limiter: KeyAdmission, maxWaitMs = 0): Stage {
  // A KeyedLimiter decides `take(key)` exactly as `take(key, { cost: 1 })` at normal priority, on its
  // short path (`takeOne`), and gives it back on its short path too (`refund(key)`, `refundOne`): a
  // request of cost 1 and normal priority, most of them, takes both. An in-memory limiter's refund
  // answers nothing; a remote one's may answer a promise (not awaited, its rejection ignored).
  const plain = limiter instanceof KeyedLimiter;
  const local = plain || limiter instanceof KeyedWindowLimiter;
  let refund: ((req: AdmissionRequest) => void) | undefined;
  if (plain) {
    refund = (req) =>
      req.cost === 1 && req.priority === 'normal'
        ? limiter.refund(req.key)
        : limiter.refund(req.key, { cost: req.cost, priority: req.priority });
  } else if (local) {
    refund = (req) => {
      limiter.refund!(req.key, { cost: req.cost, priority: req.priority });
    };
  } else if (limiter.refund !== undefined) {
    refund = (req) => {
      const r = limiter.refund!(req.key, { cost: req.cost, priority: req.priority });
      if (r !== undefined && typeof (r as Promise<void>).then === 'function') r.then(undefined, ignore);
    };
  }
  if (maxWaitMs > 0 && limiter.acquire !== undefined) {
    const stage: Stage = {
      name: 'key',
      waits: true,
      quota: true,
      admit: (req) =>
        limiter.acquire!(req.key, {
          cost: req.cost,
          priority: req.priority,
          maxWaitMs,
          signal: req.signal ?? new AbortController().signal,
        }),
    };
    if (refund !== undefined) stage.refund = refund;
    return stage;
  }
  const stage: Stage = {
    name: 'key',
    waits: false,
    quota: true,
    admit: plain
      ? (req) =>
          req.cost === 1 && req.priority === 'normal'
            ? limiter.take(req.key)
            : limiter.take(req.key, { cost: req.cost, priority: req.priority })
      : (req) => limiter.take(req.key, { cost: req.cost, priority: req.priority }),
  };
  if (refund !== undefined) stage.refund = refund;
  else if (limiter.peek !== undefined) {
    stage.peek = (req) => limiter.peek!(req.key, { cost: req.cost, priority: req.priority }) as Decision;
  }
  return stage;
}

/** A refund that failed is the store's to report (RedisStore emits `error`), never an unhandled rejection. */
const ignore = (): void => {};
