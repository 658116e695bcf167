/**
 * One stage of the admission pipeline: the contract every stage implements (loop-turn budget, key
 * limiter, shedder, concurrency). Pure types: no runtime code.
 *
 * A stage decides for one request and, when it admits, charges it (spends a token, takes a slot).
 * The pipeline runs its stages in order and keeps charging all-or-nothing: when a later stage
 * refuses, every earlier stage that charged is refunded, so a refused request costs no stage
 * anything it can give back. The one exception is a stage that `spendsQuota` (the loop-turn budget
 * or a concurrency stage, while the guard feeds them to a governor): its refusal leaves the key's
 * quota charged. See Pipeline for the exact rule.
 *
 * ```
 *   admit(req) ─▶ Decision            synchronous: the fast path, no promise, no allocation
 *              └▶ Promise<Decision>   a waiting stage (`waits`) makes the request wait in a queue and
 *                                     rejects with an AbortError when `req.signal` aborts; a remote
 *                                     stage (a key limiter over a shared store such as Redis)
 *                                     decides elsewhere and settles on its own, within a bound of
 *                                     its own (the store's command timeout)
 *   peek(req)  ─▶ Decision            optional, for a stage that cannot refund: what admit would
 *                                     answer, without charging (then charged last)
 *   refund(req)                       optional: undo admit's charge (the request was refused later,
 *                                     or its client left)
 *   release(req, completed?)          optional: the admitted work ended (a slot is free again);
 *                                     `completed` false when it was cut short (the client left)
 * ```
 *
 * Any stage may answer with a promise, whatever its `waits`: the pipeline then continues once it
 * settles and keeps charging all-or-nothing across the await. `waits` only says that the stage
 * queues, so the caller must pass a `signal` before running the pipeline (and counts the request
 * as queued). For a remote stage the caller may set `signal` once `run` has answered with a
 * promise: the pipeline reads it only after each await, and a request whose signal aborted by then
 * is refunded everywhere it was charged and charged nowhere else.
 */
import type { DecisionStage } from '../observability/channels.js';
import type { Decision, Priority } from '../limiters/types.js';

/** What a stage decides on: one request, as the pipeline sees it. */
export interface AdmissionRequest {
  /** The per-key quota's key (a client address, an API key, a tenant). */
  readonly key: string;
  readonly priority: Priority;
  /** The request's weight, > 0. */
  readonly cost: number;
  /**
   * Aborts a wait: a waiting stage must reject its promise with an AbortError once this aborts
   * (the client left, the guard closed), and hold no charge for it. Set by the caller whenever
   * the pipeline `waits`; may be set after `run` answered with a promise (see above).
   */
  readonly signal?: AbortSignal;
}

export interface Stage<R extends AdmissionRequest = AdmissionRequest> {
  /** Which stage this is, in decision messages and refusals. */
  readonly name: DecisionStage;
  /**
   * True when `admit` may make the request wait in a queue. The caller then passes a `signal`; a
   * pipeline with no waiting stage never allocates one. (A remote stage, whose promise settles on
   * its own, has `waits: false`.)
   */
  readonly waits: boolean;
  /**
   * True for the stage whose decision describes the client's quota (the key limiter): its
   * decision is what RateLimit headers report.
   */
  readonly quota: boolean;
  /**
   * Decides and, when admitted, charges. Refusals are values (`allowed: false`), never
   * exceptions. Answer synchronously whenever possible: a promise costs a microtask. A remote
   * stage's promise should not reject (a store that cannot answer decides by its failure policy);
   * if it does, the pipeline refunds the stages charged before it and rejects with that error.
   */
  admit(req: R): Decision | Promise<Decision>;
  /**
   * What `admit` would answer now, without charging. A stage that cannot `refund` exactly offers
   * this instead: the pipeline then peeks it in its place and charges it only after every later
   * stage has admitted. Must be synchronous. A stage that can refund should not offer it: charged in
   * its place, it holds its charge while a later stage makes the request wait, and its admitted
   * path is one call rather than two.
   */
  peek?(req: R): Decision;
  /**
   * Gives back what `admit` charged for `req` (the same cost, the same slot): exactly, so that a
   * refused request leaves the stage as it found it (the key limiters: KeyedLimiter.refund).
   */
  refund?(req: R): void;
  /**
   * The admitted work is done (the response finished, or its connection closed). `completed` is
   * false when it was cut short (the connection closed before the response finished): a stage that
   * learns from how long work takes leaves it out. @default true
   */
  release?(req: R, completed?: boolean): void;
  /**
   * True while a refusal by this stage still spends the request's quota: the pipeline then charges
   * the quota stage (the key limiter) as if the request had been admitted, instead of giving it
   * back. The guard's governor feed sets it on the loop-turn budget (TurnBudget.spendsQuota) and on
   * a concurrency stage whose refusals it feeds, while it feeds a governor ("The turn budget's
   * refusals spend the quota" in governor-feed.ts). Every other refusal charges nothing.
   * @default false
   */
  readonly spendsQuota?: boolean;
}
