import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/limiter.js';
import { queueTime } from '../../src/signals/queue-time.js';

describe('queueTime signal', () => {
  it('samples the longest wait since the last sample: finished waits and the oldest still waiting', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ limit: 1, clock, codel: false, maxWaitMs: 1000 });
    const s = queueTime('pool-wait', l, { targetMs: 10, limitMs: 100 });
    s.start!();
    expect(s.sample(clock.now())).toBe(0);
    const a = await l.acquire();
    const w = l.acquire();
    clock.advance(30);
    expect(s.sample(clock.now())).toBe(30); // still waiting
    if (a.allowed) a.release();
    const d = await w;
    clock.advance(5);
    // It left the queue after 30 ms; nothing waits now.
    expect(s.sample(clock.now())).toBe(30);
    expect(s.sample(clock.now())).toBe(0);
    // Refusals count too.
    const r = l.acquire();
    clock.advance(1000);
    expect((await r).allowed).toBe(false);
    expect(s.sample(clock.now())).toBe(1000);
    s.stop!();
    if (d.allowed) d.release();
    expect([s.name, s.unit, s.target, s.limit]).toEqual(['pool-wait', 'ms', 10, 100]);
  });

  it('validates its options', () => {
    const l = new ConcurrencyLimiter({ limit: 1 });
    expect(() => queueTime('x', l, { targetMs: 50, limitMs: 10 })).toThrow(/`limitMs`/);
    expect(() => queueTime('bad name', l)).toThrow(/`name`/);
    try {
      queueTime('x', {} as never);
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
    }
  });
});
