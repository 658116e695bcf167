import genericPool from 'generic-pool';
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError, isPoolOverloadedError } from '../../src/errors.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/limiter.js';
import { guardGenericPool } from '../../src/pool/generic-pool.js';
import { guardPool } from '../../src/pool/guard.js';
import { guardPgPool } from '../../src/pool/pg.js';

describe('guardPool', () => {
  it('holds at most limit resources, refuses with a typed error, and frees a slot when acquire fails', async () => {
    let out = 0;
    let fail = false;
    const g = guardPool({
      limit: 2,
      maxWaitMs: 0,
      name: 'unit',
      acquire: async () => {
        if (fail) throw new Error('pool broken');
        out++;
        return { id: out };
      },
      release: () => {
        out--;
      },
    });
    const a = await g.acquire();
    const b = await g.acquire();
    const err = await g.acquire().catch((e) => e);
    expect(isPoolOverloadedError(err)).toBe(true);
    expect(err).toMatchObject({ reason: 'deadline', code: 'ERR_SPILLWAY_POOL_OVERLOADED' });
    expect(err.retryAfterMs).toBeGreaterThanOrEqual(1);
    a.release();
    a.release(); // idempotent: the pool sees one release
    expect(out).toBe(1);
    fail = true;
    await expect(g.acquire()).rejects.toThrow('pool broken');
    expect(g.limiter.inFlight).toBe(1);
    b.release();
    fail = false;
    await expect(g.use(async () => Promise.reject(new Error('work failed')))).rejects.toThrow('work failed');
    expect(await g.use(async (r) => r.id)).toBe(1);
    expect(g.limiter.inFlight).toBe(0);
    expect(out).toBe(0);
    g.close();
    expect(await g.acquire().catch((e) => e.reason)).toBe('closed');
  });

  it('rejects bad options with ConfigError', () => {
    expect(() => guardPool({ acquire: 1, release: () => {} } as never)).toThrow(/`acquire`/);
    try {
      guardPool({ acquire: async () => 1, release: () => {}, limit: -1 });
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
    }
  });
});

describe('a pool guard over a limiter it is given (limiter)', () => {
  const resources = () => ({ acquire: async () => ({}), release: () => {} });

  it('shares the limiter and follows its live settings; close ends only its own waits and leaves the limiter open', async () => {
    const clock = new ManualClock();
    const shared = new ConcurrencyLimiter({ limit: 1, maxWaitMs: 1000, codel: false, clock });
    const g = guardPool({ ...resources(), limiter: shared, name: 'db' });
    const h = guardPool({ ...resources(), limiter: shared, name: 'db2' });
    expect(g.limiter).toBe(shared);
    const first = await g.acquire();
    // Waiting: one through g, one through h, one through g with its own signal.
    const ac = new AbortController();
    const gWait = g.acquire().catch((e) => e);
    const hWait = h.acquire();
    const gAborted = g.acquire({ signal: ac.signal }).catch((e) => e);
    expect(shared.waiting).toBe(3);
    shared.update({ limit: 2 }); // a live change (a policy reload) reaches every guard: g's waiter is in
    const second = await gWait;
    expect(second.resource).toBeDefined();
    ac.abort();
    expect((await gAborted).name).toBe('AbortError');
    g.close();
    expect(shared.closed).toBe(false);
    expect(await g.acquire().catch((e) => [e.name, e.reason])).toEqual(['PoolOverloadedError', 'closed']);
    first.release();
    const third = await hWait; // h is unaffected
    expect(shared.inFlight).toBe(2);
    second.release();
    third.release();
    expect(shared.inFlight).toBe(0);
  });

  it('close refuses its waiters on the shared limiter with closed', async () => {
    const shared = new ConcurrencyLimiter({ limit: 1, maxWaitMs: Infinity, codel: false });
    const g = guardPool({ ...resources(), limiter: shared });
    const held = await g.acquire();
    const waiting = g.acquire().catch((e) => e);
    await new Promise((r) => setImmediate(r));
    g.close();
    const err = await waiting;
    expect(isPoolOverloadedError(err)).toBe(true);
    expect(err.reason).toBe('closed');
    expect(shared.waiting).toBe(0);
    held.release();
    expect(shared.inFlight).toBe(0);
  });

  it('refuses a limiter with other limiter options, or a limiter that is not one', () => {
    const shared = new ConcurrencyLimiter({ limit: 1 });
    const bad: [object, string][] = [
      [{ limiter: shared, limit: 3 }, 'limit'],
      [{ limiter: shared, maxWaitMs: 10 }, 'maxWaitMs'],
      [{ limiter: { acquire() {} } }, 'limiter'],
      [{ limiter: null }, 'limiter'],
    ];
    for (const [o, name] of bad) {
      try {
        guardPool({ ...resources(), ...o } as never);
        expect.unreachable(JSON.stringify(Object.keys(o)));
      } catch (err) {
        expect(isConfigError(err)).toBe(true);
        expect((err as { option: string }).option).toBe(name);
      }
    }
    const pool = { acquire: async () => 1, release: async () => {}, destroy: async () => {}, max: 9 };
    expect(guardGenericPool(pool, { limiter: shared }).limiter).toBe(shared);
    // guardPgPool: the limiter given, not one of the pool's max.
    const pg = {
      connect: async () => ({ release() {} }),
      query: async () => ({ rows: [] }),
      options: { max: 9 },
    };
    const db = guardPgPool(pg, { limiter: shared, name: 'pg' });
    expect(db.limiter).toBe(shared);
    expect(db.limiter.limit).toBe(1);
  });
});

describe('guardGenericPool', () => {
  it('takes the pool max as its limit, and release / destroy free the slot', async () => {
    let created = 0;
    let destroyed = 0;
    const pool = genericPool.createPool(
      {
        create: async () => ({ n: ++created }),
        destroy: async () => {
          destroyed++;
        },
      },
      { max: 2 },
    );
    const g = guardGenericPool(pool, { maxWaitMs: 0 });
    expect(g.limiter.limit).toBe(2);
    const r1 = await g.take();
    const r2 = await g.take();
    await expect(g.take()).rejects.toMatchObject({ reason: 'deadline' });
    g.release(r1);
    g.destroy(r2);
    g.destroy(r2); // once only
    // generic-pool destroys on its own schedule: wait for it to report, not a fixed time.
    await vi.waitFor(() => expect(destroyed).toBe(1));
    expect(g.limiter.inFlight).toBe(0);
    expect(await g.use(async (r) => typeof r.n)).toBe('number');
    await pool.drain();
    await pool.clear();
  });
});
