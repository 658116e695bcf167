/**
 * A concurrency limiter: at most `limit` units of work in flight, the rest in a bounded wait
 * queue ordered by priority, each with a deadline and an AbortSignal. While the queue stands it
 * sheds on sojourn time (CoDel) and serves the newest first (adaptive LIFO); see codel.ts. The
 * limit is fixed, or learned from latency by a Vegas estimator (vegas.ts), and the throttle factor
 * scales it per priority: `max(1, ⌊limit · effectiveFactor(f, p)⌋)`, so lower priorities feel a
 * cut first and every priority keeps at least one slot.
 *
 * Nothing is lost: every `acquire` settles with a decision (admitted, or refused with a reason),
 * and every permit's slot is given back exactly once (`release` is idempotent). `close()` refuses
 * every waiter.
 */
import { EventEmitter } from 'eventemitter3';
import { type Clock, systemClock, type TimerHandle } from '../../clock.js';
import { ConfigError } from '../../errors.js';
import { type ClosableLoopDelay, type LoopDelaySource, systemLoopDelay } from '../../loop-delay.js';
import { abortSignalOption, clockOption, integer } from '../../validate.js';
import { effectiveFactor, priorityLevel } from '../priority.js';
import type { Priority } from '../types.js';
import { StandingQueue } from './codel.js';
import {
  type ConcurrencyLimiterOptions,
  type ConcurrencyLimiterUpdate,
  type ResolvedConcurrencyOptions,
  resolveConcurrencyOptions,
  updateConcurrencyOptions,
  waitMs,
} from './options.js';
import type {
  ConcurrencyAcquireOptions,
  ConcurrencyDecision,
  ConcurrencyEvents,
  ConcurrencyPermit,
  ConcurrencyRefusal,
  ConcurrencyRefusalReason,
  ConcurrencySnapshot,
  ReleaseOptions,
} from './types.js';
import { VegasEstimator } from './vegas.js';
import { type QueueNode, WaitQueue } from './wait-queue.js';

interface Waiter extends QueueNode {
  readonly priority: Priority;
  readonly cost: number;
  readonly resolve: (d: ConcurrencyDecision) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  timer: TimerHandle | undefined;
}

/** Weight of one release in the mean hold time (an EWMA over releases). */
const HOLD_WEIGHT = 0.1;

export class ConcurrencyLimiter extends EventEmitter<ConcurrencyEvents> {
  #options: ResolvedConcurrencyOptions;
  readonly #clock: Clock;
  readonly #queue = new WaitQueue<Waiter>();
  readonly #codel: StandingQueue | undefined;
  readonly #vegas: VegasEstimator | undefined;
  readonly #unsubscribe: (() => void) | undefined;
  /** The loop-delay source this limiter created (the default), closed with it. */
  readonly #ownLoopDelay: ClosableLoopDelay | undefined;
  #inFlight = 0;
  #holdMs = 0;
  #closed = false;
  #codelTimer: TimerHandle | undefined;
  #codelDue = Infinity;
  #lastLimit: number;

  constructor(options: ConcurrencyLimiterOptions = {}) {
    super();
    this.#options = resolveConcurrencyOptions(options);
    this.#clock = clockOption('clock', options.clock, systemClock);
    const now = this.#clock.now();
    const c = this.#options.codel;
    this.#codel = c === undefined ? undefined : new StandingQueue(c.targetMs, c.intervalMs, now);
    let loopDelay: LoopDelaySource | undefined;
    if (this.#options.vegas !== undefined) {
      const given = this.#options.loopDelay;
      // The default reads this process's loop, which only the system clock's time describes.
      if (given === undefined && this.#clock === systemClock) loopDelay = this.#ownLoopDelay = systemLoopDelay();
      else if (given !== undefined && given !== false) loopDelay = given;
    }
    this.#vegas =
      this.#options.vegas === undefined ? undefined : new VegasEstimator(this.#options.vegas, now, loopDelay);
    const f = this.#options.factor;
    this.#unsubscribe = typeof f === 'number' ? undefined : f.subscribe(() => this.#onFactor());
    this.#lastLimit = this.limit;
  }

  /** The resolved, frozen options in force (`update` replaces them). */
  get options(): ResolvedConcurrencyOptions {
    return this.#options;
  }

  /**
   * Changes `limit` (a fixed limit), `maxQueue` and `maxWaitMs` in place, for a policy reload.
   * Every setting is validated first: a bad one throws a ConfigError naming it, and nothing
   * changes. Nothing is lost:
   * - a lower `limit` leaves the work in flight alone and admits no more until it is below the
   *   new limit; a higher one admits waiters at once;
   * - a `maxQueue` below the waiters now refuses the excess with `queue-full` (lowest priority,
   *   oldest first, as a newcomer's eviction does); the others keep waiting;
   * - `maxWaitMs` applies to waits that start from now on (a waiter keeps the deadline it got).
   */
  update(settings: ConcurrencyLimiterUpdate): void {
    this.#options = updateConcurrencyOptions(this.#options, settings);
    if (this.#closed) return;
    const now = this.#clock.now();
    const max = this.#options.maxQueue;
    while (this.#queue.size > max) {
      const w = this.#queue.peekLowest()!;
      this.#queue.remove(w);
      this.#finish(w, this.#refusal(w.priority, 'queue-full', now - w.enqueuedAt));
    }
    this.#noteOldest(now);
    this.#limitMoved();
    this.#dispatch();
  }

  /** Units in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.#queue.size;
  }

  /** The limit before the factor: fixed, or the adaptive estimate now. */
  get limit(): number {
    return this.#options.limit ?? this.#vegas!.limit;
  }

  /** The throttle factor now, from 0 to 1. */
  get factor(): number {
    const f = this.#options.factor;
    return typeof f === 'number' ? f : f.factor;
  }

  /** The limit for `priority` after the factor, never below 1. */
  limitFor(priority: Priority = 'normal'): number {
    return this.#limitAt(priorityLevel(priority));
  }

  /** Age of the oldest waiter, in ms (0 when none waits). */
  get oldestWaitMs(): number {
    const t = this.#queue.oldestEnqueuedAt();
    return t === undefined ? 0 : this.#clock.now() - t;
  }

  get closed(): boolean {
    return this.#closed;
  }

  snapshot(): ConcurrencySnapshot {
    const now = this.#clock.now();
    return {
      inFlight: this.#inFlight,
      waiting: this.#queue.size,
      limit: this.limit,
      effectiveLimit: this.limitFor('normal'),
      factor: this.factor,
      adaptive: this.#vegas !== undefined,
      standingQueue: this.#standing(now),
      oldestWaitMs: this.oldestWaitMs,
      holdMs: this.#holdMs,
      ...(this.#vegas ? { rttNoLoadMs: this.#vegas.rttNoLoadMs, loopDelayMs: this.#vegas.loopDelayMs } : {}),
      closed: this.#closed,
    };
  }

  /** Admits at once when a slot is free for this priority and no one of equal or higher priority waits; never queues. */
  tryAcquire(options: Omit<ConcurrencyAcquireOptions, 'maxWaitMs' | 'signal'> = {}): ConcurrencyDecision {
    const { priority, level, cost } = this.#request(options);
    if (this.#closed) return this.#refuse(priority, 'closed', 0);
    if (this.#mayEnter(level, cost)) return this.#admit(priority, level, cost, 0);
    return this.#refuse(priority, 'deadline', 0);
  }

  /**
   * Waits for a slot. Always resolves with a decision: admitted (with `release`), or refused with
   * a reason (`queue-full`, `deadline`, `codel`, `shed`, `aborted`, `closed`). Never rejects.
   */
  acquire(options: ConcurrencyAcquireOptions = {}): Promise<ConcurrencyDecision> {
    const { priority, level, cost } = this.#request(options);
    const maxWaitMs =
      options.maxWaitMs === undefined ? this.#options.maxWaitMs : waitMs('maxWaitMs', options.maxWaitMs);
    const signal = abortSignalOption('signal', options.signal);
    if (this.#closed) return Promise.resolve(this.#refuse(priority, 'closed', 0));
    if (signal?.aborted) return Promise.resolve(this.#refuse(priority, 'aborted', 0));
    const now = this.#clock.now();
    this.#sweep(now);
    if (this.#mayEnter(level, cost)) return Promise.resolve(this.#admit(priority, level, cost, 0));
    if (maxWaitMs === 0) return Promise.resolve(this.#refuse(priority, 'deadline', 0));
    const refusal = this.#makeRoom(priority, level);
    if (refusal !== undefined) return Promise.resolve(refusal);

    return new Promise<ConcurrencyDecision>((resolve) => {
      const w: Waiter = {
        level,
        enqueuedAt: now,
        prev: undefined,
        next: undefined,
        queued: false,
        priority,
        cost,
        resolve,
        signal,
        onAbort: undefined,
        timer: undefined,
      };
      if (signal) {
        w.onAbort = () => this.#settleWaiter(w, 'aborted');
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      if (maxWaitMs !== Infinity) {
        // The caller awaits this: the wait is work in progress and keeps the process alive.
        w.timer = this.#clock.setTimeout(() => this.#settleWaiter(w, 'deadline'), maxWaitMs, {
          keepAlive: true,
        });
      }
      this.#queue.push(w);
      this.#noteOldest(now);
      this.emit('queued', { priority, waiting: this.#queue.size });
      this.#schedule(now);
    });
  }

  /** Refuses every waiter with `closed` and every later `acquire`; permits in flight stay valid. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    this.#ownLoopDelay?.close();
    this.#codelTimer?.cancel();
    this.#codelTimer = undefined;
    const now = this.#clock.now();
    for (const w of this.#queue.drain())
      this.#finish(w, this.#refusal(w.priority, 'closed', now - w.enqueuedAt));
  }

  #request(options: ConcurrencyAcquireOptions): { priority: Priority; level: number; cost: number } {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object');
    }
    // Left out means the default; `null`, like any other wrong value, is refused.
    const priority = options.priority === undefined ? 'normal' : options.priority;
    const cost = options.cost === undefined ? 1 : integer('cost', options.cost, 1);
    return { priority, level: priorityLevel(priority), cost };
  }

  #limitAt(level: number): number {
    const e = effectiveFactor(this.factor, level);
    return Math.max(1, Math.floor(this.limit * e));
  }

  /** A unit fits when it stays within its priority's limit; a lone unit always fits (no starvation by cost). */
  #fits(level: number, cost: number): boolean {
    return this.#inFlight === 0 || this.#inFlight + cost <= this.#limitAt(level);
  }

  /** A newcomer enters at once when it fits and nobody of its priority or higher waits. */
  #mayEnter(level: number, cost: number): boolean {
    const head = this.#queue.peek(false);
    if (head !== undefined && head.level >= level) return false;
    return this.#fits(level, cost);
  }

  /** Refuses the newcomer, or evicts a waiter to make room for it; undefined when it may queue. */
  #makeRoom(priority: Priority, level: number): ConcurrencyRefusal | undefined {
    const max = this.#options.maxQueue;
    const size = this.#queue.size;
    // The factor shortens the queue for each priority as it shortens the limit.
    const e = effectiveFactor(this.factor, level);
    if (size < max && size >= Math.floor(max * e)) return this.#refuse(priority, 'shed', 0);
    if (size < max) return undefined;
    const lowest = this.#queue.peekLowest();
    const now = this.#clock.now();
    // Evict the oldest of the lowest priority for a newcomer of higher priority, or of the same
    // priority while the queue stands (then the oldest would be served last anyway).
    if (lowest !== undefined && (lowest.level < level || (lowest.level === level && this.#lifo(now)))) {
      this.#settleWaiter(lowest, 'queue-full');
      return undefined;
    }
    return this.#refuse(priority, 'queue-full', 0);
  }

  #standing(now: number): boolean {
    return this.#codel?.standing(now, this.#queue.size) === true;
  }

  #lifo(now: number): boolean {
    return this.#options.order === 'adaptive' && this.#standing(now);
  }

  #targetMs(): number {
    return this.#codel!.effectiveTargetMs(this.#holdMs, this.limit);
  }

  /** While the queue stands, refuses every waiter whose sojourn reached the target. */
  #sweep(now: number): void {
    if (!this.#standing(now)) return;
    const target = this.#targetMs();
    // The same expression as the timer's due time (#schedule), so rounding cannot leave a waiter
    // that the timer finds due but the sweep does not.
    const expired = this.#queue.removeExpired((t) => t + target <= now);
    if (expired.length === 0) return;
    this.#codel!.above(now);
    this.#noteOldest(now);
    for (const w of expired) this.#finish(w, this.#refusal(w.priority, 'codel', now - w.enqueuedAt));
  }

  /** Tells CoDel where the oldest waiter stands after the queue changed. */
  #noteOldest(now: number): void {
    this.#codel?.oldest(now, this.#queue.oldestEnqueuedAt(), this.#targetMs());
  }

  /** Admits waiters while slots are free: highest priority first, newest first while the queue stands. */
  #dispatch(): void {
    const now = this.#clock.now();
    // Free slots are filled first, then the stale are refused: when this runs late (a busy event
    // loop, a timer that fired late) every waiter may have passed the target, and refusing them all
    // first would leave the slots idle until the next arrival. CoDel drops at dequeue but still
    // sends; here too a free slot always takes the best waiter (the newest, while the queue stands).
    for (;;) {
      const standing = this.#standing(now);
      const w = this.#queue.peek(standing && this.options.order === 'adaptive');
      if (w === undefined || !this.#fits(w.level, w.cost)) break;
      this.#queue.remove(w);
      // A waiter served at or past the target while the queue stands reached it all the same.
      if (standing && w.enqueuedAt + this.#targetMs() <= now) this.#codel!.above(now);
      this.#noteOldest(now);
      this.#finish(w, this.#admit(w.priority, w.level, w.cost, now - w.enqueuedAt));
    }
    this.#sweep(now);
    this.#schedule(now);
  }

  /** One timer for the next CoDel event: the queue becoming standing, or its oldest waiter reaching the target. */
  #schedule(now: number): void {
    let due = Infinity;
    if (this.#codel !== undefined && this.#queue.size > 0 && !this.#closed) {
      due = this.#standing(now)
        ? this.#queue.oldestEnqueuedAt()! + this.#targetMs()
        : this.#codel.standingAt();
    }
    if (due === this.#codelDue) return;
    this.#codelTimer?.cancel();
    this.#codelTimer = undefined;
    this.#codelDue = due;
    if (due === Infinity) return;
    this.#codelTimer = this.#clock.setTimeout(
      () => {
        this.#codelTimer = undefined;
        this.#codelDue = Infinity;
        this.#dispatch();
      },
      due - now,
      { keepAlive: true },
    );
  }

  #settleWaiter(w: Waiter, reason: ConcurrencyRefusalReason): void {
    if (!this.#queue.remove(w)) return;
    const now = this.#clock.now();
    this.#noteOldest(now);
    this.#finish(w, this.#refusal(w.priority, reason, now - w.enqueuedAt));
    this.#schedule(now);
  }

  #finish(w: Waiter, d: ConcurrencyDecision): void {
    w.timer?.cancel();
    if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
    if (!d.allowed) this.#emitRefused(d);
    w.resolve(d);
  }

  #admit(priority: Priority, level: number, cost: number, waitedMs: number): ConcurrencyPermit {
    this.#inFlight += cost;
    this.#vegas?.inFlight(this.#inFlight);
    const admittedAt = this.#clock.now();
    const limit = this.#limitAt(level);
    let released = false;
    const permit: ConcurrencyPermit = {
      allowed: true,
      reason: 'ok',
      retryAfterMs: 0,
      cost,
      waitedMs,
      limit,
      factor: this.factor,
      priority,
      release: (options?: ReleaseOptions) => {
        if (released) return false;
        released = true;
        this.#release(cost, admittedAt, options);
        return true;
      },
    };
    this.emit('admitted', { priority, waitedMs, inFlight: this.#inFlight, limit });
    return permit;
  }

  #release(cost: number, admittedAt: number, options: ReleaseOptions | undefined): void {
    const now = this.#clock.now();
    const heldMs = now - admittedAt;
    this.#inFlight -= cost;
    if (options?.sample !== false) {
      this.#holdMs = this.#holdMs === 0 ? heldMs : this.#holdMs + HOLD_WEIGHT * (heldMs - this.#holdMs);
      if (this.#vegas?.sample(now, heldMs, admittedAt, options?.dropped === true, this.#inFlight))
        this.#limitMoved();
    }
    this.emit('released', { heldMs, inFlight: this.#inFlight });
    this.#dispatch();
  }

  #limitMoved(): void {
    const limit = this.limit;
    if (limit === this.#lastLimit) return;
    const previous = this.#lastLimit;
    this.#lastLimit = limit;
    this.emit('limit', { limit, previous });
  }

  #onFactor(): void {
    if (!this.#closed) this.#dispatch();
  }

  #refusal(priority: Priority, reason: ConcurrencyRefusalReason, waitedMs: number): ConcurrencyRefusal {
    const limit = this.limitFor(priority);
    // About when a slot frees for a newcomer: the mean hold time, once per round of the queue ahead.
    const est =
      this.#holdMs > 0 ? this.#holdMs * (1 + this.#queue.size / limit) : (this.#options.codel?.targetMs ?? 1);
    return {
      allowed: false,
      reason,
      retryAfterMs: Math.max(1, Math.ceil(est)),
      waitedMs,
      limit,
      factor: this.factor,
      priority,
    };
  }

  #refuse(priority: Priority, reason: ConcurrencyRefusalReason, waitedMs: number): ConcurrencyRefusal {
    const d = this.#refusal(priority, reason, waitedMs);
    this.#emitRefused(d);
    return d;
  }

  #emitRefused(d: ConcurrencyRefusal): void {
    this.emit('refused', {
      priority: d.priority,
      reason: d.reason,
      waitedMs: d.waitedMs,
      retryAfterMs: d.retryAfterMs,
      limit: d.limit,
    });
  }
}
