/**
 * The waiting room of a keyed limiter: `acquire` calls whose tokens were reserved (charged now,
 * the balance below 0) and that wait for the refill to pay them back.
 *
 * A waiter is due when its key's bucket holds at least minus the charges of the waiters reserved
 * after it on the same key, and the global bucket at least minus the charges of every waiter
 * reserved after it: the refill has then paid for it and for everyone ahead of it. Waits are
 * recomputed, never fixed at reservation: on every factor change and after every abort or refusal
 * (which gives tokens back), so a cut delays waiters, a recovery brings them forward, and a factor
 * of 0 admits nobody. A waiter whose projected admission falls past its deadline is refused at
 * once and its tokens refunded. One timer serves the whole room, armed for the earliest waiter;
 * it keeps the process alive (`keepAlive`): a caller awaiting `acquire` is work in progress.
 *
 * Keys with waiters are pinned in the slot table so eviction passes them over; a waiter whose key
 * is deleted, cleared or (when every key is pinned) evicted anyway is refused with
 * `retryAfterMs: 0`: its bucket is gone, and a retry starts from a fresh one.
 */
import type { Clock, TimerHandle } from '../../clock.js';
import { AbortError } from '../../errors.js';
import { TOKEN_EPSILON } from '../token-bucket.js';
import type { KeyedDecision, KeyedEngine } from './engine.js';
import type { SlotTable } from './slot-table.js';

interface Waiter {
  readonly key: string;
  readonly slot: number;
  readonly charge: number;
  /** Absolute time (ms) past which the caller would rather be refused. */
  readonly deadline: number;
  readonly resolve: (d: KeyedDecision) => void;
  readonly reject: (e: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Ms from the last recompute until due; NaN when its key's bucket is gone. */
  wait: number;
}

export class KeyedWaiters {
  readonly #clock: Clock;
  readonly #engine: KeyedEngine;
  readonly #slots: SlotTable;
  /** In reservation order. */
  #list: Waiter[] = [];
  #timer: TimerHandle | undefined;
  #timerAt = Infinity;

  constructor(clock: Clock, engine: KeyedEngine, slots: SlotTable) {
    this.#clock = clock;
    this.#engine = engine;
    this.#slots = slots;
  }

  /** Callers waiting now. */
  get size(): number {
    return this.#list.length;
  }

  /** Waits for a reservation of `charge` on `key` (slot `slot`) made now, due in `waitMs`. */
  add(
    key: string,
    slot: number,
    charge: number,
    maxWaitMs: number,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<KeyedDecision> {
    const now = this.#clock.now();
    return new Promise<KeyedDecision>((resolve, reject) => {
      const w: Waiter = {
        key,
        slot,
        charge,
        deadline: now + maxWaitMs,
        resolve,
        reject,
        signal,
        onAbort: undefined,
        wait: waitMs,
      };
      if (signal !== undefined) {
        w.onAbort = () => {
          if (!this.#remove(w)) return;
          this.#engine.refund(w.key, w.slot, w.charge);
          reject(new AbortError(signal.reason));
          this.reschedule();
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.#list.push(w);
      this.#slots.pin(slot);
      // A new reservation changes no earlier waiter's wait (its charge and the later-charges sum
      // of those ahead grow alike): arm the timer for it alone.
      this.#arm(now, waitMs);
    });
  }

  /**
   * Recomputes every wait at the current factor and balances: admits the due, refuses those now
   * projected past their deadline (refunding them, which can bring others forward: then again),
   * and arms the timer for the earliest of the rest.
   */
  reschedule(): void {
    for (;;) {
      this.#cancelTimer();
      if (this.#list.length === 0) return;
      const now = this.#clock.now();
      this.#computeWaits();
      if (!this.#settleDue(now)) return;
    }
  }

  /** Rejects every waiter with an AbortError and refunds it (the limiter is closing). */
  closeAll(): void {
    this.#cancelTimer();
    const list = this.#list;
    this.#list = [];
    for (const w of list) {
      this.#detach(w);
      this.#engine.refund(w.key, w.slot, w.charge);
      w.reject(new AbortError(new Error('limiter closed')));
    }
  }

  /** Pass 1, newest first: each waiter's wait given the charges reserved after it. */
  #computeWaits(): void {
    const laterOnKey = new Map<string, number>();
    let laterGlobal = 0;
    const list = this.#list;
    for (let i = list.length - 1; i >= 0; i--) {
      const w = list[i]!;
      const later = laterOnKey.get(w.key) ?? 0;
      const keyWait = this.#engine.keyWait(w.key, w.slot, -later);
      const globalWait = this.#engine.globalWait(-laterGlobal);
      w.wait = keyWait > globalWait ? keyWait : Number.isNaN(keyWait) ? keyWait : globalWait;
      laterOnKey.set(w.key, later + w.charge);
      laterGlobal += w.charge;
    }
  }

  /**
   * Pass 2, oldest first: admits the due, refuses the lost and the late. Answers true when it
   * refunded anything (the waits of those behind may have shortened: recompute).
   */
  #settleDue(now: number): boolean {
    let refunded = false;
    let next = Infinity;
    const keep: Waiter[] = [];
    for (const w of this.#list) {
      if (Number.isNaN(w.wait)) {
        this.#finish(w);
        this.#engine.refund(w.key, w.slot, w.charge);
        w.resolve(this.#engine.refusedNow(w.key, w.slot, 0));
        refunded = true;
      } else if (w.wait <= 0) {
        this.#finish(w);
        w.resolve(this.#engine.admittedNow(w.key, w.slot));
      } else if (now + w.wait > w.deadline + TOKEN_EPSILON) {
        this.#finish(w);
        this.#engine.refund(w.key, w.slot, w.charge);
        w.resolve(this.#engine.refusedNow(w.key, w.slot, w.wait));
        refunded = true;
      } else {
        keep.push(w);
        if (w.wait < next) next = w.wait;
      }
    }
    this.#list = keep;
    if (!refunded) this.#arm(now, next);
    return refunded;
  }

  #arm(now: number, waitMs: number): void {
    if (!(waitMs < Infinity)) return; // the factor must rise first: onFactor reschedules
    const at = now + waitMs;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#cancelTimer();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.reschedule();
      },
      waitMs,
      { keepAlive: true },
    );
  }

  #cancelTimer(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** Takes `w` out of the list; false when it was no longer there. */
  #remove(w: Waiter): boolean {
    const i = this.#list.indexOf(w);
    if (i < 0) return false;
    this.#list.splice(i, 1);
    this.#finish(w);
    return true;
  }

  /** Releases what `w` holds: its abort listener and its pin on the slot. */
  #finish(w: Waiter): void {
    this.#detach(w);
    this.#slots.unpin(w.slot);
  }

  #detach(w: Waiter): void {
    if (w.signal !== undefined && w.onAbort !== undefined) w.signal.removeEventListener('abort', w.onAbort);
  }
}
