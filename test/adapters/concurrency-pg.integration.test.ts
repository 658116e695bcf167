// The guard's `concurrency` option in front of handlers that query real PostgreSQL (127.0.0.1:5432,
// database `test`; PG* variables override) with `pg_sleep`: the database never runs more of this
// server's queries at once than the limit, every queued request is served, a backlog is refused
// with 503 well before the database could serve it, and the pool ends as it started.
// Under CI (SPILLWAY_REQUIRE_SERVICES=1) a missing PostgreSQL fails; elsewhere these tests skip.
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { protect } from '../../src/adapters/http.js';
import { pgConfig, postgresMissing } from '../pool/postgres.js';

const config = pgConfig;
const APP = `spillway-http-concurrency-${process.pid}`;

const reason = await postgresMissing();

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = httpRequest(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

describe.skipIf(reason !== undefined)('concurrency option in front of real PostgreSQL (pg_sleep)', () => {
  // The pool could run 8 queries at once; the guard allows 2.
  const pool = new pg.Pool({ ...config, max: 8, application_name: APP });
  const admin = new pg.Client(config);
  let running = 0;
  let maxRunning = 0;
  let maxSleeping = 0;
  const servers: ReturnType<typeof createServer>[] = [];
  const handler = async (_req: unknown, res: { end(s: string): void }) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    try {
      await pool.query('select pg_sleep(0.05)');
      res.end('ok');
    } finally {
      running--;
    }
  };
  // Without CoDel, a queue is served in full (up to its deadline); with the defaults, a backlog is shed.
  const patient = protect(handler, { concurrency: { limit: 2, maxWaitMs: 10_000, codel: false } });
  const shedding = protect(handler, { concurrency: { limit: 2 } });
  const sampler = setInterval(() => {
    admin
      .query(
        "select count(*)::int as n from pg_stat_activity where application_name = $1 and query like '%pg_sleep%' and state = 'active'",
        [APP],
      )
      .then((r) => {
        maxSleeping = Math.max(maxSleeping, r.rows[0].n as number);
      })
      .catch(() => {});
  }, 10);
  sampler.unref();

  async function serve(listener: typeof patient): Promise<string> {
    const server = createServer(listener);
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  beforeAll(async () => {
    await admin.connect();
    // Open the pool's connections first, so that connecting is not part of the queries' time.
    await Promise.all(Array.from({ length: 8 }, () => pool.query('select 1')));
  });
  afterAll(async () => {
    clearInterval(sampler);
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((r) => server.close(() => r(undefined)));
    }
    patient.guard.close();
    shedding.guard.close();
    await pool.end();
    await admin.end();
  });

  it('runs at most 2 queries at once and serves a queue in full', async () => {
    const url = await serve(patient);
    const answers = await Promise.all(Array.from({ length: 8 }, () => get(url)));
    expect(answers.map((a) => a.status)).toEqual(new Array(8).fill(200));
    expect(maxRunning).toBe(2);
    expect(maxSleeping).toBeLessThanOrEqual(2);
    expect(maxSleeping).toBeGreaterThanOrEqual(1); // the sampler saw the queries
    expect(pool.waitingCount).toBe(0);
  });

  it('refuses a backlog with 503 (codel) instead of queueing it behind the database', async () => {
    const url = await serve(shedding);
    let longestWaitMs = 0;
    const onAdmitted = (e: { waitedMs: number }) => {
      longestWaitMs = Math.max(longestWaitMs, e.waitedMs);
    };
    shedding.guard.concurrency!.on('admitted', onAdmitted);
    // 80 requests of 50 ms through 2 slots: 2 s of work, sent at once.
    const answers = await Promise.all(Array.from({ length: 80 }, () => get(url)));
    shedding.guard.concurrency!.off('admitted', onAdmitted);
    const ok = answers.filter((a) => a.status === 200).length;
    const refused = answers.filter((a) => a.status === 503);
    expect(ok + refused.length).toBe(80);
    expect(refused.length).toBeGreaterThan(0);
    const reasons = new Set(refused.map((a) => JSON.parse(a.body).reason));
    expect(reasons.has('codel')).toBe(true);
    for (const r of reasons) expect(['codel', 'queue-full', 'deadline']).toContain(r);
    // Served FIFO, the last of 80 would have waited ~2 s; the deadline (1 s) bounds every wait.
    expect(longestWaitMs).toBeLessThan(1000 + 50);
    expect(maxRunning).toBe(2);
    const g = shedding.guard;
    const end = Date.now() + 3000;
    while ((g.inFlight > 0 || g.concurrency!.inFlight > 0) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(g.concurrency!.inFlight).toBe(0);
    expect(g.concurrency!.waiting).toBe(0);
    expect(pool.waitingCount).toBe(0);
    expect(pool.totalCount).toBe(pool.idleCount);
  });
});
