// Real PostgreSQL on 127.0.0.1:5432 (database `test`, user `postgres`; PG* variables override).
// Under CI (SPILLWAY_REQUIRE_SERVICES=1) a missing PostgreSQL fails; elsewhere these tests skip.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAbortError, isPoolOverloadedError } from '../../src/errors.js';
import { guardPgPool } from '../../src/pool/pg.js';
import { pgConfig, postgresMissing } from './postgres.js';

const config = pgConfig;
// Tells this file's connections apart in pg_stat_activity.
const APP = `spillway-pool-test-${process.pid}`;

const reason = await postgresMissing();

async function backends(admin: pg.Client): Promise<number> {
  const r = await admin.query('select count(*)::int as n from pg_stat_activity where application_name = $1', [
    APP,
  ]);
  return r.rows[0].n as number;
}

/**
 * The backend count once it reaches `n`, or the last count after 15 s (a backend exits just after its
 * client, and later on a loaded machine: the poll returns as soon as the count is reached).
 */
async function backendsSettle(admin: pg.Client, n: number): Promise<number> {
  let last = await backends(admin);
  for (let i = 0; i < 150 && last !== n; i++) {
    await new Promise((r) => setTimeout(r, 100));
    last = await backends(admin);
  }
  return last;
}

describe.skipIf(reason !== undefined)('guardPgPool against real PostgreSQL', () => {
  const admin = new pg.Client(config);
  beforeAll(async () => {
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
  });

  it('10,000 operations with random durations, aborts, errors and deadlines leak nothing', async () => {
    const pool = new pg.Pool({ ...config, max: 4, application_name: APP });
    const guarded = guardPgPool<pg.PoolClient>(pool, { maxQueue: 64, maxWaitMs: 200, name: 'leak-test' });
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const counts = { ok: 0, overloaded: 0, aborted: 0, sqlError: 0, other: 0 };
    let settled = 0;
    const op = async (): Promise<void> => {
      const r = rand();
      const ac = new AbortController();
      if (r < 0.05) setTimeout(() => ac.abort(new Error('gave up')), Math.floor(rand() * 3));
      const admission = { signal: ac.signal, ...(r > 0.95 ? { maxWaitMs: Math.floor(rand() * 5) } : {}) };
      try {
        if (r < 0.5) {
          const ms = rand() < 0.1 ? rand() * 0.004 : 0;
          await guarded.query(
            ms > 0 ? 'select pg_sleep($1)' : 'select 1',
            ms > 0 ? [ms] : undefined,
            admission,
          );
        } else if (r < 0.6) {
          await guarded.query('select * from no_such_table_spillway', undefined, admission);
        } else {
          const client = await guarded.connect(admission);
          const fail = rand() < 0.2;
          try {
            await client.query('begin');
            await client.query(fail ? 'select 1/0' : 'select 1');
            await client.query('commit');
            client.release();
          } catch (err) {
            // release(err) destroys the connection; the slot is freed all the same.
            client.release(err as Error);
            throw err;
          }
        }
        counts.ok++;
      } catch (err) {
        if (isPoolOverloadedError(err)) counts.overloaded++;
        else if (isAbortError(err)) counts.aborted++;
        else if ((err as { code?: string }).code !== undefined) counts.sqlError++;
        else counts.other++;
      } finally {
        settled++;
      }
    };
    const N = 10_000;
    const BATCH = 100;
    for (let i = 0; i < N; i += BATCH) {
      await Promise.all(Array.from({ length: BATCH }, op));
    }
    expect(settled).toBe(N);
    expect(counts.other).toBe(0);
    // How many succeed depends on the machine's load (deadlines of 200 ms); that some do is enough here.
    expect(counts.ok).toBeGreaterThan(0);
    expect(counts.overloaded).toBeGreaterThan(0);
    expect(counts.aborted).toBeGreaterThan(0);
    expect(counts.sqlError).toBeGreaterThan(0);
    // Every slot back, nobody waiting, the pool as it was: all its clients idle.
    expect(guarded.limiter.inFlight).toBe(0);
    expect(guarded.limiter.waiting).toBe(0);
    expect(pool.waitingCount).toBe(0);
    expect(pool.idleCount).toBe(pool.totalCount);
    expect(pool.totalCount).toBeLessThanOrEqual(4);
    expect(await backendsSettle(admin, pool.totalCount)).toBe(pool.totalCount);
    guarded.close();
    await pool.end();
    expect(await backendsSettle(admin, 0)).toBe(0);
  }, 120_000);

  it('a burst of slow queries is shed with bounded queue time, and leaks nothing', async () => {
    const pool = new pg.Pool({ ...config, max: 4, application_name: APP });
    const guarded = guardPgPool<pg.PoolClient>(pool, { maxQueue: 1000, maxWaitMs: 2000, name: 'burst-test' });
    // 4 connections × 50 ms = 80 queries/s: 240 at once are 3 s of work for the pool, and without
    // the guard the last would wait ~3 s.
    const results: { ok: boolean; ms: number; reason?: string }[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 240 }, () =>
        guarded.query('select pg_sleep(0.05)').then(
          () => void results.push({ ok: true, ms: performance.now() - t0 }),
          (err) =>
            void results.push({
              ok: false,
              ms: performance.now() - t0,
              reason: (err as { reason?: string }).reason,
            }),
        ),
      ),
    );
    const ok = results.filter((r) => r.ok);
    const refused = results.filter((r) => !r.ok);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(['codel', 'queue-full', 'deadline']).toContain(r.reason);
    // Bounded queue time: every refusal came within the CoDel interval plus a few targets, not after
    // seconds; the admitted ones finished well before the 3 s an unguarded pool needs.
    for (const r of refused) expect(r.ms).toBeLessThan(1000);
    expect(Math.max(...ok.map((r) => r.ms))).toBeLessThan(2000);
    expect(ok.length).toBeGreaterThanOrEqual(4);
    expect(guarded.limiter.inFlight).toBe(0);
    expect(pool.idleCount).toBe(pool.totalCount);
    guarded.close();
    await pool.end();
    expect(await backendsSettle(admin, 0)).toBe(0);
  }, 30_000);
});
