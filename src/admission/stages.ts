/**
 * The pipeline's stages over Spillway's parts: the loop-turn budget, a key limiter (429 over a
 * client's quota) and a process shedder (503 when overloaded). The concurrency stage lives with
 * the pool. Each adapts one part to the `Stage` contract and adds nothing on the hot path.
 */
import type { Decision, Priority } from '../limiters/types.js';
import type { AdmissionRequest, Stage } from './stage.js';
import type { TurnBudget } from './turn-budget.js';

/** Per-key admission: a KeyedLimiter (`createLimiter`) fits, or anything with the same `take`. */
export interface KeyAdmission {
  take(key: string, options: { cost: number; priority: Priority }): Decision;
  /** Used in queueing mode (`maxWaitMs > 0`); without it the guard refuses at once. */
  acquire?(
    key: string,
    options: { cost: number; priority: Priority; maxWaitMs: number; signal: AbortSignal },
  ): Promise<Decision>;
  /**
   * What `take` would answer, without charging. With it (and a later stage), the pipeline asks
   * the key first, then the later stages, and charges the key only when all admit: all-or-nothing.
   */
  peek?(key: string, options: { cost: number; priority: Priority }): Decision;
  /** Without `peek`: called to give back a key's charge when a later stage refuses. */
  refund?(key: string, cost: number): void;
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

/** The loop-turn budget as a stage: refuses the rest of an event-loop turn that ran too long. */
export function turnBudgetStage(budget: TurnBudget): Stage {
  return {
    name: 'turn-budget',
    waits: false,
    quota: false,
    admit: (req) => budget.admit(req),
  };
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
    admit: (req) => shedder.admit({ priority: req.priority, cost: req.cost }),
  };
  if (typeof shedder.complete === 'function') stage.release = (req) => shedder.complete!(req.cost);
  return stage;
}

/**
 * A key limiter as a stage. With `maxWaitMs > 0` and an `acquire`, it queues the request (up to
 * `maxWaitMs`) instead of refusing at once; otherwise it decides at once, and offers `peek` when
 * the limiter does, so the pipeline charges the key last.
 */
export function keyStage(limiter: KeyAdmission, maxWaitMs = 0): Stage {
  const refund =
    limiter.refund === undefined
      ? undefined
      : (req: AdmissionRequest): void => limiter.refund!(req.key, req.cost);
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
    admit: (req) => limiter.take(req.key, { cost: req.cost, priority: req.priority }),
  };
  if (limiter.peek !== undefined)
    stage.peek = (req) => limiter.peek!(req.key, { cost: req.cost, priority: req.priority });
  if (refund !== undefined) stage.refund = refund;
  return stage;
}
