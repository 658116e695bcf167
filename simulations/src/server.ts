/**
 * The model of a Node server: one event loop that runs work items one at a time in FIFO order, a
 * downstream pool (a database) with its own slots and a bounded wait queue, and the readings a
 * real process would give, exposed as real `Signal` objects for the real Governor.
 *
 * Everything runs on virtual time: an item that costs `c` ms holds the loop for `c` ms of the
 * ManualClock, so queueing, and therefore event-loop delay, comes out of the model, not out of a
 * formula. Each item costs O(log n) (one timer on the clock's heap).
 */
import type { Clock, ManualClock, TimerHandle } from 'spillway';
import type { Signal } from 'spillway';
import type { DownstreamSpec, ServerSpec, SignalSpec } from './scenario.js';
import { signalUnit } from './scenario.js';

/** A double-ended FIFO on a growable ring: push and shift in O(1). */
export class Fifo<T> {
  #buf: (T | undefined)[] = new Array(16);
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(x: T): void {
    if (this.#size === this.#buf.length) {
      const next: (T | undefined)[] = new Array(this.#buf.length * 2);
      for (let i = 0; i < this.#size; i++) next[i] = this.#buf[(this.#head + i) % this.#buf.length];
      this.#buf = next;
      this.#head = 0;
    }
    this.#buf[(this.#head + this.#size) % this.#buf.length] = x;
    this.#size++;
  }

  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const x = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#size--;
    return x;
  }

  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#buf[this.#head];
  }
}

/** A unit of loop work: `start` runs when the loop picks it up and returns its cost in ms; `end` runs when that time has passed. */
export interface WorkItem {
  readonly enqueuedAt: number;
  start(): number;
  end?(): void;
  /** A turn's end (see `EventLoop.defer`): runs at no cost, and is no request's wait. */
  readonly turnEnd?: true;
}

/**
 * One event loop. Timers (the governor's ticks) run before queued I/O work, as Node's timers
 * phase does, but never in the middle of an item: a long item makes them late.
 *
 * Turns: Node's poll phase runs the callbacks of every socket that was ready when it polled, and a
 * `setImmediate` scheduled meanwhile runs after them (the check phase): what arrives during the
 * turn waits for the next one. `defer(fn)` models that: `fn` runs once every item queued before it
 * has run, ahead of those queued after it. The loop-turn budget ends its turns with it.
 *
 * Continuations (`enqueueNext`): work that a promise resumes (a request admitted after waiting in
 * the concurrency stage) runs in Node's microtask queue, before the next I/O callback; here it
 * runs at the next item boundary, ahead of timers and queued work.
 */
export class EventLoop {
  readonly #clock: ManualClock;
  readonly #work = new Fifo<WorkItem>();
  readonly #timers = new Fifo<WorkItem>();
  readonly #next = new Fifo<WorkItem>();
  #busy = false;
  /** Inside #run (an item's start may enqueue more work: it waits its turn, it does not nest). */
  #running = false;
  #itemStart = 0;
  #completedBusyMs = 0;
  #waitListeners: ((waitMs: number) => void)[] = [];
  /** Items started, for tests. */
  started = 0;

  constructor(clock: ManualClock) {
    this.#clock = clock;
  }

  /** Work waiting to start (turn ends included). */
  get queued(): number {
    return this.#work.size + this.#timers.size + this.#next.size;
  }

  get busy(): boolean {
    return this.#busy;
  }

  /** Busy time from the start of the run to `now`, in ms (the running item counted up to now). */
  busyMs(now: number): number {
    return this.#completedBusyMs + (this.#busy ? now - this.#itemStart : 0);
  }

  /** How long the oldest queued item has waited so far, in ms (0 when none waits). */
  oldestWaitMs(now: number): number {
    const a = this.#work.peek();
    const b = this.#timers.peek();
    let oldest = Infinity;
    if (a) oldest = a.enqueuedAt;
    if (b && b.enqueuedAt < oldest) oldest = b.enqueuedAt;
    return oldest === Infinity ? 0 : now - oldest;
  }

  /** Called with every item's wait (from enqueue to start), in ms. */
  onWait(listener: (waitMs: number) => void): void {
    this.#waitListeners.push(listener);
  }

  enqueue(item: WorkItem): void {
    this.#work.push(item);
    this.#kick();
  }

  /** Runs `fn` once the work queued so far has run: the end of the current turn (Node's `setImmediate`). */
  defer(fn: () => void): void {
    this.enqueue({
      enqueuedAt: this.#clock.now(),
      turnEnd: true,
      start: () => {
        fn();
        return 0;
      },
    });
  }

  /** A continuation (a resumed promise): runs at the next item boundary, ahead of everything queued. */
  enqueueNext(item: WorkItem): void {
    this.#next.push(item);
    this.#kick();
  }

  /** A timer callback that fell due: runs at the next item boundary, ahead of queued work. */
  enqueueTimer(item: WorkItem): void {
    this.#timers.push(item);
    this.#kick();
  }

  #kick(): void {
    if (!this.#busy && !this.#running) this.#run();
  }

  #run(): void {
    this.#running = true;
    try {
      this.#runItems();
    } finally {
      this.#running = false;
    }
  }

  #runItems(): void {
    // Zero-cost items complete on the spot, so this loops instead of recursing.
    for (;;) {
      const item = this.#next.shift() ?? this.#timers.shift() ?? this.#work.shift();
      if (item === undefined) return;
      if (item.turnEnd) {
        item.start();
        continue;
      }
      const now = this.#clock.now();
      const wait = now - item.enqueuedAt;
      for (const l of this.#waitListeners) l(wait);
      this.started++;
      const cost = item.start();
      if (cost > 0) {
        this.#busy = true;
        this.#itemStart = now;
        this.#clock.setTimeout(() => {
          this.#busy = false;
          this.#completedBusyMs += cost;
          this.#running = true;
          try {
            item.end?.();
          } finally {
            this.#running = false;
          }
          this.#run();
        }, cost);
        return;
      }
      item.end?.();
    }
  }
}

/**
 * A Clock for code that runs on the modelled loop (the governor): `now()` is virtual time, and a
 * timer that falls due waits for the loop's current item to finish, then costs `tickCostMs`.
 */
export function loopClock(clock: ManualClock, loop: EventLoop, tickCostMs: number): Clock {
  return {
    now: () => clock.now(),
    setTimeout(fn: () => void, ms: number): TimerHandle {
      let cancelled = false;
      const inner = clock.setTimeout(() => {
        loop.enqueueTimer({
          enqueuedAt: clock.now(),
          start: () => {
            if (!cancelled) fn();
            return cancelled ? 0 : tickCostMs;
          },
        });
      }, ms);
      return {
        cancel: () => {
          cancelled = true;
          inner.cancel();
        },
      };
    },
  };
}

/** A downstream pool: `concurrency` slots, a FIFO wait queue of at most `maxQueue`. */
export class Pool {
  readonly #clock: ManualClock;
  readonly #spec: DownstreamSpec;
  readonly #service: () => number;
  readonly #waiting = new Fifo<() => void>();
  #active = 0;

  constructor(clock: ManualClock, spec: DownstreamSpec, service: () => number) {
    this.#clock = clock;
    this.#spec = spec;
    this.#service = service;
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  get active(): number {
    return this.#active;
  }

  /** Runs `done` after a slot was held for one service time. Returns false (and never calls `done`) when the queue is full. */
  use(done: () => void): boolean {
    if (this.#active < this.#spec.concurrency) {
      this.#startOne(done);
      return true;
    }
    if (this.#waiting.size >= this.#spec.maxQueue) return false;
    this.#waiting.push(done);
    return true;
  }

  #startOne(done: () => void): void {
    this.#active++;
    this.#clock.setTimeout(() => {
      this.#active--;
      const next = this.#waiting.shift();
      if (next) this.#startOne(next);
      done();
    }, this.#service());
  }
}

/** The server's state that signals read. */
export interface ServerState {
  readonly loop: EventLoop;
  readonly pool: Pool | undefined;
  /** Requests received and not yet answered (queued, running, or at the pool). */
  readonly inFlight: number;
}

/** The model's readings as real Signals. Each keeps its own window since its last sample. */
export function modelSignal(spec: SignalSpec, server: ServerSpec, state: ServerState, clock: Clock): Signal {
  const base = { name: spec.name, unit: signalUnit(spec.kind), target: spec.target, limit: spec.limit };
  const { loop } = state;
  switch (spec.kind) {
    case 'eventLoopDelay': {
      let waits: number[] = [];
      loop.onWait((w) => waits.push(w));
      return {
        ...base,
        onFailure: 'ignore',
        sample(nowMs) {
          let p99 = 0;
          if (waits.length > 0) {
            waits.sort((a, b) => a - b);
            p99 = waits[Math.min(waits.length - 1, Math.ceil(0.99 * waits.length) - 1)]!;
            waits = [];
          }
          return Math.max(p99, loop.oldestWaitMs(nowMs));
        },
      };
    }
    case 'elu':
    case 'cpu': {
      let lastAt = clock.now();
      let lastBusy = loop.busyMs(lastAt);
      let lastValue = 0;
      const extra = spec.kind === 'cpu' ? server.cpuBackground : 0;
      return {
        ...base,
        sample(nowMs) {
          const busy = loop.busyMs(nowMs);
          if (nowMs > lastAt) {
            lastValue = (busy - lastBusy) / (nowMs - lastAt);
            lastAt = nowMs;
            lastBusy = busy;
          }
          return Math.min(1, lastValue + extra);
        },
      };
    }
    case 'memory': {
      const m = server.memory;
      return { ...base, sample: () => (m.baselineBytes + m.perRequestBytes * state.inFlight) / m.limitBytes };
    }
    case 'inFlight':
      return { ...base, sample: () => state.inFlight };
    case 'poolWaiting':
      return { ...base, onFailure: 'overloaded', sample: () => state.pool?.waiting ?? 0 };
  }
}
