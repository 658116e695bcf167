import { describe, expect, it } from 'vitest';
import { ConcurrencyStage } from '../../src/admission/concurrency-stage.js';
import { ManualClock } from '../../src/clock.js';
import { isAbortError } from '../../src/errors.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/limiter.js';

const req = (signal?: AbortSignal) => ({
  key: 'k',
  priority: 'normal' as const,
  cost: 1,
  ...(signal ? { signal } : {}),
});

describe('ConcurrencyStage', () => {
  it('admits synchronously while a slot is free, queues otherwise, and frees a slot exactly once', async () => {
    const clock = new ManualClock();
    const stage = new ConcurrencyStage(
      new ConcurrencyLimiter({ limit: 1, clock, maxWaitMs: 50, codel: false }),
    );
    const a = req();
    const d = stage.admit(a);
    expect(d).toMatchObject({ allowed: true, reason: 'ok' });
    const b = req();
    const waiting = stage.admit(b);
    expect(waiting).toBeInstanceOf(Promise);
    stage.release(a);
    stage.release(a); // once only
    expect(await waiting).toMatchObject({ allowed: true });
    expect(stage.limiter.inFlight).toBe(1);
    const c = stage.admit(req());
    clock.advance(50);
    const refused = await c;
    expect(refused).toMatchObject({ allowed: false, reason: 'shed', cause: 'deadline', waitedMs: 50 });
    expect(refused.retryAfterMs).toBeGreaterThanOrEqual(1);
    const ac = new AbortController();
    const aborted = Promise.resolve(stage.admit(req(ac.signal))).catch((e) => e);
    ac.abort();
    expect(isAbortError(await aborted)).toBe(true);
    stage.refund(b);
    expect(stage.limiter.inFlight).toBe(0);
  });

  it('a release of work cut short (completed: false) frees the slot but teaches the hold time nothing', () => {
    const clock = new ManualClock();
    const stage = new ConcurrencyStage(new ConcurrencyLimiter({ limit: 2, clock }));
    const a = req();
    stage.admit(a);
    clock.advance(20);
    stage.release(a);
    expect(stage.limiter.snapshot().holdMs).toBe(20);
    const b = req();
    stage.admit(b);
    clock.advance(1);
    stage.release(b, false); // the client left after 1 ms
    expect(stage.limiter.inFlight).toBe(0);
    expect(stage.limiter.snapshot().holdMs).toBe(20);
    stage.release(b); // once only
    expect(stage.limiter.inFlight).toBe(0);
  });
});
