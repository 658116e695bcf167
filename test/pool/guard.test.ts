import genericPool from 'generic-pool';
import { describe, expect, it, vi } from 'vitest';
import { isConfigError, isPoolOverloadedError } from '../../src/errors.js';
import { guardGenericPool } from '../../src/pool/generic-pool.js';
import { guardPool } from '../../src/pool/guard.js';

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
