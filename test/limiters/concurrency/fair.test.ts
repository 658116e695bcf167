import { describe, expect, it } from 'vitest';
import { ConcurrencyStage } from '../../../src/admission/concurrency-stage.js';
import { ManualClock } from '../../../src/clock.js';
import { isConfigError } from '../../../src/errors.js';
import { ConcurrencyLimiter } from '../../../src/limiters/concurrency/limiter.js';
import type { ConcurrencyDecision, ConcurrencyPermit } from '../../../src/limiters/concurrency/types.js';

function permit(d: ConcurrencyDecision): ConcurrencyPermit {
  if (!d.allowed) throw new Error(`expected admission, got ${d.reason}`);
  return d;
}

const flush = () => new Promise<void>((r) => setImmediate(r));

interface Tracked {
  readonly p: Promise<ConcurrencyDecision>;
  /** Settlements seen (a promise settles once; this counts the answers handed out). */
  answers: number;
  d: ConcurrencyDecision | undefined;
}

function track(p: Promise<ConcurrencyDecision>): Tracked {
  const t: Tracked = { p, answers: 0, d: undefined };
  void p.then((d) => {
    t.answers++;
    t.d = d;
  });
  return t;
}

/** A limiter of 2 slots and a queue of 4, no CoDel (only the queue bound and the deadline act). */
function fullOfHeavy(clock: ManualClock, maxWaitMs = 100) {
  const l = new ConcurrencyLimiter({ limit: 2, maxQueue: 4, maxWaitMs, codel: false, clock });
  const held = [permit(l.tryAcquire({ key: 'heavy' })), permit(l.tryAcquire({ key: 'heavy' }))];
  const queued: Tracked[] = [];
  for (let i = 0; i < 4; i++) {
    queued.push(track(l.acquire({ key: 'heavy' })));
    clock.advance(1);
  }
  return { l, held, queued };
}

describe('ConcurrencyLimiter, fair between keys', () => {
  it('a light key arriving at a queue full of a heavy key is queued, and the heavy key’s newest waiter is refused queue-full, once', async () => {
    const clock = new ManualClock();
    const { l, held, queued } = fullOfHeavy(clock);
    expect(l.placesOf('heavy')).toBe(6);
    const light = track(l.acquire({ key: 'light' }));
    await flush();
    expect(l.waiting).toBe(4);
    // The newest heavy waiter (queued at t = 3) made room; the others still wait.
    expect(queued.map((q) => q.answers)).toEqual([0, 0, 0, 1]);
    expect(queued[3]!.d).toMatchObject({ allowed: false, reason: 'queue-full', waitedMs: 1 });
    expect(light.answers).toBe(0);
    expect(l.placesOf('heavy')).toBe(5);
    expect(l.placesOf('light')).toBe(1);
    // A heavy newcomer (over its share) is refused as before: no displacement among its own.
    const heavy = await l.acquire({ key: 'heavy' });
    expect(heavy).toMatchObject({ allowed: false, reason: 'queue-full', waitedMs: 0 });
    // The light waiter is served at the next free slot, before the older heavy waiters.
    held[0]!.release();
    await flush();
    expect(light.d).toMatchObject({ allowed: true });
    expect(queued.slice(0, 3).map((q) => q.answers)).toEqual([0, 0, 0]);
    // Releases are exact: once everything is done, no key holds anything.
    held[1]!.release();
    permit(light.d!).release();
    for (let i = 0; i < 6; i++) {
      await flush();
      for (const q of queued) if (q.d?.allowed) q.d.release();
    }
    await flush();
    expect(queued.map((q) => q.answers)).toEqual([1, 1, 1, 1]);
    expect(l.inFlight).toBe(0);
    expect(l.waiting).toBe(0);
    expect(l.placesOf('heavy')).toBe(0);
    expect(l.placesOf('light')).toBe(0);
    expect(l.keysHeld).toBe(0);
  });

  it('takes a place only from a key that keeps at least as many as the newcomer’s: no swap that changes nothing', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 2, maxQueue: 2, codel: false, clock });
    permit(l.tryAcquire({ key: 'a' }));
    permit(l.tryAcquire({ key: 'b' }));
    const qa = track(l.acquire({ key: 'a' }));
    const qb = track(l.acquire({ key: 'b' }));
    // a and b hold 2 places each: c (none) takes the newest of them, b's, and holds 1 as b does.
    const c = track(l.acquire({ key: 'c' }));
    await flush();
    expect(qb.d).toMatchObject({ allowed: false, reason: 'queue-full' });
    // d takes a's waiter the same way; then every key holds 1 place, and e is refused.
    const d = track(l.acquire({ key: 'd' }));
    await flush();
    expect(qa.d).toMatchObject({ allowed: false, reason: 'queue-full' });
    expect(await l.acquire({ key: 'e' })).toMatchObject({ allowed: false, reason: 'queue-full' });
    await flush();
    expect([c.answers, d.answers]).toEqual([0, 0]);
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => l.placesOf(k))).toEqual([1, 1, 1, 1, 0]);
    l.close();
    await flush();
    expect([c.d?.reason, d.d?.reason]).toEqual(['closed', 'closed']);
    expect(l.keysHeld).toBe(2);
  });

  it('deadlines still apply to a light waiter, and to the heavy ones it did not displace', async () => {
    const clock = new ManualClock();
    const { l, queued } = fullOfHeavy(clock, 50);
    const light = track(l.acquire({ key: 'light' }));
    await flush();
    expect(queued[3]!.d).toMatchObject({ reason: 'queue-full' });
    clock.advance(50);
    await flush();
    expect(light.d).toMatchObject({ allowed: false, reason: 'deadline', waitedMs: 50 });
    expect(queued.slice(0, 3).map((q) => q.d?.reason)).toEqual(['deadline', 'deadline', 'deadline']);
    expect([...queued, light].map((q) => q.answers)).toEqual([1, 1, 1, 1, 1]);
    expect(l.placesOf('light')).toBe(0);
    expect(l.placesOf('heavy')).toBe(2); // the two in flight
  });

  it('priority wins over fairness: a light sheddable request never displaces a normal one; a critical heavy one evicts the lowest as before', async () => {
    const clock = new ManualClock();
    const { l, queued } = fullOfHeavy(clock);
    const sheddable = await l.acquire({ key: 'light', priority: 'sheddable' });
    expect(sheddable).toMatchObject({ allowed: false, reason: 'queue-full' });
    await flush();
    expect(queued.map((q) => q.answers)).toEqual([0, 0, 0, 0]);
    // A critical request of the heavy key itself evicts the oldest normal waiter (priority first).
    const critical = track(l.acquire({ key: 'heavy', priority: 'critical' }));
    await flush();
    expect(queued.map((q) => q.d?.reason)).toEqual(['queue-full', undefined, undefined, undefined]);
    expect(critical.answers).toBe(0);
    expect(l.placesOf('heavy')).toBe(6);
  });

  it('a queue shortened by the factor makes room the same way (the displaced waiter hears `shed`)', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, maxQueue: 8, codel: false, factor: 0.5, clock });
    permit(l.tryAcquire({ key: 'heavy' }));
    const queued = [track(l.acquire({ key: 'heavy' })), track(l.acquire({ key: 'heavy' }))];
    // The factor leaves normal priority a queue of 8 · 0.5 · … < 8: find where it stops.
    while (l.waiting < 8) {
      const t = track(l.acquire({ key: 'heavy' }));
      await flush();
      if (t.d !== undefined) {
        expect(t.d).toMatchObject({ allowed: false, reason: 'shed' });
        break;
      }
      queued.push(t);
    }
    const before = l.waiting;
    const light = track(l.acquire({ key: 'light' }));
    await flush();
    expect(light.answers).toBe(0);
    expect(l.waiting).toBe(before);
    expect(queued[queued.length - 1]!.d).toMatchObject({ allowed: false, reason: 'shed' });
    l.close();
    await flush();
    expect(l.keysHeld).toBe(1); // the heavy permit still in flight
  });

  it('while the queue stands, CoDel refuses the heavy key’s waiters at the target and spares the light key’s, which the next free slot serves', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({
      limit: 8,
      maxQueue: 100,
      maxWaitMs: 1000,
      codel: { targetMs: 5, intervalMs: 20 },
      clock,
    });
    const heavy: Tracked[] = [];
    const light: Tracked[] = [];
    // A pool of 8 slots held 20 ms (400/s), filled at once, so that its slots free together every
    // 20 ms; the heavy key sends 1 request a ms (2.5x), the light one 1 every 20 ms, half-way
    // between two releases: it waits 10 ms, past the target.
    const hold = (d: ConcurrencyDecision) => {
      if (d.allowed) clock.setTimeout(() => d.release(), 20);
    };
    for (let i = 0; i < 8; i++) hold(l.tryAcquire({ key: 'heavy' }));
    for (let t = 0; t < 400; t++) {
      const h = track(l.acquire({ key: 'heavy' }));
      void h.p.then(hold);
      heavy.push(h);
      if (t % 20 === 10) {
        const x = track(l.acquire({ key: 'light' }));
        void x.p.then(hold);
        light.push(x);
      }
      await flush();
      clock.advance(1);
    }
    for (let i = 0; i < 10; i++) {
      clock.advance(200);
      await flush();
    }
    const late = light.slice(5); // once the overload is seen (rates over a few hundred ms)
    expect(late.map((x) => x.d?.allowed === true && x.d.waitedMs)).toEqual(late.map(() => 10));
    const heavyRefused = heavy.filter((h) => h.d?.allowed === false);
    expect(heavyRefused.length).toBeGreaterThan(200);
    expect(heavyRefused.every((h) => h.d!.reason === 'codel' || h.d!.reason === 'deadline')).toBe(true);
    expect([...heavy, ...light].every((x) => x.answers === 1)).toBe(true);
    expect(l.inFlight).toBe(0);
    expect(l.keysHeld).toBe(0);
  });

  it('without keys nothing is counted', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, maxQueue: 1, codel: false, clock });
    const a = permit(l.tryAcquire());
    const b = track(l.acquire());
    expect(await l.acquire()).toMatchObject({ allowed: false, reason: 'queue-full' });
    expect(l.keysHeld).toBe(0);
    a.release();
    await flush();
    expect(b.d?.allowed).toBe(true);
  });

  it('refuses a key that is not a string, naming the option', () => {
    const l = new ConcurrencyLimiter({ limit: 1 });
    let err: unknown;
    try {
      l.tryAcquire({ key: 42 as unknown as string });
    } catch (e) {
      err = e;
    }
    expect(isConfigError(err)).toBe(true);
    expect(String((err as Error).message)).toContain('key');
    l.close();
  });
});

describe('ConcurrencyStage, keyed', () => {
  const req = (key: string) => ({ key, priority: 'normal' as const, cost: 1 });

  it('names the request’s key: a displaced request is refused 503 with cause queue-full, once, and releases are exact', async () => {
    const clock = new ManualClock();
    const stage = new ConcurrencyStage(
      new ConcurrencyLimiter({ limit: 1, maxQueue: 2, codel: false, maxWaitMs: 100, clock }),
      { keyed: true },
    );
    const h0 = req('heavy');
    expect(stage.admit(h0)).toMatchObject({ allowed: true });
    const h1 = req('heavy');
    const h2 = req('heavy');
    const p1 = stage.admit(h1) as Promise<unknown>;
    const p2 = stage.admit(h2) as Promise<unknown>;
    const l1 = req('light');
    const pl = stage.admit(l1) as Promise<unknown>;
    expect(await p2).toMatchObject({ allowed: false, reason: 'shed', cause: 'queue-full' });
    stage.release(h0);
    expect(await p1).toMatchObject({ allowed: true });
    stage.release(h1);
    stage.release(h1);
    expect(await pl).toMatchObject({ allowed: true });
    stage.release(l1);
    expect(stage.limiter.inFlight).toBe(0);
    expect(stage.limiter.keysHeld).toBe(0);
  });

  it('without `keyed` the key is not used (the light request is refused as before)', async () => {
    const clock = new ManualClock();
    const stage = new ConcurrencyStage(
      new ConcurrencyLimiter({ limit: 1, maxQueue: 1, codel: false, maxWaitMs: 100, clock }),
    );
    stage.admit(req('heavy'));
    void stage.admit(req('heavy'));
    expect(await stage.admit(req('light'))).toMatchObject({ allowed: false, cause: 'queue-full' });
    expect(stage.limiter.keysHeld).toBe(0);
  });
});
