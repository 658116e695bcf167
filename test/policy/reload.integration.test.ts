/**
 * Hot reload under load: a real node:http server on 127.0.0.1 whose guard's key limiter is a
 * policy limiter; traffic flows while the policy file is changed to a tighter limit (it applies
 * within the watcher's debounce plus a read), then to a bad file (refused, reported, the tighter
 * policy kept). A second server takes its routes (`runtime.serve`) and its concurrency limit
 * (`runtime.pool`) from the policy: a reload adds a route and raises, then lowers, the pool's
 * limit, under load. No request is lost or answered 500 through any of it.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { protect } from '../../src/adapters/http.js';
import { loadPolicy, type PolicyError, PolicyRuntime, watchPolicy } from '../../src/policy/index.js';

const dir = mkdtempSync(join(tmpdir(), 'spillway-reload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DEBOUNCE_MS = 50;
const policy = (ratePerSec: number, burst: number) =>
  JSON.stringify({ limiters: { perClient: { ratePerSec, burst, followGovernor: false } } });

interface Answer {
  readonly sentAt: number;
  readonly status: number | 'error';
}

it('a tighter policy applies under load within the debounce; a bad file keeps it; nothing lost', async () => {
  const file = join(dir, 'policy.json');
  writeFileSync(file, policy(10_000, 10_000));
  const runtime = new PolicyRuntime(await loadPolicy(file, { env: {} }));
  const reloads: number[] = [];
  const rejections: PolicyError[] = [];
  runtime.on('reloaded', () => reloads.push(performance.now()));
  runtime.on('rejected', (e) => rejections.push(e));
  const watcher = watchPolicy(file, runtime, { debounceMs: DEBOUNCE_MS, env: {} });

  const server: Server = createServer(
    protect((_req, res) => res.end('ok'), {
      limiter: runtime.limiter('perClient'),
      key: () => 'one-client',
      turnBudgetMs: false,
    }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const answers: Answer[] = [];
  const one = () =>
    new Promise<void>((done) => {
      const sentAt = performance.now();
      const r = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          answers.push({ sentAt, status: res.statusCode! });
          done();
        });
      });
      r.on('error', () => {
        answers.push({ sentAt, status: 'error' });
        done();
      });
      r.end();
    });
  // Four clients in a loop, bounded in count (40,000) and time (until `stop`). A 429 is answered in
  // ~0.1 ms, so a bound of 5,000 was spent before the last step on a fast, quiet machine.
  let stop = false;
  const workers = Array.from({ length: 4 }, async () => {
    for (let i = 0; i < 10_000 && !stop; i++) await one();
  });
  const until = async (what: string, cond: () => boolean, ms = 5000) => {
    const end = performance.now() + ms;
    while (!cond()) {
      if (performance.now() > end) throw new Error(`${what} not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  try {
    await until('traffic', () => answers.length >= 100);
    expect(answers.every((a) => a.status === 200)).toBe(true);

    // Tighten: 5 per second, burst 5.
    const writtenAt = performance.now();
    writeFileSync(file, policy(5, 5));
    await until('the reload', () => reloads.length === 1);
    const appliedAt = reloads[0]!;
    // Documented: a change applies after `debounceMs` of quiet plus a read. Bound it loosely for
    // a loaded machine; the figure itself is printed.
    console.log(
      `policy applied ${(appliedAt - writtenAt).toFixed(0)} ms after the write (debounce ${DEBOUNCE_MS} ms)`,
    );
    expect(appliedAt - writtenAt).toBeGreaterThanOrEqual(DEBOUNCE_MS - 1);
    expect(appliedAt - writtenAt).toBeLessThan(DEBOUNCE_MS + 2000);
    expect(runtime.limiter('perClient').ratePerSec).toBe(5);
    await until('refusals', () => answers.some((a) => a.sentAt > appliedAt && a.status === 429));

    // A bad file: refused and reported; the tight policy stays in force.
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(file, JSON.stringify({ limiters: { perClient: { ratePerSec: -1, burst: 5 } } }));
    await until('the refusal', () => rejections.length === 1);
    const rejectedAt = performance.now();
    expect(rejections[0]!.issues[0]).toMatchObject({ path: 'limiters.perClient.ratePerSec', value: -1 });
    expect(rejections[0]!.message).toContain('policy.json');
    expect(reloads).toHaveLength(1);
    expect(runtime.policy.limiters['perClient']!.ratePerSec).toBe(5);
    await until('traffic after the refusal', () => answers.filter((a) => a.sentAt > rejectedAt).length >= 50);
    stop = true;
    await Promise.all(workers);

    // Nothing lost: every request answered, 200 or 429, never 500 or a broken connection.
    expect(answers.filter((a) => a.status !== 200 && a.status !== 429)).toEqual([]);
    // Under the new policy (requests sent after it applied), admissions never exceed
    // burst + rate·T: the bucket was clamped to the new burst, not reset to the old one.
    const after = answers.filter((a) => a.sentAt > appliedAt);
    const spanSec = (Math.max(...after.map((a) => a.sentAt)) - appliedAt) / 1000;
    const admitted = after.filter((a) => a.status === 200).length;
    expect(admitted).toBeLessThanOrEqual(5 + 5 * (spanSec + 0.1));
    expect(after.filter((a) => a.status === 429).length).toBeGreaterThan(admitted);
    // And the tight limit still held after the bad file.
    const afterBad = answers.filter((a) => a.sentAt > rejectedAt);
    const badSpanSec = (Math.max(...afterBad.map((a) => a.sentAt)) - rejectedAt) / 1000;
    expect(afterBad.filter((a) => a.status === 200).length).toBeLessThanOrEqual(5 + 5 * (badSpanSec + 0.1));
  } finally {
    stop = true;
    await Promise.all(workers);
    watcher.close();
    runtime.stop();
    agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}, 30_000);

it('a reload adds a route and changes a pool limit on the running guard, under load; nothing lost', async () => {
  const file = join(dir, 'routes-pools.json');
  const HOLD_MS = 20;
  const write = (o: { exportRoute: boolean; poolLimit: number }) =>
    writeFileSync(
      file,
      JSON.stringify({
        limiters: {
          perClient: { ratePerSec: 100_000, burst: 100_000, followGovernor: false },
          exports: { ratePerSec: 5, burst: 5, followGovernor: false },
        },
        routes: [
          ...(o.exportRoute ? [{ method: 'GET', path: '/api/export', limiter: 'exports' }] : []),
          { path: '/api', limiter: 'perClient' },
        ],
        pools: { db: { limit: o.poolLimit, maxQueue: 1000, maxWaitMs: 5000 } },
      }),
    );
  write({ exportRoute: false, poolLimit: 2 });
  const runtime = new PolicyRuntime(await loadPolicy(file, { env: {} }));
  const reloads: { at: number; changed: readonly string[] }[] = [];
  const rejections: PolicyError[] = [];
  runtime.on('reloaded', (r) => reloads.push({ at: performance.now(), changed: r.changed }));
  runtime.on('rejected', (e) => rejections.push(e));
  const watcher = watchPolicy(file, runtime, { debounceMs: DEBOUNCE_MS, env: {} });

  // The handler holds its slot HOLD_MS (a query); `starts` records how many ran at once when each began.
  let running = 0;
  const starts: { at: number; running: number }[] = [];
  const listener = protect(
    (_req, res) => {
      running++;
      starts.push({ at: performance.now(), running });
      setTimeout(() => {
        running--;
        res.end('ok');
      }, HOLD_MS);
    },
    { concurrency: runtime.pool('db'), key: () => 'one-client', turnBudgetMs: false },
  );
  runtime.serve(listener.guard);
  const server: Server = createServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const answers: (Answer & { path: string })[] = [];
  let sent = 0;
  const one = (path: string) =>
    new Promise<void>((done) => {
      const sentAt = performance.now();
      sent++;
      const r = request({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          answers.push({ sentAt, status: res.statusCode!, path });
          done();
        });
      });
      r.on('error', () => {
        answers.push({ sentAt, status: 'error', path });
        done();
      });
      r.end();
    });
  let stop = false;
  // Eight clients, half on /api/export, half on /api/items.
  const workers = Array.from({ length: 8 }, async (_, i) => {
    for (let n = 0; n < 2000 && !stop; n++) await one(i % 2 === 0 ? '/api/export' : '/api/items');
  });
  const until = async (what: string, cond: () => boolean, ms = 5000) => {
    const end = performance.now() + ms;
    while (!cond()) {
      if (performance.now() > end) throw new Error(`${what} not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const reloadAfter = async (change: () => void) => {
    const n = reloads.length;
    const writtenAt = performance.now();
    change();
    await until('the reload', () => reloads.length === n + 1);
    const r = reloads[n]!;
    console.log(
      `reload (${r.changed.join(', ')}) applied ${(r.at - writtenAt).toFixed(0)} ms after the write`,
    );
    return r;
  };
  const startsBetween = (from: number, to = Infinity) => starts.filter((s) => s.at > from && s.at <= to);

  try {
    await until('traffic', () => answers.length >= 100);
    const first = performance.now();
    await until('more traffic', () => answers.filter((a) => a.sentAt > first).length >= 100);
    // Pool limit 2: never more than 2 handlers at once; no route for exports yet, so no 429.
    expect(Math.max(...starts.map((s) => s.running))).toBeLessThanOrEqual(2);
    expect(answers.filter((a) => a.status === 429)).toEqual([]);

    // Reload: a route for /api/export with its own limiter (5/s, burst 5), and the pool raised to 6.
    const raised = await reloadAfter(() => write({ exportRoute: true, poolLimit: 6 }));
    expect(raised.changed).toEqual(['routes', 'pools.db']);
    expect(runtime.pool('db').limit).toBe(6);
    await until('429s on the new route', () =>
      answers.some((a) => a.sentAt > raised.at && a.path === '/api/export' && a.status === 429),
    );
    await until('more than 2 handlers at once', () => startsBetween(raised.at).some((s) => s.running > 2));
    await new Promise((r) => setTimeout(r, 300));
    const raisedSpan = startsBetween(raised.at);
    expect(Math.max(...raisedSpan.map((s) => s.running))).toBeLessThanOrEqual(6);

    // Reload: the pool lowered to 1. Work in flight finishes; no handler starts beside another after.
    const lowered = await reloadAfter(() => write({ exportRoute: true, poolLimit: 1 }));
    expect(lowered.changed).toEqual(['pools.db']);
    await until('traffic at limit 1', () => startsBetween(lowered.at).length >= 20);
    expect(startsBetween(lowered.at).filter((s) => s.running > 1)).toEqual([]);

    // A bad file: refused, reported; the limit of 1 and the export route stay.
    writeFileSync(file, JSON.stringify({ pools: { db: { limit: 0 } } }));
    await until('the refusal', () => rejections.length === 1);
    const rejectedAt = performance.now();
    expect(rejections[0]!.issues[0]).toMatchObject({ path: 'pools.db.limit', value: 0 });
    expect(runtime.pool('db').limit).toBe(1);
    await until('traffic after the refusal', () => startsBetween(rejectedAt).length >= 20);
    expect(startsBetween(rejectedAt).filter((s) => s.running > 1)).toEqual([]);
    stop = true;
    await Promise.all(workers);

    // Nothing lost: every request answered, 200, 429 (the export route's quota) or 503 (the pool's
    // queue shed by CoDel), never 500 or a broken connection.
    expect(answers).toHaveLength(sent);
    expect(answers.filter((a) => a.status !== 200 && a.status !== 429 && a.status !== 503)).toEqual([]);
    // 429 only on /api/export, only under the route the reload added, and within its quota.
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.every((a) => a.path === '/api/export' && a.sentAt > raised.at)).toBe(true);
    const exportsAfter = answers.filter((a) => a.path === '/api/export' && a.sentAt > raised.at);
    const spanSec = (Math.max(...exportsAfter.map((a) => a.sentAt)) - raised.at) / 1000;
    const exportsAdmitted = exportsAfter.filter((a) => a.status === 200).length;
    expect(exportsAdmitted).toBeLessThanOrEqual(5 + 5 * (spanSec + 0.1));
    const counts = (from: number, to: number) => {
      const xs = answers.filter((a) => a.sentAt > from && a.sentAt <= to);
      return `${xs.length} sent: ${[200, 429, 503].map((s) => `${xs.filter((a) => a.status === s).length}×${s}`).join(' ')}`;
    };
    console.log(
      `limit 2: ${counts(0, raised.at)}; limit 6 + route: ${counts(raised.at, lowered.at)}; limit 1: ${counts(lowered.at, Infinity)}`,
    );
    expect(runtime.pool('db').inFlight).toBe(0);
  } finally {
    stop = true;
    await Promise.all(workers);
    watcher.close();
    runtime.stop();
    agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}, 30_000);
