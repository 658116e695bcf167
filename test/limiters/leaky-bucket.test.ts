import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isAbortError, isConfigError } from '../../src/errors.js';
import { LeakyBucket, type ShapedDecision } from '../../src/limiters/leaky-bucket.js';

function leaky(ratePerSec: number, capacity: number, factor = 1, start = 0) {
  const clock = new ManualClock(start);
  return { clock, b: new LeakyBucket({ ratePerSec, capacity, clock, factor }) };
}

const flush = () => new Promise<void>((r) => setImmediate(r));

function track(p: Promise<ShapedDecision>) {
  const s: { decision?: ShapedDecision; error?: unknown } = {};
  p.then(
    (d) => {
      s.decision = d;
    },
    (e) => {
      s.error = e;
    },
  );
  return s;
}

describe('LeakyBucket: take (shaping by delay)', () => {
  it('spaces requests at the leak rate and refuses when the queue is full', () => {
    const { clock, b } = leaky(10, 5);
    const delays = [1, 2, 3, 4, 5].map(() => b.take().delayMs);
    expect(delays).toEqual([0, 100, 200, 300, 400]);
    const d = b.take();
    expect(d).toMatchObject({ allowed: false, reason: 'limited', remaining: 0, limit: 5, delayMs: 0 });
    expect(d.retryAfterMs).toBeCloseTo(100, 9);
    expect(d.resetMs).toBeCloseTo(500, 9);
    clock.advance(99);
    expect(b.take().allowed).toBe(false);
    clock.advance(1);
    const next = b.take();
    expect(next.allowed).toBe(true);
    expect(next.delayMs).toBeCloseTo(400, 9); // 4 still ahead
  });

  it('an idle bucket drains: delays shrink with elapsed time', () => {
    const { clock, b } = leaky(10, 5);
    b.take(3);
    clock.advance(250); // 0.5 left
    expect(b.level).toBeCloseTo(0.5, 12);
    expect(b.take().delayMs).toBeCloseTo(50, 9);
    clock.advance(10_000);
    expect(b.level).toBe(0);
    expect(b.take().delayMs).toBe(0);
  });

  it('retryAfterMs is exact for awkward rates and costs', () => {
    for (const [rate, capacity, cost] of [
      [3, 1, 0.7],
      [3, 2, 1.3],
      [0.7, 4, 2.2],
      [999, 10, 9.99],
    ] as const) {
      const { clock, b } = leaky(rate, capacity, 1, 777.7);
      for (let i = 0; i < 6; i++) {
        while (b.take(cost).allowed) {}
        const d = b.peek(cost);
        const t0 = clock.now();
        if (d.retryAfterMs > 1) {
          clock.set(t0 + d.retryAfterMs - 1);
          expect(b.peek(cost).allowed).toBe(false);
        }
        clock.set(t0 + d.retryAfterMs);
        expect(b.take(cost).allowed).toBe(true);
      }
    }
  });

  it('scales rate and capacity by the factor, from the moment of the change on', () => {
    const { clock, b } = leaky(10, 10, 0.5); // 5/s, capacity 5
    expect([1, 2, 3].map(() => b.take().delayMs)).toEqual([0, 200, 400]);
    expect(b.take(2).allowed).toBe(true);
    expect(b.take()).toMatchObject({ allowed: false, reason: 'shed', limit: 5 }); // 6 <= 10 at f = 1
    clock.advance(200); // drains 1 at 5/s: level 4
    b.setFactor(1);
    clock.advance(100); // drains 1 at 10/s: level 3
    expect(b.level).toBeCloseTo(3, 12);
    b.setFactor(0.2); // 2/s, capacity 2: the queued 3 stay, nothing joins until below 1
    const d = b.take();
    expect(d).toMatchObject({ allowed: false, reason: 'shed', limit: 2 });
    expect(d.retryAfterMs).toBeCloseTo(1000, 9); // from 3 to 1 at 2/s
    expect(b.take(3)).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity });
  });

  it('refuses everything at factor 0 with Infinity and reason shed, and holds its queue', () => {
    const { clock, b } = leaky(10, 5);
    b.take(2);
    b.setFactor(0);
    expect(b.take()).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity, limit: 0 });
    clock.advance(60_000);
    expect(b.level).toBe(2);
  });
});

describe('LeakyBucket: schedule', () => {
  it('resolves each request when it leaves, in order, at the leak rate', async () => {
    const { clock, b } = leaky(10, 5);
    const s = [1, 2, 1].map((c) => track(b.schedule(c)));
    await flush();
    expect(s[0]!.decision).toMatchObject({ allowed: true, delayMs: 0 });
    expect(s[1]!.decision).toBeUndefined();
    clock.advance(99);
    await flush();
    expect(s[1]!.decision).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(s[1]!.decision).toMatchObject({ allowed: true, delayMs: 100 });
    clock.advance(199);
    await flush();
    expect(s[2]!.decision).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(s[2]!.decision).toMatchObject({ allowed: true, delayMs: 300 });
    expect(b.waiting).toBe(0);
  });

  it('resolves at once with the refusal when the queue is full', async () => {
    const { b } = leaky(10, 2);
    track(b.schedule(2));
    const d = await b.schedule(1);
    expect(d).toMatchObject({ allowed: false, reason: 'limited' });
    expect(d.retryAfterMs).toBeCloseTo(100, 9);
  });

  it('an abort rejects with AbortError and the requests behind leave sooner', async () => {
    const { clock, b } = leaky(10, 10);
    track(b.schedule(1)); // leaves now
    const ac = new AbortController();
    const second = track(b.schedule(3, { signal: ac.signal })); // would leave at 100
    const third = track(b.schedule(1)); // would leave at 400
    clock.advance(50);
    ac.abort('gone');
    await flush();
    expect(isAbortError(second.error)).toBe(true);
    expect((second.error as Error).cause).toBe('gone');
    expect(b.level).toBeCloseTo(1.5, 9); // 0.5 of the first, 1 of the third
    clock.advance(49);
    await flush();
    expect(third.decision).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(third.decision).toMatchObject({ allowed: true, delayMs: 100 });
  });

  it('rejects at once when the signal is already aborted, taking no room', async () => {
    const { b } = leaky(10, 1);
    const ac = new AbortController();
    ac.abort();
    const err = await b.schedule(1, { signal: ac.signal }).catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(b.level).toBe(0);
  });

  it('follows factor changes: a cut makes waiting requests leave later, a rise sooner, 0 holds them', async () => {
    const { clock, b } = leaky(10, 10);
    track(b.schedule(1));
    const w = track(b.schedule(1)); // leaves at 100 at 10/s
    clock.advance(50); // 0.5 drained
    b.setFactor(0.5); // 0.5 more at 5/s: 100 ms more, at 150
    clock.advance(99);
    await flush();
    expect(w.decision).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(w.decision).toMatchObject({ allowed: true, delayMs: 150 });

    const x = track(b.schedule(1)); // 1 ahead (the last one, leaving): at 5/s, 200 ms
    b.setFactor(0);
    clock.advance(10_000);
    await flush();
    expect(x.decision).toBeUndefined();
    b.setFactor(1); // 1 ahead at 10/s: 100 ms
    clock.advance(99);
    await flush();
    expect(x.decision).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(x.decision?.allowed).toBe(true);
    expect(x.decision?.delayMs).toBe(10_100);
  });
});

describe('LeakyBucket: validation', () => {
  it('throws ConfigErrors naming option, value and what is allowed', () => {
    const clock = new ManualClock();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [
        { ratePerSec: Number.NaN, capacity: 1 },
        /`ratePerSec` to be a finite number > 0, got `NaN` \(number\)/,
      ],
      [{ ratePerSec: -2, capacity: 1 }, /`ratePerSec` to be a finite number > 0, got `-2`/],
      [{ ratePerSec: 1, capacity: 0 }, /`capacity` to be a finite number > 0, got `0`/],
      [{ ratePerSec: 1, capacity: Infinity }, /`capacity` to be a finite number > 0, got `Infinity`/],
      [{ ratePerSec: 1, capacity: 1, factor: 3 }, /`factor` to be a finite number from 0 to 1, got `3`/],
      [
        { ratePerSec: 1, capacity: 1, burst: 3 },
        /`LeakyBucket.burst` to be one of the known options \(ratePerSec, capacity, clock, factor\), got `3`/,
      ],
    ];
    for (const [options, message] of cases) {
      let err: unknown;
      try {
        new LeakyBucket({ clock, ...options } as never);
      } catch (e) {
        err = e;
      }
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
    const b = new LeakyBucket({ ratePerSec: 1, capacity: 2, clock });
    expect(() => b.take(3)).toThrow(
      /`cost` to be a finite number > 0 and <= capacity \(2\), got `3` \(number\)/,
    );
    expect(() => b.schedule(0)).toThrow(/`cost` .* got `0`/);
    expect(() => b.setFactor(1.5)).toThrow(/`factor` to be a finite number from 0 to 1, got `1.5`/);
  });
});

describe('LeakyBucket: properties', () => {
  it('at a constant factor, departures follow the ideal shaper: never idle while work waits, never faster than rate·f', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 1000, noNaN: true }),
        fc.double({ min: 0.1, max: 100, noNaN: true }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.array(
          fc.record({
            dtMs: fc.double({ min: 0, max: 2000, noNaN: true }),
            share: fc.double({ min: 0.01, max: 1, noNaN: true }),
          }),
          { maxLength: 60 },
        ),
        (ratePerSec, capacity, factor, ops) => {
          const { clock, b } = leaky(ratePerSec, capacity, factor, 1000);
          const perMs = (ratePerSec * factor) / 1000;
          const cap = capacity * factor;
          // The model: the time the last admitted request has fully left.
          let freeAt = -Infinity;
          for (const op of ops) {
            clock.advance(op.dtMs);
            const now = clock.now();
            const cost = op.share * capacity;
            const queued = Math.max(0, freeAt - now) * perMs;
            const d = b.take(cost);
            const tol = capacity * 1e-6;
            if (queued + cost <= cap - tol) expect(d.allowed).toBe(true);
            if (queued + cost > cap + tol) expect(d.allowed).toBe(false);
            if (d.allowed) {
              const expected = Math.max(now, freeAt);
              expect(d.delayMs).toBeGreaterThanOrEqual(0);
              expect(now + d.delayMs).toBeCloseTo(expected, 4);
              freeAt = expected + cost / perMs;
            } else if (Number.isFinite(d.retryAfterMs)) {
              expect(d.retryAfterMs).toBeCloseTo((queued + cost - cap) / perMs, 3);
            } else expect(cost).toBeGreaterThan(cap);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
