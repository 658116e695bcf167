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
 *
 * **Fair between keys.** A request may name a `key` (a tenant, the HTTP guard's key). The limiter
 * then follows each key's load (key-places.ts): its places (units in flight and queued, exact) and
 * its arrival rate, and whether that rate is at or under the max-min fair level of what the
 * limiter admits (a **light** key: it sends no more than its fair share). It refuses the heavy keys
 * first, in the three places where it chooses whom to refuse:
 * - **a free slot** goes to the next waiter in serving order (highest priority first) unless one of
 *   the next `FAIR_SCAN` at that priority is of a light key, or of a key with fewer units in flight:
 *   light keys first, then the fewest in flight, ties in serving order;
 * - **CoDel** refuses at the target only the waiters of keys that are not light: a light key's
 *   queue does not stand (a sparse flow's in FQ-CoDel), its waiter is served at the next free slot
 *   (the rule above), and its deadline (`maxWaitMs`) still holds. Measured in the simulator
 *   (pool-bound-tenants.json): slots that free together every 20 ms left a light tenant's waiter
 *   past the 5 ms target whenever it arrived between two releases, and the light tenants kept
 *   72-80% of what they sent with the first rule alone, 100% with both;
 * - **a full queue** (or one the factor shortened for the newcomer's priority): a newcomer whose
 *   key holds fewer than its fair share of places (the keyed places over the keys holding any)
 *   takes the place of the newest waiter, of the lowest priority waiting (never above the
 *   newcomer's), of the key holding the most places there, refused as the newcomer would have
 *   been (`queue-full` or `shed`), provided that key still holds at least as many as the
 *   newcomer's after the swap. A newcomer of a higher priority than the lowest waiting evicts as
 *   before (priority first); one at or over its share is refused as before.
 * Priority always comes first, as in the loop-turn budget: fairness only chooses among waiters of
 * the priority that would be served or refused anyway. Requests without a key are counted nowhere
 * and never spared; with no key at all the limiter behaves exactly as without this rule.
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
import { type KeyEntry, KeyPlaces, placesOf } from './key-places.js';

interface Waiter extends QueueNode {
  readonly priority: Priority;
  readonly cost: number;
  /** Its key's places, when it named a key. */
  readonly entry: KeyEntry | undefined;
  readonly resolve: (d: ConcurrencyDecision) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  timer: TimerHandle | undefined;
}

/** Weight of one release in the mean hold time (an EWMA over releases). */
const HOLD_WEIGHT = 0.1;

/**
 * A free slot looks this many waiters deep (in serving order, at the highest priority waiting) for
 * a light key's waiter, or the one whose key has the fewest units in flight. A queue that CoDel
 * keeps short is scanned whole.
 */
export const FAIR_SCAN = 32;

export class ConcurrencyLimiter extends EventEmitter<ConcurrencyEvents> {
  #options: ResolvedConcurrencyOptions;
  readonly #clock: Clock;
  readonly #queue = new WaitQueue<Waiter>();
  readonly #keys = new KeyPlaces();
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

  /** Units `key` holds now, in flight and queued (0 for a key holding none). */
  placesOf(key: string): number {
    return placesOf(this.#keys.get(key));
  }

  /** Keys holding a place now (in flight or queued). */
  get keysHeld(): number {
    return this.#keys.size;
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

  /**
   * Admits at once when a slot is free for this priority and no one of equal or higher priority
   * waits; never queues. With a `key`, only an admission counts toward the key's rate: a refused
   * request is counted by the `acquire` that usually follows it (as the concurrency stage does).
   */
  tryAcquire(options: Omit<ConcurrencyAcquireOptions, 'maxWaitMs' | 'signal'> = {}): ConcurrencyDecision {
    const { priority, level, cost, key } = this.#request(options);
    if (this.#closed) return this.#refuse(priority, 'closed', 0);
    if (!this.#mayEnter(level, cost)) return this.#refuse(priority, 'deadline', 0);
    if (key === undefined) return this.#admit(priority, level, cost, 0, undefined);
    // One clock reading for the arrival and the admission.
    const now = this.#clock.now();
    return this.#admit(priority, level, cost, 0, this.#keys.arrive(key, now), now);
  }

  /**
   * Waits for a slot. Always resolves with a decision: admitted (with `release`), or refused with
   * a reason (`queue-full`, `deadline`, `codel`, `shed`, `aborted`, `closed`). Never rejects.
   */
  acquire(options: ConcurrencyAcquireOptions = {}): Promise<ConcurrencyDecision> {
    const { priority, level, cost, key } = this.#request(options);
    const maxWaitMs =
      options.maxWaitMs === undefined ? this.#options.maxWaitMs : waitMs('maxWaitMs', options.maxWaitMs);
    const signal = abortSignalOption('signal', options.signal);
    if (this.#closed) return Promise.resolve(this.#refuse(priority, 'closed', 0));
    if (signal?.aborted) return Promise.resolve(this.#refuse(priority, 'aborted', 0));
    const now = this.#clock.now();
    this.#sweep(now);
    // After the sweep, which may forget keys that hold no place (this one, new, holds none yet).
    const entry = key === undefined ? undefined : this.#keys.arrive(key, now);
    if (this.#mayEnter(level, cost))
      return Promise.resolve(this.#admit(priority, level, cost, 0, entry, now));
    if (maxWaitMs === 0) return Promise.resolve(this.#refuse(priority, 'deadline', 0));
    const refusal = this.#makeRoom(priority, level, cost, entry);
    if (refusal !== undefined) return Promise.resolve(refusal);
    if (entry !== undefined) this.#keys.queue(entry, cost);

    return new Promise<ConcurrencyDecision>((resolve) => {
      const w: Waiter = {
        level,
        enqueuedAt: now,
        prev: undefined,
        next: undefined,
        queued: false,
        priority,
        cost,
        entry,
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

  #request(options: ConcurrencyAcquireOptions): {
    priority: Priority;
    level: number;
    cost: number;
    key: string | undefined;
  } {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError('options', options, 'an object');
    }
    // Left out means the default; `null`, like any other wrong value, is refused.
    const priority = options.priority === undefined ? 'normal' : options.priority;
    const cost = options.cost === undefined ? 1 : integer('cost', options.cost, 1);
    const key = options.key;
    if (key !== undefined && typeof key !== 'string')
      throw new ConfigError('key', key, 'a string or undefined');
    return { priority, level: priorityLevel(priority), cost, key };
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

  /**
   * Refuses the newcomer, or evicts a waiter to make room for it; undefined when it may queue.
   * `entry` is the newcomer's key's, for the fair rule.
   */
  #makeRoom(
    priority: Priority,
    level: number,
    cost: number,
    entry: KeyEntry | undefined,
  ): ConcurrencyRefusal | undefined {
    const max = this.#options.maxQueue;
    const size = this.#queue.size;
    // The factor shortens the queue for each priority as it shortens the limit.
    const e = effectiveFactor(this.factor, level);
    if (size < max && size >= Math.floor(max * e)) {
      if (entry !== undefined && this.#displace(level, cost, entry, 'shed')) return undefined;
      return this.#refuse(priority, 'shed', 0);
    }
    if (size < max) return undefined;
    const lowest = this.#queue.peekLowest();
    // Priority first: a newcomer of higher priority evicts the oldest of the lowest priority.
    if (lowest !== undefined && lowest.level < level) {
      this.#settleWaiter(lowest, 'queue-full');
      return undefined;
    }
    if (entry !== undefined && this.#displace(level, cost, entry, 'queue-full')) return undefined;
    // Evict the oldest of the same priority while the queue stands (then it would be served last anyway).
    if (lowest !== undefined && lowest.level === level && this.#lifo(this.#clock.now())) {
      this.#settleWaiter(lowest, 'queue-full');
      return undefined;
    }
    return this.#refuse(priority, 'queue-full', 0);
  }

  /**
   * The fair rule at a full queue (see the module comment): when the newcomer's key (`known`) is
   * under its share, refuses with `reason` the newest waiter, at the lowest priority waiting if it
   * is not above `level`, of the key holding the most places there, if that key keeps at least as
   * many as the newcomer's after the swap. True when it did.
   */
  #displace(
    level: number,
    cost: number,
    known: KeyEntry | undefined,
    reason: ConcurrencyRefusalReason,
  ): boolean {
    if (!this.#keys.underShare(known)) return false;
    const newest = this.#queue.peekLowestNewest();
    // Priority first: never a waiter of higher priority than the newcomer.
    if (newest === undefined || newest.level > level) return false;
    let victim: Waiter | undefined;
    let most = 0;
    // Newest first, so that among the heaviest key's waiters the newest is taken.
    for (let w: Waiter | undefined = newest; w !== undefined; w = w.prev as Waiter | undefined) {
      const p = placesOf(w.entry);
      if (p > most) {
        most = p;
        victim = w;
      }
    }
    if (victim === undefined || most - victim.cost < placesOf(known) + cost) return false;
    this.#settleWaiter(victim, reason);
    return true;
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
    const expired = this.#queue.removeExpired(
      (t) => t + target <= now,
      this.#keys.waiting > 0 ? (w) => this.#spared(w, now) : undefined,
    );
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
      const lifo = standing && this.options.order === 'adaptive';
      let w = this.#queue.peek(lifo);
      if (w !== undefined && this.#keys.waiting > 0) w = this.#fairest(w, lifo, now);
      if (w === undefined || !this.#fits(w.level, w.cost)) break;
      this.#queue.remove(w);
      // A waiter served at or past the target while the queue stands reached it all the same.
      if (standing && w.enqueuedAt + this.#targetMs() <= now) this.#codel!.above(now);
      this.#noteOldest(now);
      this.#finish(w, this.#admit(w.priority, w.level, w.cost, now - w.enqueuedAt, w.entry, now));
    }
    this.#sweep(now);
    this.#schedule(now);
  }

  /** One timer for the next CoDel event: the queue becoming standing, or its oldest waiter reaching the target. */
  #schedule(now: number): void {
    let due = Infinity;
    if (this.#codel !== undefined && this.#queue.size > 0 && !this.#closed) {
      if (this.#standing(now)) {
        const target = this.#targetMs();
        due = this.#queue.oldestEnqueuedAt()! + target;
        // The oldest waiter is past the target and spared (a light key's): look again a target
        // later, for the waiters behind it.
        if (due <= now && this.#keys.waiting > 0) due = now + target;
      } else due = this.#codel.standingAt();
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

  /**
   * A waiter CoDel does not refuse at the target: its key is light (it sends no more than the fair
   * level; its own queue does not stand, as a sparse flow's in FQ-CoDel). Its deadline still holds.
   */
  #spared(w: Waiter, now: number): boolean {
    return w.entry !== undefined && this.#keys.light(w.entry, now);
  }

  /**
   * Of the waiters from `first` (the next in serving order) on, at most FAIR_SCAN of its priority,
   * the first of a light key if any, else the first whose key has the fewest units in flight (one
   * without a key counts as heavy with none in flight).
   */
  #fairest(first: Waiter, lifo: boolean, now: number): Waiter {
    let best = first;
    let least = this.#rank(first, now);
    let w: Waiter | undefined = first;
    for (let i = 1; least > 0 && i < FAIR_SCAN; i++) {
      w = (lifo ? w.prev : w.next) as Waiter | undefined;
      if (w === undefined) break;
      const n = this.#rank(w, now);
      if (n < least) {
        least = n;
        best = w;
      }
    }
    return best;
  }

  /** 0 for a light key's waiter, else 1 + its key's units in flight. */
  #rank(w: Waiter, now: number): number {
    const e = w.entry;
    if (e === undefined) return 1;
    return this.#keys.light(e, now) ? 0 : 1 + e.inFlight;
  }

  #settleWaiter(w: Waiter, reason: ConcurrencyRefusalReason): void {
    if (!this.#queue.remove(w)) return;
    const now = this.#clock.now();
    this.#noteOldest(now);
    this.#finish(w, this.#refusal(w.priority, reason, now - w.enqueuedAt));
    this.#schedule(now);
  }

  /** A waiter left the queue (already removed from it): it is answered with `d`. */
  #finish(w: Waiter, d: ConcurrencyDecision): void {
    if (w.entry !== undefined) this.#keys.unqueue(w.entry, w.cost);
    w.timer?.cancel();
    if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
    if (!d.allowed) this.#emitRefused(d);
    w.resolve(d);
  }

  #admit(
    priority: Priority,
    level: number,
    cost: number,
    waitedMs: number,
    entry: KeyEntry | undefined,
    admittedAt = this.#clock.now(),
  ): ConcurrencyPermit {
    this.#inFlight += cost;
    this.#vegas?.inFlight(this.#inFlight);
    if (entry !== undefined) this.#keys.admit(entry, cost, admittedAt);
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
        if (entry !== undefined) this.#keys.release(entry, cost);
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
