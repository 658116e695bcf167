import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import { createGuard } from '../../src/adapters/core.js';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import {
  describePolicy,
  isPolicyError,
  type PolicyError,
  PolicyRuntime,
  parsePolicy,
  watchPolicy,
} from '../../src/policy/index.js';
import type { Priority } from '../../src/limiters/types.js';
import { guardPool } from '../../src/pool/guard.js';
import { queueDepth } from '../../src/signals/queue-depth.js';
import type { Signal } from '../../src/signals/types.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), 'spillway-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  governor: { floor: 0.1 },
  limiters: {
    perUser: {
      ratePerSec: 10,
      burst: 20,
      tiers: { premium: { ratePerSec: 100, burst: 200, keys: ['vip'] } },
    },
  },
  routes: [{ path: '/api', limiter: 'perUser', priority: 'normal' }],
};

function problems(input: unknown, env: Record<string, string> = {}): PolicyError {
  try {
    parsePolicy(input, { env });
  } catch (err) {
    expect(isPolicyError(err)).toBe(true);
    expect(isConfigError(err)).toBe(true);
    return err as PolicyError;
  }
  throw new Error('expected a PolicyError');
}

describe('the policy schema', () => {
  it('accepts a full policy and applies defaults', () => {
    const p = parsePolicy(
      {
        signals: {
          eventLoopDelay: { targetMs: 40, limitMs: 200 },
          cpu: { target: 0.7, limit: 0.9 },
          memory: { kind: 'rss' },
        },
        ...base,
        pools: { pg: { limit: 10, maxQueue: 50, maxWaitMs: 1000 } },
        stores: { shared: { kind: 'redis', url: 'redis://127.0.0.1:6379', prefix: 'app:' } },
      },
      { env: {} },
    );
    expect(p.limiters.perUser!.algorithm).toBe('token-bucket');
    expect(p.limiters.perUser!.followGovernor).toBe(true);
    expect(p.pools.pg!.maxQueue).toBe(50);
    expect(parsePolicy({}, { env: {} })).toEqual({ limiters: {}, routes: [], pools: {}, stores: {} });
  });

  // Every field, a bad value, and the words of what is allowed.
  const bad: [string, unknown, string, string][] = [
    [
      'signals.eventLoopDelay.targetMs',
      { signals: { eventLoopDelay: { targetMs: -1 } } },
      'signals.eventLoopDelay.targetMs',
      '> 0',
    ],
    [
      'signals.eventLoopDelay.percentile',
      { signals: { eventLoopDelay: { percentile: 101 } } },
      'signals.eventLoopDelay.percentile',
      'percentile',
    ],
    [
      'signals.eventLoopUtilization.limit',
      { signals: { eventLoopUtilization: { limit: 2 } } },
      'signals.eventLoopUtilization.limit',
      'from 0 to 1',
    ],
    ['signals.cpu.tree', { signals: { cpu: { tree: 'yes' } } }, 'signals.cpu.tree', 'true or false'],
    [
      'signals.memory.kind',
      { signals: { memory: { kind: 'swap' } } },
      'signals.memory.kind',
      '"heap", "rss"',
    ],
    [
      'signals target >= limit',
      { signals: { cpu: { target: 0.9, limit: 0.5 } } },
      'signals.cpu.target',
      'less than limit',
    ],
    ['governor.floor', { governor: { floor: 0 } }, 'governor.floor', 'greater than 0 and less than 1'],
    ['governor.mode', { governor: { mode: 'off' } }, 'governor.mode', '"enforce", "shadow"'],
    ['governor.intervalMs', { governor: { intervalMs: '250' } }, 'governor.intervalMs', '> 0'],
    [
      'governor releaseAt >= engageAt',
      { governor: { releaseAt: 0.6, engageAt: 0.5 } },
      'governor.releaseAt',
      'less than engageAt',
    ],
    ['unknown setting', { governor: { flor: 0.1 } }, 'governor.flor', 'only the settings intervalMs'],
    ['unknown section', { limits: {} }, 'limits', 'only the settings'],
    [
      'limiters.x.ratePerSec',
      { limiters: { x: { ratePerSec: 0, burst: 1 } } },
      'limiters.x.ratePerSec',
      '> 0',
    ],
    ['limiters.x.burst missing', { limiters: { x: { ratePerSec: 1 } } }, 'limiters.x.burst', '> 0'],
    [
      'limiters.x.algorithm',
      { limiters: { x: { ratePerSec: 1, burst: 1, algorithm: 'gcra' } } },
      'limiters.x.algorithm',
      '"token-bucket"',
    ],
    [
      'limiters.x.maxKeys',
      { limiters: { x: { ratePerSec: 1, burst: 1, maxKeys: 1.5 } } },
      'limiters.x.maxKeys',
      'an integer',
    ],
    [
      'limiters.x.tiers.t.burst',
      { limiters: { x: { ratePerSec: 1, burst: 1, tiers: { t: { ratePerSec: 1, burst: -2 } } } } },
      'limiters.x.tiers.t.burst',
      '> 0',
    ],
    [
      'limiters.x.store unknown',
      { limiters: { x: { ratePerSec: 1, burst: 1, store: 'nope' } } },
      'limiters.x.store',
      'stores',
    ],
    ['limiter name', { limiters: { '1x': { ratePerSec: 1, burst: 1 } } }, 'limiters.1x', 'a name of letters'],
    ['routes[0].path', { routes: [{ path: 'api' }] }, 'routes.0.path', 'starting with "/"'],
    [
      'routes[0].priority',
      { routes: [{ priority: 'urgent' }] },
      'routes.0.priority',
      '"critical", "normal", "sheddable"',
    ],
    ['routes[0].limiter unknown', { routes: [{ limiter: 'nope' }] }, 'routes.0.limiter', 'null'],
    ['routes[0].cost', { routes: [{ cost: 0 }] }, 'routes.0.cost', '> 0'],
    ['pools.pg.limit 0', { pools: { pg: { limit: 0 } } }, 'pools.pg.limit', 'an integer from 1'],
    ['pools.pg.limit 1.5', { pools: { pg: { limit: 1.5 } } }, 'pools.pg.limit', 'an integer from 1'],
    ['pools.pg.limit "4"', { pools: { pg: { limit: '4' } } }, 'pools.pg.limit', 'an integer from 1'],
    ['pools.pg.limit missing', { pools: { pg: { maxQueue: 3 } } }, 'pools.pg.limit', 'an integer from 1'],
    [
      'pools.pg.maxQueue -1',
      { pools: { pg: { limit: 1, maxQueue: -1 } } },
      'pools.pg.maxQueue',
      'an integer from 0',
    ],
    [
      'pools.pg.maxQueue 2.5',
      { pools: { pg: { limit: 1, maxQueue: 2.5 } } },
      'pools.pg.maxQueue',
      'an integer from 0',
    ],
    ['pools.pg.maxWaitMs -1', { pools: { pg: { limit: 1, maxWaitMs: -1 } } }, 'pools.pg.maxWaitMs', '>= 0'],
    [
      'pools.pg.maxWaitMs "1s"',
      { pools: { pg: { limit: 1, maxWaitMs: '1s' } } },
      'pools.pg.maxWaitMs',
      '>= 0',
    ],
    // The names before 0.1 (one spelling per concept: the library's): refused, naming the right ones.
    [
      'pools.pg.maxConcurrent (now limit)',
      { pools: { pg: { limit: 1, maxConcurrent: 4 } } },
      'pools.pg.maxConcurrent',
      'only the settings limit, maxQueue, maxWaitMs',
    ],
    [
      'pools.pg.queueTimeoutMs (now maxWaitMs)',
      { pools: { pg: { limit: 1, queueTimeoutMs: 4 } } },
      'pools.pg.queueTimeoutMs',
      'only the settings limit, maxQueue, maxWaitMs',
    ],
    [
      'pools.pg.priority (per acquire)',
      { pools: { pg: { limit: 1, priority: 'critical' } } },
      'pools.pg.priority',
      'only the settings limit, maxQueue, maxWaitMs',
    ],
    ['pool name', { pools: { '9pg': { limit: 1 } } }, 'pools.9pg', 'a name of letters'],
    ['pools not an object', { pools: [] }, 'pools', 'an object of pool guards by name'],
    ['routes[0].method', { routes: [{ method: 5 }] }, 'routes.0.method', 'a method or a list of methods'],
    ['routes[0].bypass', { routes: [{ bypass: 'yes' }] }, 'routes.0.bypass', 'true or false'],
    ['routes[0].maxWaitMs', { routes: [{ maxWaitMs: -1 }] }, 'routes.0.maxWaitMs', '>= 0'],
    ['routes[0].limiter 5', { routes: [{ limiter: 5 }] }, 'routes.0.limiter', 'a limiter name or null'],
    [
      'routes[0] unknown setting',
      { routes: [{ concurrency: 'db' }] },
      'routes.0.concurrency',
      'only the settings',
    ],
    ['stores.s.kind', { stores: { s: { kind: 'disk' } } }, 'stores.s.kind', '"memory" or "redis"'],
    ['stores.s.url', { stores: { s: { kind: 'redis', url: 'http://x' } } }, 'stores.s.url', 'redis://'],
  ];
  for (const [what, input, path, allowed] of bad) {
    it(`refuses ${what}, naming the path, the value and what is allowed`, () => {
      const err = problems(input);
      const issue = err.issues.find((i) => i.path === path);
      expect(issue, `${path} in ${err.message}`).toBeDefined();
      expect(issue!.allowed).toContain(allowed);
      expect(err.message).toContain(`${path}: expected`);
    });
  }

  it('reports every problem at once', () => {
    const err = problems({
      governor: { floor: 2, mode: 'x' },
      limiters: { a: { ratePerSec: -1, burst: 0 } },
    });
    expect(err.issues.map((i) => i.path).sort()).toEqual(
      ['governor.floor', 'governor.mode', 'limiters.a.burst', 'limiters.a.ratePerSec'].sort(),
    );
    expect(err.message).toContain('4 problems');
    expect(err.message).toContain('got `2` (number)');
  });

  it('reports malformed JSON as such', () => {
    const err = problems('{"governor": ');
    expect(err.issues[0]!.allowed).toMatch(/^JSON \(/);
  });
});

describe('SPILLWAY_* environment overrides', () => {
  it('override single values, matching settings case-insensitively and ignoring _', () => {
    const p = parsePolicy(base, {
      env: {
        SPILLWAY_GOVERNOR__FLOOR: '0.2',
        SPILLWAY_LIMITERS__PER_USER__RATE_PER_SEC: '50',
        SPILLWAY_GOVERNOR__MODE: 'shadow',
        SPILLWAY_ROUTES__0__COST: '3',
        SPILLWAY_REQUIRE_SERVICES: '1', // no "__": not an override
      },
    });
    expect(p.governor!.floor).toBe(0.2);
    expect(p.governor!.mode).toBe('shadow');
    expect(p.limiters.perUser!.ratePerSec).toBe(50);
    expect(p.limiters.perUser!.burst).toBe(20);
    expect(p.routes[0]!.cost).toBe(3);
  });

  it('names the variable when its value or its path is wrong', () => {
    const err = problems(base, { SPILLWAY_GOVERNOR__FLOOR: '7', SPILLWAY_LIMITERS__NOBODY__BURST: '3' });
    const floor = err.issues.find((i) => i.path === 'governor.floor')!;
    expect(floor.env).toBe('SPILLWAY_GOVERNOR__FLOOR');
    expect(err.message).toContain('(from SPILLWAY_GOVERNOR__FLOOR)');
    expect(err.issues.some((i) => i.env === 'SPILLWAY_LIMITERS__NOBODY__BURST')).toBe(true);
  });
});

const fakeReq = (url: string, method: string, ip: string) =>
  ({
    url,
    method,
    headers: {},
    socket: { remoteAddress: `10.0.0.${ip.charCodeAt(0)}` },
  }) as unknown as IncomingMessage;
const fakeRes = () =>
  Object.assign(new EventEmitter(), { destroyed: false, setHeader() {} }) as unknown as ServerResponse;

const quietSignal = (): Signal => queueDepth('test', () => 0, { target: 5, limit: 50 });

describe('PolicyRuntime', () => {
  it('hot reload keeps every bucket, follows the new limits from then on, and refuses a bad policy', async () => {
    const clock = new ManualClock();
    const rt = new PolicyRuntime(parsePolicy(base, { env: {} }), { clock, signals: [quietSignal()] });
    const reloads: string[][] = [];
    const refusals: PolicyError[] = [];
    rt.on('reloaded', (r) => reloads.push([...r.changed]));
    rt.on('rejected', (e) => refusals.push(e));
    const perUser = rt.limiter('perUser');
    // Spend 15 of alice's 20 tokens; vip has the premium tier.
    for (let i = 0; i < 15; i++) expect((await perUser.take('alice')).allowed).toBe(true);
    expect((await perUser.take('vip', { cost: 150 })).allowed).toBe(true);

    rt.update(
      { ...base, limiters: { perUser: { ...base.limiters.perUser, ratePerSec: 1, burst: 100 } } },
      { env: {} },
    );
    expect(reloads).toEqual([['limiters.perUser']]);
    expect(perUser.burst).toBe(100);
    // Alice's bucket kept its 5 tokens (not reset to the new burst of 100)...
    expect((await perUser.peek('alice', { cost: 6 })).allowed).toBe(false);
    expect((await perUser.take('alice', { cost: 5 })).allowed).toBe(true);
    // ...and, from this call on, refills at the new rate: 1 token per second.
    clock.advance(1000);
    expect((await perUser.peek('alice', { cost: 1 })).allowed).toBe(true);
    expect((await perUser.peek('alice', { cost: 2 })).allowed).toBe(false);
    clock.advance(5000);

    // A bad policy: refused, reported, the old one keeps running.
    expect(() => rt.update({ limiters: { perUser: { ratePerSec: -5, burst: 1 } } }, { env: {} })).toThrow(
      /ratePerSec/,
    );
    expect(refusals).toHaveLength(1);
    expect(rt.policy.limiters.perUser!.burst).toBe(100);
    expect((await perUser.take('alice', { cost: 6 })).allowed).toBe(true);
    rt.stop();
  });

  it('routes match on segment boundaries, first match wins', () => {
    const rt = new PolicyRuntime(
      parsePolicy(
        { ...base, routes: [{ path: '/api', method: 'post', cost: 2 }, { path: '/' }] },
        { env: {} },
      ),
      {
        signals: [quietSignal()],
      },
    );
    expect(rt.route('POST', '/api/x')!.cost).toBe(2);
    expect(rt.route('GET', '/api/x')!.cost).toBeUndefined();
    expect(rt.route('POST', '/apix')!.cost).toBeUndefined();
    expect(() => rt.limiter('nope')).toThrow(/perUser/);
    rt.stop();
  });

  it('reloads from a real file through fs.watch; a bad edit is refused and the old policy kept', async () => {
    const file = join(dir, 'policy.json');
    writeFileSync(file, JSON.stringify(base));
    const rt = new PolicyRuntime(parsePolicy(base, { env: {} }), { signals: [quietSignal()] });
    const watcher = watchPolicy(file, rt, { debounceMs: 20, env: {} });
    const next = <T>(event: 'reloaded' | 'rejected') =>
      new Promise<T>((done, fail) => {
        const t = setTimeout(() => fail(new Error(`no ${event} within 5 s`)), 5000);
        rt.once(event, (x: unknown) => {
          clearTimeout(t);
          done(x as T);
        });
      });
    try {
      const reloaded = next<{ changed: string[] }>('reloaded');
      writeFileSync(file, JSON.stringify({ ...base, governor: { floor: 0.3 } }));
      expect((await reloaded).changed).toContain('governor');
      expect(rt.policy.governor!.floor).toBe(0.3);
      const rejected = next<PolicyError>('rejected');
      writeFileSync(file, '{"governor": {"floor": 5}}');
      expect((await rejected).message).toContain('governor.floor');
      expect(rt.policy.governor!.floor).toBe(0.3);
    } finally {
      watcher.close();
      rt.stop();
    }
  });

  it('pools: runtime.pool(name) is a ConcurrencyLimiter that a reload changes in place; nothing waiting is lost', async () => {
    const clock = new ManualClock();
    const pol = (db: object, more: object = {}) => ({ pools: { db: { limit: 2, ...db }, ...more } });
    const rt = new PolicyRuntime(parsePolicy(pol({ maxQueue: 4, maxWaitMs: 5000 }), { env: {} }), {
      clock,
      signals: [quietSignal()],
    });
    const reloads: string[][] = [];
    rt.on('reloaded', (r) => reloads.push([...r.changed]));
    const db = rt.pool('db');
    expect(db.options).toMatchObject({ limit: 2, maxQueue: 4, maxWaitMs: 5000 });
    const guarded = guardPool({ acquire: async () => ({}), release: () => {}, limiter: db, name: 'db' });
    const held = [await guarded.acquire(), await guarded.acquire()];
    const answers: string[] = [];
    const waits = ['critical', 'normal', 'sheddable', 'sheddable'].map((p) =>
      guarded.acquire({ priority: p as Priority }).then(
        (lease) => {
          answers.push(`${p} in`);
          return lease;
        },
        (err) => {
          answers.push(`${p} ${err.reason}`);
          return undefined;
        },
      ),
    );
    expect(db.waiting).toBe(4);
    // Lower the queue to 2 and the limit to 1: the two sheddable waiters are refused queue-full,
    // the work in flight keeps its slots.
    rt.update(pol({ limit: 1, maxQueue: 2, maxWaitMs: 5000 }), { env: {} });
    expect(reloads.at(-1)).toEqual(['pools.db']);
    expect(rt.pool('db')).toBe(db);
    await new Promise((r) => setImmediate(r));
    expect(answers).toEqual(['sheddable queue-full', 'sheddable queue-full']);
    expect(db.inFlight).toBe(2);
    held[0]!.release();
    await new Promise((r) => setImmediate(r));
    expect(answers).toHaveLength(2); // 1 in flight = the new limit: nobody admitted
    // Raise the limit to 3: both waiters are admitted at once.
    rt.update(pol({ limit: 3, maxQueue: 2 }), { env: {} });
    const leases = await Promise.all(waits);
    expect(answers.slice(2)).toEqual(['critical in', 'normal in']);
    expect(db.options).toMatchObject({ limit: 3, maxQueue: 2, maxWaitMs: 1000 }); // left out: the default
    // A bad pool: refused, the settings in force kept.
    expect(() => rt.update(pol({ limit: 0 }), { env: {} })).toThrow(/pools\.db\.limit/);
    expect(db.options.limit).toBe(3);
    // A new pool appears; a removed one is closed (a later acquire is refused closed).
    rt.update({ pools: { cache: { limit: 5 } } }, { env: {} });
    expect(reloads.at(-1)).toEqual(['pools.db', 'pools.cache']);
    expect(rt.pool('cache').options.limit).toBe(5);
    expect(db.closed).toBe(true);
    expect(() => rt.pool('db')).toThrow(/a pool of the policy \(cache\)/);
    expect(await guarded.acquire().catch((e) => e.reason)).toBe('closed');
    for (const l of [held[1], ...leases]) l?.release();
    expect(db.inFlight).toBe(0);
    rt.stop();
    expect(rt.pool('cache').closed).toBe(true);
  });

  it('routes: serve(guard) builds them into a running guard, and a reload changes them there without dropping limiter state', async () => {
    const clock = new ManualClock();
    const pol = (routes: unknown[], exportsBurst = 1) => ({
      limiters: {
        perUser: { ratePerSec: 1, burst: 3, followGovernor: false, global: { ratePerSec: 1, burst: 4 } },
        exports: { ratePerSec: 1, burst: exportsBurst, followGovernor: false },
      },
      routes,
    });
    const rt = new PolicyRuntime(
      parsePolicy(
        pol([
          { path: '/api', limiter: 'perUser' },
          { path: '/health', bypass: true },
        ]),
        { env: {} },
      ),
      { clock, signals: [quietSignal()] },
    );
    const guard = createGuard({ limiter: null, turnBudgetMs: false });
    const stop = rt.serve(guard);
    const status = async (path: string, ip: string, method = 'GET') => {
      const r = fakeReq(path, method, ip);
      const o = await guard.check(r, fakeRes());
      return o.kind === 'refused' ? o.refusal.status : o.kind;
    };
    // perUser: 3 per client, 4 for everyone (global bucket).
    expect(await status('/api/x', 'a')).toBe('pass');
    expect(await status('/api/x', 'a')).toBe('pass');
    expect(await status('/api/x', 'b')).toBe('pass');
    expect(await status('/other', 'a')).toBe('pass'); // no route: the guard's own (none)
    for (let i = 0; i < 3; i++) expect(await status('/health', 'a')).toBe('pass');

    // Add an exports route before /api, with a cost and a priority; /health is no longer bypassed.
    rt.update(
      pol([
        { method: 'POST', path: '/api/export', limiter: 'exports', cost: 1, priority: 'sheddable' },
        { path: '/api', limiter: 'perUser', cost: 1 },
        { path: '/health', limiter: null },
        { limiter: 'perUser' },
      ]),
      { env: {} },
    );
    // perUser did not change: its buckets and its global bucket are as they were (1 global left).
    expect(await status('/api/x', 'c')).toBe('pass');
    expect(await status('/api/x', 'd')).toBe(503); // the global bucket is capacity: 503
    expect(await status('/other', 'e')).toBe(503); // the catch-all route: perUser, global spent
    expect(await status('/health', 'a')).toBe('pass'); // limiter null: none
    expect(await status('/api/export', 'f', 'POST')).toBe('pass');
    expect(await status('/api/export', 'f', 'POST')).toBe(429);

    // Change the exports limiter (burst 5): the route follows; perUser still keeps its state.
    clock.advance(1000);
    rt.update(
      pol(
        [
          { method: 'POST', path: '/api/export', limiter: 'exports', cost: 2 },
          { path: '/api', limiter: 'perUser' },
        ],
        5,
      ),
      { env: {} },
    );
    expect(await status('/api/export', 'g', 'POST')).toBe('pass');
    expect(await status('/api/export', 'g', 'POST')).toBe('pass');
    expect(await status('/api/export', 'g', 'POST')).toBe(429); // 2 + 2 of 5, then 1 left < cost 2
    expect(await status('/api/x', 'h')).toBe('pass'); // the global bucket refilled 1 in 1 s, not reset to 4
    expect(await status('/api/x', 'i')).toBe(503);

    // A bad policy: refused, the guard keeps the routes in force.
    expect(() => rt.update(pol([{ path: '/api', limiter: 'nobody' }]), { env: {} })).toThrow(
      /routes\.0\.limiter/,
    );
    expect(await status('/api/export', 'j', 'POST')).toBe('pass');
    expect(await status('/api/export', 'j', 'POST')).toBe('pass');
    expect(await status('/api/export', 'j', 'POST')).toBe(429);

    // Removing every route: the guard's own settings (no limiter) again.
    rt.update(pol([]), { env: {} });
    expect(await status('/api/export', 'j', 'POST')).toBe('pass');
    stop();
    rt.update(pol([{ limiter: 'perUser' }]), { env: {} });
    expect(await status('/api/export', 'j', 'POST')).toBe('pass'); // no longer served
    expect(() => rt.serve({} as never)).toThrow(/`guard`/);
    rt.stop();
  });

  it("routes: a reload changes a route's priority and cost as the guard's stages see them", async () => {
    const seen: string[] = [];
    const shedder = {
      admit: (o: { priority: Priority; cost: number }) => {
        seen.push(`${o.priority}/${o.cost}`);
        return {
          allowed: true,
          reason: 'ok',
          remaining: 1,
          limit: 1,
          retryAfterMs: 0,
          resetMs: 0,
          factor: 1,
        } as const;
      },
    };
    const rt = new PolicyRuntime(
      parsePolicy({ routes: [{ path: '/report', priority: 'sheddable', cost: 3 }] }, { env: {} }),
      { signals: [quietSignal()] },
    );
    const guard = createGuard({ shedder, turnBudgetMs: false });
    rt.serve(guard);
    await guard.check(fakeReq('/report/1', 'GET', 'a'), fakeRes());
    await guard.check(fakeReq('/home', 'GET', 'a'), fakeRes());
    rt.update(
      {
        routes: [
          { path: '/report', priority: 0.9, cost: 0.5 },
          { path: '/home', priority: 'critical' },
        ],
      },
      { env: {} },
    );
    await guard.check(fakeReq('/report/1', 'GET', 'a'), fakeRes());
    await guard.check(fakeReq('/home', 'GET', 'a'), fakeRes());
    expect(seen).toEqual(['sheddable/3', 'normal/1', '0.9/0.5', 'critical/1']);
    rt.stop();
  });

  it("RateLimit-Policy gives a key of a tier its tier's window, through the runtime's limiter", async () => {
    const clock = new ManualClock();
    // Default: 10 a second, burst 10 (w = 1 s); the 'pro' tier, client P (10.0.0.80): 1 a second,
    // burst 60 (w = 60 s).
    const rt = new PolicyRuntime(
      parsePolicy(
        {
          limiters: {
            perUser: {
              ratePerSec: 10,
              burst: 10,
              followGovernor: false,
              tiers: { pro: { ratePerSec: 1, burst: 60, keys: ['10.0.0.80'] } },
            },
          },
          routes: [{ path: '/served', limiter: 'perUser' }],
        },
        { env: {} },
      ),
      { clock, signals: [quietSignal()] },
    );
    const limiter = rt.limiter('perUser');
    expect(limiter.hasTiers).toBe(true);
    expect(limiter.limitsOf('10.0.0.80')).toEqual({ ratePerSec: 1, burst: 60 });
    const guard = createGuard({ limiter, routes: [{ path: '/inherits' }], turnBudgetMs: false });
    rt.serve(guard);
    const policy = async (path: string, client: string) => {
      const headers: Record<string, string> = {};
      const res = Object.assign(new EventEmitter(), {
        destroyed: false,
        setHeader: (k: string, v: string) => (headers[k] = v),
      }) as unknown as ServerResponse;
      await guard.check(fakeReq(path, 'GET', client), res);
      return headers['ratelimit-policy'];
    };
    const seen: Record<string, string | undefined> = {};
    for (const path of ['/', '/inherits', '/served']) {
      seen[`${path} P`] = await policy(path, 'P');
      seen[`${path} A`] = await policy(path, 'A');
    }
    const pro = '"default";q=60;w=60';
    const free = '"default";q=10;w=1';
    expect(seen).toEqual({
      '/ P': pro,
      '/ A': free,
      '/inherits P': pro,
      '/inherits A': free,
      '/served P': pro,
      '/served A': free,
    });
    rt.stop();
  });

  it("RateLimit fields describe the policy in force after a reload: the guard's limiter, a route inheriting it, a served route", async () => {
    const clock = new ManualClock();
    const pol = (ratePerSec: number, burst: number) => ({
      limiters: { perUser: { ratePerSec, burst, followGovernor: false } },
      routes: [{ path: '/served', limiter: 'perUser' }],
    });
    // w = burst / ratePerSec = 10 s.
    const rt = new PolicyRuntime(parsePolicy(pol(10, 100), { env: {} }), {
      clock,
      signals: [quietSignal()],
    });
    const guard = createGuard({
      limiter: rt.limiter('perUser'),
      routes: [{ path: '/inherits' }],
      turnBudgetMs: false,
    });
    rt.serve(guard);
    let n = 0;
    const fields = async (path: string, client = String.fromCharCode(65 + n++)) => {
      const headers: Record<string, string> = {};
      const res = Object.assign(new EventEmitter(), {
        destroyed: false,
        setHeader: (k: string, v: string) => (headers[k] = v),
      }) as unknown as ServerResponse;
      // A new client each time: every request is admitted, with a full bucket.
      const o = await guard.check(fakeReq(path, 'GET', client), res);
      const h = o.kind === 'refused' ? o.refusal.headers : headers;
      return { policy: h['ratelimit-policy'], state: h.ratelimit, kind: o.kind };
    };
    for (const path of ['/', '/inherits', '/served'])
      expect(await fields(path)).toEqual({
        policy: '"default";q=100;w=10',
        state: '"default";r=99;t=1',
        kind: 'pass',
      });

    // Same burst (so the same quota), five times the rate: w = 2 s.
    rt.update(pol(50, 100), { env: {} });
    for (const path of ['/', '/inherits', '/served'])
      expect(await fields(path)).toEqual({
        policy: '"default";q=100;w=2',
        state: '"default";r=99;t=1',
        kind: 'pass',
      });

    // Both changed: q = 20, w = 20 / 5 = 4 s; the refusal's fields too.
    rt.update(pol(5, 20), { env: {} });
    for (const path of ['/', '/inherits', '/served'])
      expect(await fields(path)).toEqual({
        policy: '"default";q=20;w=4',
        state: '"default";r=19;t=1',
        kind: 'pass',
      });
    for (let i = 0; i < 20; i++) await fields('/', 'z');
    expect(await fields('/', 'z')).toEqual({
      policy: '"default";q=20;w=4',
      state: '"default";r=0;t=4',
      kind: 'refused',
    });
    rt.stop();
  });

  it('describes the effective limits per tier and priority at factors 1, 0.5 and the floor', () => {
    const text = describePolicy(parsePolicy(base, { env: {} }));
    expect(text).toContain('factor 0.1');
    expect(text).toMatch(
      /\(default\)\s+normal\s+10\.0\/s burst 20\.0\s+5\.00\/s burst 10\.0\s+1\.00\/s burst 2\.00/,
    );
    expect(text).toMatch(/premium\s+critical\s+100\/s burst 200/);
  });
});

describe('spillway check', () => {
  const cli = join(root, 'dist/cli.js');
  const check = (file: string, env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [cli, 'check', file], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('prints what a good policy does, exit 0', () => {
    writeFileSync(
      join(dir, 'good.json'),
      JSON.stringify({
        ...base,
        routes: [
          { method: 'POST', path: '/api/export', limiter: 'perUser', cost: 10, priority: 'sheddable' },
          ...base.routes,
          { path: '/slow', maxWaitMs: 250 },
        ],
        pools: { db: { limit: 10, maxWaitMs: 250 } },
      }),
    );
    const r = check('good.json', { SPILLWAY_POOLS__DB__MAX_QUEUE: '20' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('good.json: valid');
    expect(r.stdout).toContain('limiter perUser');
    expect(r.stdout).toMatch(/POST\s+\/api\/export\s+limiter perUser, priority sheddable, cost 10/);
    expect(r.stdout).toMatch(/any\s+\/api\s+limiter perUser, priority normal, cost 1/);
    expect(r.stdout).toMatch(
      /any\s+\/slow\s+limiter the guard's, priority normal, cost 1, waits up to 250 ms/,
    );
    expect(r.stdout).toContain('pool db: limit 10 in flight, queue 20 waiters, wait 250 ms at most');
  });

  it('lists every problem of a bad policy with the env overrides applied, exit 1', () => {
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({ ...base, governor: { floor: 3 }, routes: [{ path: 'x' }] }),
    );
    const r = check('bad.json', { SPILLWAY_LIMITERS__PER_USER__BURST: '-1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('bad.json');
    expect(r.stderr).toContain('governor.floor');
    expect(r.stderr).toContain('routes.0.path');
    expect(r.stderr).toContain('(from SPILLWAY_LIMITERS__PER_USER__BURST)');
  });

  it('says what is wrong with the command line, exit 2', () => {
    const r = spawnSync(process.execPath, [cli, 'check'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('Usage: spillway check');
  });
});
