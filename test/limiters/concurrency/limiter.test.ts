import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { isConfigError } from '../../../src/errors.js';
import { ConcurrencyLimiter } from '../../../src/limiters/concurrency/limiter.js';
import { StandingQueue } from '../../../src/limiters/concurrency/codel.js';
import type { ConcurrencyDecision, ConcurrencyPermit } from '../../../src/limiters/concurrency/types.js';
import { ManualFactor } from '../../../src/limiters/factor.js';

function permit(d: ConcurrencyDecision): ConcurrencyPermit {
  if (!d.allowed) throw new Error(`expected admission, got ${d.reason}`);
  return d;
}

/** Collects the settled decisions of pending acquires, in settlement order. */
function track(p: Promise<ConcurrencyDecision>, log: ConcurrencyDecision[]): Promise<ConcurrencyDecision> {
  void p.then((d) => log.push(d));
  return p;
}

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('ConcurrencyLimiter, fixed limit', () => {
  it('admits up to the limit, queues the rest, and hands a released slot to the oldest waiter (no standing queue)', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 2, clock });
    const a = permit(await l.acquire());
    permit(await l.acquire());
    expect(l.inFlight).toBe(2);
    const log: ConcurrencyDecision[] = [];
    const c = track(l.acquire({ priority: 'normal' }), log);
    clock.advance(1);
    track(l.acquire(), log);
    expect(l.waiting).toBe(2);
    await flush();
    expect(log).toHaveLength(0);
    clock.advance(3);
    expect(a.release()).toBe(true);
    expect(a.release()).toBe(false); // idempotent
    const dc = await c;
    expect(dc.allowed).toBe(true);
    expect(dc.waitedMs).toBe(4);
    expect(l.inFlight).toBe(2);
    expect(l.waiting).toBe(1);
  });

  it('serves higher priority first', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, clock });
    const first = permit(await l.acquire());
    const order: string[] = [];
    const s = l.acquire({ priority: 'sheddable' }).then((d) => {
      order.push('sheddable');
      return d;
    });
    const n = l.acquire({ priority: 'normal' }).then((d) => {
      order.push('normal');
      return d;
    });
    const c = l.acquire({ priority: 'critical' }).then((d) => {
      order.push('critical');
      return d;
    });
    first.release();
    permit(await c).release();
    permit(await n).release();
    permit(await s).release();
    expect(order).toEqual(['critical', 'normal', 'sheddable']);
    expect(l.inFlight).toBe(0);
  });

  it('refuses with deadline at maxWaitMs, at once with maxWaitMs 0, and tryAcquire never queues', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, maxWaitMs: 50, clock, codel: false });
    permit(l.tryAcquire());
    expect(l.tryAcquire()).toMatchObject({ allowed: false, reason: 'deadline', waitedMs: 0 });
    expect(await l.acquire({ maxWaitMs: 0 })).toMatchObject({ allowed: false, reason: 'deadline' });
    const p = l.acquire();
    const q = l.acquire({ maxWaitMs: 80 });
    clock.advance(49);
    expect(l.waiting).toBe(2);
    clock.advance(1);
    expect(await p).toMatchObject({ allowed: false, reason: 'deadline', waitedMs: 50 });
    clock.advance(30);
    expect(await q).toMatchObject({ allowed: false, reason: 'deadline', waitedMs: 80 });
    expect(l.waiting).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('refuses an aborted wait with reason aborted, before and while waiting', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, clock });
    permit(await l.acquire());
    const ac = new AbortController();
    const p = l.acquire({ signal: ac.signal });
    ac.abort();
    expect(await p).toMatchObject({ allowed: false, reason: 'aborted' });
    expect(await l.acquire({ signal: ac.signal })).toMatchObject({ allowed: false, reason: 'aborted' });
    expect(l.waiting).toBe(0);
  });

  it('bounds the queue: queue-full, and a higher priority newcomer evicts the oldest lowest one', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, maxQueue: 2, clock });
    permit(await l.acquire());
    const s1 = l.acquire({ priority: 'sheddable' });
    l.acquire({ priority: 'normal' });
    expect(await l.acquire({ priority: 'sheddable' })).toMatchObject({
      allowed: false,
      reason: 'queue-full',
    });
    l.acquire({ priority: 'critical' });
    expect(await s1).toMatchObject({ allowed: false, reason: 'queue-full' });
    expect(l.waiting).toBe(2);
  });

  it('a factor scales the limit per priority, never below 1, and a rise admits waiters', async () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const l = new ConcurrencyLimiter({ limit: 10, clock, factor });
    factor.set(0.5);
    expect(l.limitFor('normal')).toBe(5);
    expect(l.limitFor('sheddable')).toBe(2); // 10 · 0.5² = 2.5
    expect(l.limitFor('critical')).toBe(7); // 10 · √0.5 = 7.07
    factor.set(0);
    expect(l.limitFor('critical')).toBe(1);
    factor.set(0.5);
    for (let i = 0; i < 5; i++) permit(await l.acquire());
    const w = l.acquire();
    expect(l.waiting).toBe(1);
    factor.set(0.6);
    expect(await w).toMatchObject({ allowed: true });
    l.close();
  });

  it('the factor shortens the queue per priority: shed', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, maxQueue: 10, clock, factor: 0.5 });
    permit(await l.acquire());
    // sheddable: floor(10 · 0.25) = 2 places
    l.acquire({ priority: 'sheddable' });
    l.acquire({ priority: 'sheddable' });
    expect(await l.acquire({ priority: 'sheddable' })).toMatchObject({ allowed: false, reason: 'shed' });
    l.acquire({ priority: 'normal' });
    expect(l.waiting).toBe(3);
  });

  it('close refuses every waiter and every later acquire; permits stay releasable', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, clock });
    const a = permit(await l.acquire());
    const w = [l.acquire(), l.acquire({ priority: 'critical' })];
    l.close();
    for (const d of await Promise.all(w)) expect(d).toMatchObject({ allowed: false, reason: 'closed' });
    expect(await l.acquire()).toMatchObject({ allowed: false, reason: 'closed' });
    expect(a.release()).toBe(true);
    expect(l.inFlight).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('emits queued, admitted, refused and released events', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, clock, maxWaitMs: 10, codel: false });
    const seen: string[] = [];
    for (const e of ['queued', 'admitted', 'refused', 'released'] as const) l.on(e, () => seen.push(e));
    const a = permit(await l.acquire());
    const p = l.acquire();
    clock.advance(10);
    await p;
    a.release();
    expect(seen).toEqual(['admitted', 'queued', 'refused', 'released']);
  });

  it('throws ConfigError naming the option', () => {
    const bad: [object, string][] = [
      [{ limit: 0 }, 'limit'],
      [{ limit: 1.5 }, 'limit'],
      [{ limit: 3, adaptive: {} }, 'adaptive'],
      [{ maxQueue: -1 }, 'maxQueue'],
      [{ maxWaitMs: -1 }, 'maxWaitMs'],
      [{ codel: { targetMs: -1 } }, 'codel.targetMs'],
      [{ codel: { intervalMs: 0 } }, 'codel.intervalMs'],
      [{ order: 'lifo' }, 'order'],
      [{ factor: 2 }, 'factor'],
      [{ factor: {} }, 'factor'],
      [{ minConcurrent: 5, maxConcurrent: 4 }, 'maxConcurrent'],
      [{ adaptive: { smoothing: 0 } }, 'adaptive.smoothing'],
      [{ limti: 3 }, 'ConcurrencyLimiter.limti'],
    ];
    for (const [o, name] of bad) {
      try {
        new ConcurrencyLimiter(o);
        expect.unreachable(`no error for ${JSON.stringify(o)}`);
      } catch (err) {
        expect(isConfigError(err)).toBe(true);
        expect((err as { option: string }).option).toBe(name);
      }
    }
    const l = new ConcurrencyLimiter({ limit: 1 });
    expect(() => l.tryAcquire({ cost: 0 })).toThrow(/`cost`/);
    expect(() => l.tryAcquire({ priority: 2 })).toThrow(/`priority`/);
  });
});

describe('ConcurrencyLimiter, CoDel and adaptive LIFO', () => {
  it('serves FIFO until the oldest waiter has stood past the target for an interval, then newest first and refuses waiters past the target', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({
      limit: 1,
      clock,
      maxWaitMs: 10_000,
      codel: { targetMs: 5, intervalMs: 100 },
    });
    const held = [permit(await l.acquire())];
    const log: ConcurrencyDecision[] = [];
    const w1 = track(l.acquire(), log);
    clock.advance(2);
    track(l.acquire(), log);
    // Not standing yet: the oldest is served.
    held.shift()!.release();
    const d1 = permit(await w1);
    expect(d1.waitedMs).toBe(2);
    held.push(d1);
    // The oldest waiter (since 2 ms) reaches the target at 7 ms: keep it there for the interval,
    // with fresh arrivals behind it. Not standing one step before 107 ms, standing at 107 ms.
    const waits: Promise<ConcurrencyDecision>[] = [];
    for (let t = 0; t < 104; t += 4) {
      clock.advance(4);
      waits.push(track(l.acquire(), log));
    }
    expect(clock.now()).toBe(106);
    expect(l.snapshot().standingQueue).toBe(false);
    clock.advance(1);
    expect(l.snapshot().standingQueue).toBe(true);
    await flush();
    // Everything that waited 5 ms or more was refused with codel once the queue stood.
    const codel = log.filter((d) => !d.allowed && d.reason === 'codel');
    expect(codel.length).toBeGreaterThan(10);
    for (const d of codel) expect(d.waitedMs).toBeGreaterThanOrEqual(5);
    expect(l.waiting).toBeLessThanOrEqual(2);
    // Newest first: the waiter admitted on release is the last to arrive.
    clock.advance(1);
    const newest = track(l.acquire(), log);
    held.shift()!.release();
    expect((await newest).allowed).toBe(true);
    l.close();
  });

  it('a slot freed late (every waiter past the target) still takes the newest waiter: the slot never idles to shed', async () => {
    const base = new ManualClock();
    // A blocked event loop: time moves on (`stall`) and no timer runs meanwhile.
    let stalled = 0;
    const clock = {
      now: () => base.now() + stalled,
      setTimeout: (fn: () => void, ms: number, o?: { keepAlive?: boolean }) => base.setTimeout(fn, ms, o),
      advance: (ms: number) => base.advance(ms),
    };
    const l = new ConcurrencyLimiter({
      limit: 1,
      clock,
      maxWaitMs: 10_000,
      codel: { targetMs: 5, intervalMs: 20 },
    });
    // A hold time of 2 ms first, so the target stays near 5 ms (2 · holdMs / limit is its floor).
    for (let i = 0; i < 3; i++) {
      const p = permit(await l.acquire());
      clock.advance(2);
      p.release();
    }
    const held = permit(await l.acquire());
    const log: ConcurrencyDecision[] = [];
    // Arrivals every 2 ms keep the queue standing (the CoDel timer refuses the stale as they age);
    // then the loop is blocked for 50 ms, and the slot is freed late.
    const waits: Promise<ConcurrencyDecision>[] = [];
    for (let t = 0; t < 30; t += 2) {
      waits.push(track(l.acquire(), log));
      clock.advance(2);
    }
    expect(l.snapshot().standingQueue).toBe(true);
    const newest = track(l.acquire(), log);
    stalled += 50;
    held.release();
    const d = await newest;
    expect(d.allowed).toBe(true); // the newest, though it waited 50 ms > target
    expect(d.waitedMs).toBe(50);
    await flush();
    expect(l.inFlight).toBe(1);
    // Every other waiter is answered: refused by CoDel as it aged, or by close.
    l.close();
    const all = await Promise.all(waits);
    expect(all.every((x) => !x.allowed)).toBe(true);
    expect(log.some((x) => !x.allowed && x.reason === 'codel')).toBe(true);
  });

  it('with order fifo, serves the oldest even while the queue stands', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({
      limit: 1,
      clock,
      order: 'fifo',
      maxWaitMs: 10_000,
      codel: { targetMs: 50, intervalMs: 20 },
    });
    const a = permit(await l.acquire());
    // A waiter past the target for an interval makes the queue stand, and is refused.
    const stale = l.acquire();
    clock.advance(70);
    expect(await stale).toMatchObject({ allowed: false, reason: 'codel', waitedMs: 70 });
    // The queue stands on for an interval after that refusal: two fresh waiters.
    const first = l.acquire();
    clock.advance(5);
    const second = l.acquire();
    clock.advance(5);
    expect(l.snapshot().standingQueue).toBe(true);
    a.release();
    expect((await first).allowed).toBe(true);
    l.close();
    expect((await second).allowed).toBe(false);
  });

  it('the target is never below two mean service gaps (2 · holdMs / limit)', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({
      limit: 2,
      clock,
      maxWaitMs: 10_000,
      codel: { targetMs: 1, intervalMs: 50 },
    });
    // Teach a hold time of 40 ms: the gap between releases is 20 ms, the target 40 ms.
    for (let i = 0; i < 3; i++) {
      const p = permit(await l.acquire());
      clock.advance(40);
      p.release();
    }
    expect(l.snapshot().holdMs).toBe(40);
    permit(await l.acquire());
    permit(await l.acquire());
    const log: ConcurrencyDecision[] = [];
    for (let t = 0; t < 120; t += 2) {
      track(l.acquire(), log);
      clock.advance(2);
    }
    await flush();
    const codel = log.filter((d) => !d.allowed && d.reason === 'codel');
    expect(codel.length).toBeGreaterThan(0);
    for (const d of codel) expect(d.waitedMs).toBeGreaterThanOrEqual(40);
    l.close();
  });
});

describe('StandingQueue at the boundary', () => {
  it('is standing at the very time standingAt() names, whatever the rounding (no 0 ms timer loop)', () => {
    // 985.7824544449678 + 100 − 985.7824544449678 is 99.99999999999989 in floating point: the old
    // test `now − lastEmptyAt >= interval` said "not yet" at standingAt(), and the limiter re-armed
    // its CoDel timer at 0 ms forever (seen in the simulator of a pool-bound overload).
    const q = new StandingQueue(5, 100, 985.7824544449678);
    expect(q.standing(q.standingAt(), 1)).toBe(true);
    expect(q.standing(q.standingAt() - 1e-9, 1)).toBe(false);
  });

  it('a limiter whose queue became standing at such a time makes progress on a ManualClock', async () => {
    const clock = new ManualClock(985.7824544449678);
    const limiter = new ConcurrencyLimiter({ limit: 1, clock });
    const held = limiter.tryAcquire();
    expect(held.allowed).toBe(true);
    const waiting = limiter.acquire();
    // The queue stands 100 ms after it filled; with the old rounding this advance never returned.
    clock.advance(1000);
    expect((await waiting).allowed).toBe(false);
    limiter.close();
  });
});

describe('ConcurrencyLimiter.update (a live change of limit, maxQueue, maxWaitMs)', () => {
  it('a lower limit lets the work in flight finish and admits no more until below it', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 4, clock, codel: false, maxWaitMs: Infinity });
    const held = [];
    for (let i = 0; i < 4; i++) held.push(permit(await l.acquire()));
    const log: ConcurrencyDecision[] = [];
    const waiters = [track(l.acquire(), log), track(l.acquire(), log)];
    const limits: number[][] = [];
    l.on('limit', (e) => limits.push([e.previous, e.limit]));
    l.update({ limit: 2 });
    expect(limits).toEqual([[4, 2]]);
    expect(l.limit).toBe(2);
    expect(l.inFlight).toBe(4); // nothing taken away
    held.pop()!.release();
    held.pop()!.release();
    await flush();
    expect(log).toHaveLength(0); // 2 in flight = the new limit: nobody admitted
    expect(l.tryAcquire()).toMatchObject({ allowed: false });
    held.pop()!.release();
    await flush();
    expect(log).toHaveLength(1); // 1 in flight: one waiter in
    expect(l.inFlight).toBe(2);
    expect(l.waiting).toBe(1);
    held.pop()!.release();
    const [a, b] = await Promise.all(waiters);
    expect(a!.allowed && b!.allowed).toBe(true);
    expect(l.inFlight).toBe(2);
  });

  it('a higher limit admits waiters at once, highest priority first', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, clock, codel: false, maxWaitMs: 500 });
    permit(await l.acquire());
    const log: ConcurrencyDecision[] = [];
    track(l.acquire({ priority: 'sheddable' }), log);
    track(l.acquire({ priority: 'critical' }), log);
    track(l.acquire(), log);
    clock.advance(7);
    l.update({ limit: 3 });
    await flush();
    expect(log.map((d) => [d.allowed, d.priority, d.waitedMs])).toEqual([
      [true, 'critical', 7],
      [true, 'normal', 7],
    ]);
    expect(l.inFlight).toBe(3);
    expect(l.waiting).toBe(1);
    // The last waiter keeps its deadline: refused at 500 ms, not before.
    clock.advance(492);
    await flush();
    expect(log).toHaveLength(2);
    clock.advance(1);
    await flush();
    expect(log[2]).toMatchObject({
      allowed: false,
      reason: 'deadline',
      priority: 'sheddable',
      waitedMs: 500,
    });
  });

  it('a queue shorter than its waiters refuses the excess with queue-full, lowest priority and oldest first', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, clock, codel: false, maxWaitMs: Infinity, maxQueue: 10 });
    const a = permit(await l.acquire());
    const log: ConcurrencyDecision[] = [];
    const order = ['sheddable', 'critical', 'sheddable', 'normal', 'normal'] as const;
    const waits = order.map((p) => {
      clock.advance(1);
      return track(l.acquire({ priority: p }), log);
    });
    l.update({ maxQueue: 2 });
    await flush();
    expect(log.map((d) => [d.reason, d.priority, d.waitedMs])).toEqual([
      ['queue-full', 'sheddable', 4],
      ['queue-full', 'sheddable', 2],
      ['queue-full', 'normal', 1],
    ]);
    expect(l.waiting).toBe(2);
    // The queue holds 2 from now on; the two left are served as usual.
    expect(await l.acquire({ priority: 'sheddable' })).toMatchObject({
      allowed: false,
      reason: 'queue-full',
    });
    a.release();
    await flush();
    expect(log[3]).toMatchObject({ allowed: true, priority: 'critical' });
    expect((await waits[0]!).reason).toBe('queue-full');
    expect(l.waiting).toBe(1);
    l.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('maxWaitMs applies to waits that start afterwards', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, clock, codel: false, maxWaitMs: 100 });
    permit(await l.acquire());
    const log: ConcurrencyDecision[] = [];
    track(l.acquire(), log);
    l.update({ maxWaitMs: 20 });
    expect(l.options.maxWaitMs).toBe(20);
    track(l.acquire(), log);
    clock.advance(20);
    await flush();
    expect(log.map((d) => [d.reason, d.waitedMs])).toEqual([['deadline', 20]]);
    clock.advance(80);
    await flush();
    expect(log.map((d) => [d.reason, d.waitedMs])).toEqual([
      ['deadline', 20],
      ['deadline', 100],
    ]);
  });

  it('refuses a bad setting with a ConfigError naming it, and changes nothing', () => {
    const l = new ConcurrencyLimiter({ limit: 3, maxQueue: 5, maxWaitMs: 50 });
    const bad: [unknown, string][] = [
      [{ limit: 0 }, 'limit'],
      [{ limit: 2.5 }, 'limit'],
      [{ limit: '4' }, 'limit'],
      [{ maxQueue: -1 }, 'maxQueue'],
      [{ maxQueue: 1, maxWaitMs: -5 }, 'maxWaitMs'],
      [{ maxWaitMs: Number.NaN }, 'maxWaitMs'],
      [{ limti: 3 }, 'update.limti'],
      [{ factor: 0.5 }, 'update.factor'],
      [null, 'update'],
      [{ limit: null }, 'update.limit'],
    ];
    for (const [u, name] of bad) {
      try {
        l.update(u as never);
        expect.unreachable(`no error for ${JSON.stringify(u)}`);
      } catch (err) {
        expect(isConfigError(err)).toBe(true);
        expect((err as { option: string }).option).toBe(name);
      }
    }
    expect(l.options).toMatchObject({ limit: 3, maxQueue: 5, maxWaitMs: 50 });
    const adaptive = new ConcurrencyLimiter({ maxConcurrent: 10 });
    expect(() => adaptive.update({ limit: 4 })).toThrow(/`limit`.*learns its limit/);
    adaptive.update({ maxQueue: 3 });
    expect(adaptive.options.maxQueue).toBe(3);
    expect(adaptive.snapshot().adaptive).toBe(true);
  });
});
