import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it, vi } from 'vitest';
import {
  createGuard,
  type HttpGuard,
  type Outcome,
  pathHasPrefix,
  type Refusal,
} from '../../src/adapters/core.js';
import { TurnBudget } from '../../src/admission/turn-budget.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/limiter.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';
import { MemoryStore } from '../../src/stores/memory.js';
import type { Decision, Priority } from '../../src/limiters/types.js';
import { parseList } from './structured-fields.js';

interface FakeReq {
  url: string;
  method: string;
  headers: Record<string, string>;
  socket: { remoteAddress: string };
}
function req(url = '/', o: { method?: string; headers?: Record<string, string>; ip?: string } = {}) {
  const r: FakeReq = {
    url,
    method: o.method ?? 'GET',
    headers: o.headers ?? {},
    socket: { remoteAddress: o.ip ?? '198.51.100.1' },
  };
  return r as unknown as IncomingMessage;
}
class FakeRes extends EventEmitter {
  readonly headers: Record<string, string> = {};
  destroyed = false;
  setHeader(k: string, v: string): this {
    this.headers[k] = v;
    return this;
  }
}
const res = () => new FakeRes() as unknown as ServerResponse & FakeRes;

function sync(o: Outcome | Promise<Outcome>): Outcome {
  if (o instanceof Promise) throw new Error('expected a synchronous outcome');
  return o;
}
function refused(o: Outcome | Promise<Outcome>): Refusal {
  const s = sync(o);
  if (s.kind !== 'refused') throw new Error(`expected a refusal, got ${s.kind}`);
  return s.refusal;
}

const denyAll: Decision = {
  allowed: false,
  reason: 'shed',
  remaining: 0,
  limit: 0,
  retryAfterMs: 2500,
  resetMs: 0,
  factor: 0.1,
};

describe('HttpGuard admission', () => {
  it('answers 429 over quota with Retry-After, RateLimit fields and a problem body', () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 1, burst: 2, clock });
    const g = createGuard({ limiter, windowSec: 2 });
    const r1 = res();
    expect(sync(g.check(req(), r1)).kind).toBe('pass');
    expect(parseList(r1.headers['ratelimit-policy']!)).toEqual([
      { value: 'default', params: { q: 2, w: 2 } },
    ]);
    expect(parseList(r1.headers.ratelimit!)).toEqual([{ value: 'default', params: { r: 1, t: 1 } }]);
    expect(sync(g.check(req(), res())).kind).toBe('pass');
    const f = refused(g.check(req(), res()));
    expect(f.status).toBe(429);
    expect(f.stage).toBe('key');
    expect(f.headers['retry-after']).toBe('1');
    expect(parseList(f.headers.ratelimit!)[0]!.params).toEqual({ r: 0, t: 2 });
    expect(JSON.parse(f.body)).toMatchObject({
      status: 429,
      retryAfter: 1,
      'violated-policies': ['default'],
    });
    expect(f.headers['content-length']).toBe(String(Buffer.byteLength(f.body)));
    // other keys are unaffected
    expect(sync(g.check(req('/', { ip: '198.51.100.2' }), res())).kind).toBe('pass');
    clock.advance(1000);
    expect(sync(g.check(req(), res())).kind).toBe('pass');
  });

  it('sends each admitted response its own RateLimit value as r and t move, and the same one again when they return', () => {
    const clock = new ManualClock();
    // Half a token a second: t (seconds until the bucket is full again) can differ at the same r.
    const limiter = createLimiter({ ratePerSec: 0.5, burst: 10, clock });
    const g = createGuard({ limiter });
    const state = (ip: string): string => {
      const r = res();
      expect(sync(g.check(req('/', { ip }), r)).kind).toBe('pass');
      return r.headers.ratelimit!;
    };
    const [a, b, c] = ['198.51.100.1', '198.51.100.2', '198.51.100.3'];
    expect(state(a)).toBe('"default";r=9;t=2');
    expect(state(a)).toBe('"default";r=8;t=4');
    // Another client, its bucket full: the first value again.
    expect(state(b)).toBe('"default";r=9;t=2');
    expect(state(b)).toBe('"default";r=8;t=4');
    expect(state(b)).toBe('"default";r=7;t=6');
    clock.advance(1200);
    // a: 8.6 tokens, 7.6 once charged, full again in 4.8 s (t rounds up).
    expect(state(a)).toBe('"default";r=7;t=5');
    // b: 7.6 tokens, 6.6 once charged (6.8 s); c, a new client charged a fourth time, has 6 (8 s):
    // the same r, another t.
    for (const rt of ['r=9;t=2', 'r=8;t=4', 'r=7;t=6']) expect(state(c)).toBe(`"default";${rt}`);
    expect(state(b)).toBe('"default";r=6;t=7');
    expect(state(c)).toBe('"default";r=6;t=8');
    expect(state(b)).toBe('"default";r=5;t=9');
  });

  it('advertises the scaled quota as the factor moves, on the response or on a field sink (Fastify reply)', () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const limiter = createLimiter({ ratePerSec: 10, burst: 100, clock, factor });
    const g = createGuard({ limiter });
    const policyOf = (h: Record<string, string>) => parseList(h['ratelimit-policy']!)[0]!.params.q;
    const a = res();
    g.check(req(), a);
    expect(policyOf(a.headers)).toBe(100);
    factor.set(0.5);
    const b = res();
    g.check(req(), b);
    expect(policyOf(b.headers)).toBe(50);
    const sink: Record<string, string> = {};
    const c = res();
    g.check(req(), c, { header: (name: string, value: string) => (sink[name] = value) });
    expect(c.headers).toEqual({});
    expect(policyOf(sink)).toBe(50);
    expect(Object.keys(sink).sort()).toEqual(['ratelimit', 'ratelimit-policy']);
    factor.set(1);
    const d = res();
    g.check(req(), d);
    expect(policyOf(d.headers)).toBe(100);
  });

  it("advertises each key's tier window in RateLimit-Policy (w = its burst / rate), admitted or refused", async () => {
    const clock = new ManualClock();
    // Default: 10 a second, burst 10 (w = 1 s); the 'pro' tier: 1 a second, burst 60 (w = 60 s).
    const tiers = (key: string) => (key === 'pro' ? { ratePerSec: 1, burst: 60 } : undefined);
    const keyed = createLimiter({ ratePerSec: 10, burst: 10, tiers, clock });
    const store = createLimiter({ store: new MemoryStore({ clock }), ratePerSec: 10, burst: 10, tiers, clock });
    for (const limiter of [keyed, store]) {
      const g = createGuard({ limiter, key: (r) => r.headers['x-tenant'] as string });
      const policy = async (tenant: string) => {
        const r = res();
        let o = g.check(req('/', { headers: { 'x-tenant': tenant } }), r);
        if (o instanceof Promise) o = await o;
        const h = o.kind === 'refused' ? o.refusal.headers : r.headers;
        return { kind: o.kind, ...parseList(h['ratelimit-policy']!)[0]!.params };
      };
      expect(await policy('pro')).toEqual({ kind: 'pass', q: 60, w: 60 });
      expect(await policy('free')).toEqual({ kind: 'pass', q: 10, w: 1 });
      expect(await policy('pro')).toEqual({ kind: 'pass', q: 60, w: 60 });
      for (let i = 0; i < 9; i++) await policy('free');
      expect(await policy('free')).toEqual({ kind: 'refused', q: 10, w: 1 });
    }
    expect(keyed.hasTiers).toBe(true);
    expect(keyed.limitsOf('pro')).toEqual({ ratePerSec: 1, burst: 60 });
    expect(keyed.limitsOf('anyone')).toEqual({ ratePerSec: 10, burst: 10 });
    expect(store.limitsOf('pro')).toEqual({ ratePerSec: 1, burst: 60 });
    const plain = createLimiter({ ratePerSec: 5, burst: 20, clock });
    expect(plain.hasTiers).toBe(false);
    expect(plain.limitsOf('pro')).toEqual({ ratePerSec: 5, burst: 20 });
  });

  it('answers 503 when the shedder refuses, with a jittered Retry-After from the injected source', () => {
    const shedder = { admit: () => denyAll };
    const lo = createGuard({ shedder, random: () => 0 });
    const hi = createGuard({ shedder, random: () => 0.99, retryAfterJitter: 1 });
    const a = refused(lo.check(req(), res()));
    const b = refused(hi.check(req(), res()));
    expect([a.status, b.status]).toEqual([503, 503]);
    expect(a.headers['retry-after']).toBe('3'); // ceil(2.5 s)
    expect(b.headers['retry-after']).toBe('6'); // ceil(3 · 1.99)
    expect(JSON.parse(a.body).type).toBe(
      'https://iana.org/assignments/http-problem-types#temporary-reduced-capacity',
    );
    expect(a.headers).not.toHaveProperty('ratelimit'); // no key quota to describe
  });

  it('is all-or-nothing: a shed request does not spend the key quota', () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(0);
    const limiter = createLimiter({ ratePerSec: 1, burst: 2, clock });
    const shedder = new Shedder({ factor, ratePerSec: 100, clock });
    const g = createGuard({ limiter, shedder, turnBudgetMs: false });
    for (let i = 0; i < 5; i++) {
      const f = refused(g.check(req(), res()));
      expect(f.status).toBe(503);
      // The key was charged, then refunded: it still has its 2 tokens, and the header says so.
      expect(parseList(f.headers.ratelimit!)[0]!.params.r).toBe(2);
    }
    factor.set(1);
    clock.advance(100); // the shedder's bucket refills (the key's was full and stays at 2)
    expect(sync(g.check(req(), res())).kind).toBe('pass');
    expect(sync(g.check(req(), res())).kind).toBe('pass');
    expect(refused(g.check(req(), res())).status).toBe(429);
  });

  it('a key-limiter shed (its own factor cut) is a 503, not a 429', () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 10, burst: 10, clock, factor: new ManualFactor(0) });
    expect(refused(createGuard({ limiter }).check(req(), res())).status).toBe(503);
  });

  it('bypasses listed paths on segment boundaries without counting them, and serves the status path', () => {
    const g = createGuard({
      shedder: { admit: () => denyAll },
      bypass: ['/health', '/metrics/'],
      statusPath: '/__spillway',
      governor: { snapshot: () => ({ factor: 0.4, dominant: 'cpu' }) },
    });
    expect(sync(g.check(req('/health'), res())).kind).toBe('pass');
    expect(sync(g.check(req('/health/live?x=1'), res())).kind).toBe('pass');
    expect(sync(g.check(req('/metrics/'), res())).kind).toBe('pass');
    expect(sync(g.check(req('/healthz'), res())).kind).toBe('refused');
    expect(g.inFlight).toBe(0);
    expect(sync(g.check(req('/__spillway'), res())).kind).toBe('status');
    expect(g.status()).toEqual({ factor: 0.4, dominant: 'cpu', inFlight: 0, queued: 0 });
    const h = createGuard({
      shedder: { admit: () => denyAll },
      bypass: (r) => r.headers['x-internal'] === '1',
    });
    expect(sync(h.check(req('/', { headers: { 'x-internal': '1' } }), res())).kind).toBe('pass');
  });

  it('matches routes by method and path prefix (first wins), each with its own limiter and costs', () => {
    const clock = new ManualClock();
    const upload = createLimiter({ ratePerSec: 1, burst: 1, clock });
    const api = createLimiter({ ratePerSec: 1, burst: 100, clock });
    const seen: Array<[string, number, Priority]> = [];
    const spy = {
      take: (key: string, o: { cost: number; priority: Priority }) => {
        seen.push([key, o.cost, o.priority]);
        return api.take(key, o);
      },
    };
    const g = createGuard({
      limiter: spy,
      routes: [
        { method: ['post', 'PUT'], path: '/api/upload', limiter: upload, policyName: 'upload' },
        { path: '/api/batch', priority: 'sheddable', cost: 5 },
        { path: '/admin', limiter: null },
        { match: (r) => r.headers['x-tier'] === 'gold', priority: (r) => (r.method === 'GET' ? 1 : 0.5) },
      ],
    });
    expect(sync(g.check(req('/api/upload', { method: 'POST' }), res())).kind).toBe('pass');
    const f = refused(g.check(req('/api/upload/x', { method: 'PUT' }), res()));
    expect(f.policyName).toBe('upload');
    expect(parseList(f.headers.ratelimit!)[0]!.value).toBe('upload');
    expect(seen).toEqual([]);
    g.check(req('/api/upload', { method: 'GET' }), res()); // method does not match: default limiter
    g.check(req('/api/uploadx', { method: 'POST' }), res()); // not on a segment boundary
    g.check(req('/api/batch/1'), res());
    g.check(req('/', { headers: { 'x-tier': 'gold' } }), res());
    expect(seen).toEqual([
      ['198.51.100.1', 1, 'normal'],
      ['198.51.100.1', 1, 'normal'],
      ['198.51.100.1', 5, 'sheddable'],
      ['198.51.100.1', 1, 1],
    ]);
    for (let i = 0; i < 5; i++) expect(sync(g.check(req('/admin'), res())).kind).toBe('pass');
    expect(seen).toHaveLength(4);
  });

  it('keys by socket address by default, and by a header only when named', () => {
    const keys: string[] = [];
    const limiter = {
      take: (key: string) => {
        keys.push(key);
        return { ...denyAll, allowed: true, reason: 'ok' as const, limit: 10, remaining: 9 };
      },
    };
    const headers = { 'x-forwarded-for': '6.6.6.6', 'x-user-id': 'alice', 'x-api-key': 'k1' };
    createGuard({ limiter }).check(req('/', { headers, ip: '::ffff:10.0.0.1' }), res());
    createGuard({ limiter, trustProxy: 'uniquelocal' }).check(req('/', { headers, ip: '10.0.0.1' }), res());
    createGuard({ limiter, keyHeader: 'X-Api-Key' }).check(req('/', { headers }), res());
    createGuard({ limiter, keyHeader: 'x-api-key' }).check(req('/'), res());
    createGuard({ limiter, key: (r) => (r.url === '/u' ? 'user:1' : undefined) }).check(req('/u'), res());
    createGuard({ limiter, key: () => undefined }).check(req('/', { ip: '2001:db8:1:2:3::1' }), res());
    expect(keys).toEqual([
      '10.0.0.1',
      '6.6.6.6',
      'x-api-key:k1',
      '198.51.100.1',
      'user:1',
      '2001:db8:1::/56',
    ]);
  });

  it('releases each admitted request exactly once, on finish or close', () => {
    const g = createGuard({});
    const a = res();
    const b = res();
    g.check(req(), a);
    g.check(req(), b);
    expect(g.inFlight).toBe(2);
    a.emit('finish');
    a.emit('close');
    expect(g.inFlight).toBe(1);
    b.emit('close');
    b.emit('finish');
    b.emit('close');
    expect(g.inFlight).toBe(0);
  });

  it('sets no RateLimit fields on admitted responses when rateLimitHeaders is refused or none', () => {
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock: new ManualClock() });
    const r = res();
    const g = createGuard({ limiter, rateLimitHeaders: 'refused' });
    g.check(req(), r);
    expect(r.headers).toEqual({});
    expect(refused(g.check(req(), res())).headers).toHaveProperty('ratelimit');
    const n = createGuard({ limiter: createLimiter({ ratePerSec: 1, burst: 1 }), rateLimitHeaders: 'none' });
    n.check(req(), res());
    expect(refused(n.check(req(), res())).headers).not.toHaveProperty('ratelimit');
  });

  it('attach() wires the governor and shedder after construction, except on routes with their own', () => {
    const g = createGuard({
      routes: [
        { path: '/own', shedder: null },
        { path: '/inherit', cost: 2 },
      ],
    });
    const [sig] = g.signals({ inFlight: { limit: 10 } });
    expect(sig!.name).toBe('http-in-flight');
    g.attach({ shedder: { admit: () => denyAll }, governor: { snapshot: () => ({ factor: 0.1 }) } });
    expect(refused(g.check(req('/'), res())).status).toBe(503);
    expect(refused(g.check(req('/inherit'), res())).status).toBe(503);
    expect(sync(g.check(req('/own'), res())).kind).toBe('pass');
    expect(g.status()).toEqual({ factor: 0.1, inFlight: 1, queued: 0 });
    expect(() => g.attach({ shedder: {} as never })).toThrow(/shedder/);
  });

  it('setRoutes() replaces the routes while serving: limiters keep their state, a bad route changes nothing', () => {
    const clock = new ManualClock();
    const perUser = createLimiter({ ratePerSec: 1, burst: 3, clock });
    const exports = createLimiter({ ratePerSec: 1, burst: 1, clock });
    const g = createGuard({ limiter: perUser, routes: [{ path: '/health', bypass: true }] });
    // Two of alice's three tokens spent under the first routes.
    expect(sync(g.check(req('/a', { ip: '10.0.0.1' }), res())).kind).toBe('pass');
    expect(sync(g.check(req('/a', { ip: '10.0.0.1' }), res())).kind).toBe('pass');
    g.setRoutes([
      { method: 'POST', path: '/export', limiter: exports, cost: 1, policyName: 'export' },
      { path: '/cheap', cost: 2 },
    ]);
    // /health is no longer bypassed: it counts against perUser, whose bucket kept its state (1 left).
    expect(sync(g.check(req('/health', { ip: '10.0.0.1' }), res())).kind).toBe('pass');
    expect(refused(g.check(req('/health', { ip: '10.0.0.1' }), res())).status).toBe(429);
    // The new route's own limiter and cost.
    expect(sync(g.check(req('/export', { method: 'POST', ip: '10.0.0.2' }), res())).kind).toBe('pass');
    const f = refused(g.check(req('/export', { method: 'POST', ip: '10.0.0.2' }), res()));
    expect(f.policyName).toBe('export');
    expect(sync(g.check(req('/cheap', { ip: '10.0.0.3' }), res())).kind).toBe('pass');
    expect(refused(g.check(req('/cheap', { ip: '10.0.0.3' }), res())).status).toBe(429); // cost 2 of 3
    // A bad route: a ConfigError naming it, and the routes in force stay.
    try {
      g.setRoutes([{ path: '/ok' }, { path: 'no-slash', cost: 1 }]);
      expect.unreachable('no error');
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
      expect((err as { option: string }).option).toBe('routes[1].path');
    }
    expect(() => g.setRoutes([{ cost: -1 }])).toThrow(/routes\[0\]\.cost/);
    expect(() => g.setRoutes('x' as never)).toThrow(/routes/);
    expect(refused(g.check(req('/export', { method: 'POST', ip: '10.0.0.2' }), res())).policyName).toBe(
      'export',
    );
    // Back to none: every request takes the guard's defaults.
    g.setRoutes([]);
    // A guard that started with nothing to match on a path matches the prefixes it is given later.
    const bare = createGuard({ limiter: null });
    bare.setRoutes([{ path: '/export', limiter: exports }]);
    expect(refused(bare.check(req('/export/x', { ip: '10.0.0.2' }), res())).status).toBe(429);
    expect(sync(bare.check(req('/other', { ip: '10.0.0.2' }), res())).kind).toBe('pass');
    expect(refused(g.check(req('/export', { method: 'POST', ip: '10.0.0.1' }), res())).policyName).toBe(
      'default',
    );
  });

  it('setRoutes() lets a request admitted under the old routes release its own slot, and closes their concurrency limiter once idle', async () => {
    const clock = new ManualClock();
    const close = vi.spyOn(ConcurrencyLimiter.prototype, 'close'); // calls through
    const g = createGuard({ routes: [{ path: '/db', concurrency: { limit: 1, maxWaitMs: 1000, clock } }] });
    const r1 = res();
    expect(sync(g.check(req('/db'), r1)).kind).toBe('pass');
    const old = g.status(); // no guard-wide limiter
    expect(old).toEqual({ inFlight: 1, queued: 0 });
    const r2 = res();
    const waiting = g.check(req('/db'), r2);
    expect(waiting).toBeInstanceOf(Promise);
    g.setRoutes([{ path: '/db', concurrency: { limit: 5, clock } }]);
    // The new route's limiter admits at once; the old one still holds r1 and its waiter.
    const r3 = res();
    expect(sync(g.check(req('/db'), r3)).kind).toBe('pass');
    r1.emit('close'); // r1 releases the old limiter's slot: its waiter goes in
    expect((await waiting).kind).toBe('pass');
    expect(close).not.toHaveBeenCalled(); // r2 still holds the old limiter
    r2.emit('close');
    expect(close).toHaveBeenCalledTimes(1); // the old limiter, idle, is closed
    r3.emit('close');
    expect(g.inFlight).toBe(0);
    g.close();
    expect(close).toHaveBeenCalledTimes(2); // the new one closes with the guard
    close.mockRestore();
  });

  it('decides at one instant: every stage reads the same system time', () => {
    // Each stage spins until the real clock has moved on, so a second read of it would differ.
    const seen: number[] = [];
    const read = (): void => {
      const t = systemClock.now();
      seen.push(t);
      while (performance.now() <= t) {}
    };
    const admitAll: Decision = {
      allowed: true,
      reason: 'ok',
      remaining: 1,
      limit: 2,
      retryAfterMs: 0,
      resetMs: 0,
      factor: 1,
    };
    const decide = (): Decision => {
      read();
      return admitAll;
    };
    const limiter = { take: decide, peek: decide };
    const shedder = { admit: decide };
    const guard = createGuard({ limiter, shedder, turnBudgetMs: 1e6, rateLimitHeaders: 'none' });
    expect(sync(guard.check(req(), res())).kind).toBe('pass');
    expect(seen).toHaveLength(3);
    expect(new Set(seen).size).toBe(1);
    // Outside the decision the clock runs again.
    expect(systemClock.now()).toBeGreaterThan(seen[0]!);
  });

  it('takes a TurnBudget of your own as turnBudgetMs, and its options decide', () => {
    // Two turns over a 10 ms budget make the overload standing; the third turn then runs
    // `standingShare` of it: 10 ms with 1, 8 ms with the default 0.8.
    const thirdTurnAt9ms = (standingShare: number | undefined) => {
      const clock = new ManualClock();
      const ends: Array<() => void> = [];
      const budget = new TurnBudget({
        budgetMs: 10,
        clock,
        refuseEarly: false,
        ...(standingShare === undefined ? {} : { standingShare }),
        defer: (fn) => ends.push(fn),
      });
      const guard = createGuard({ shedder: new Shedder({ factor: 1 }), turnBudgetMs: budget });
      expect(guard.turnBudget).toBe(budget);
      for (let turn = 0; turn < 2; turn++) {
        expect(sync(guard.check(req(), res())).kind).toBe('pass');
        clock.advance(11);
        expect(refused(guard.check(req(), res())).status).toBe(503);
        for (const fn of ends.splice(0)) fn();
      }
      expect(sync(guard.check(req(), res())).kind).toBe('pass');
      clock.advance(9);
      return sync(guard.check(req(), res())).kind;
    };
    expect(thirdTurnAt9ms(1)).toBe('pass');
    expect(thirdTurnAt9ms(undefined)).toBe('refused');
  });

  it('offers its counts as queue-depth signals', () => {
    const g = createGuard({});
    const [inFlight, queued] = g.signals({ inFlight: { target: 1, limit: 3 }, queued: { limit: 10 } });
    expect([inFlight!.name, queued!.name]).toEqual(['http-in-flight', 'http-queued']);
    g.check(req(), res());
    g.check(req(), res());
    expect(inFlight!.sample(0)).toBe(2);
    expect(queued!.sample(0)).toBe(0);
    expect(() => g.signals({})).toThrow(/signals/);
  });
});

describe('HttpGuard queueing mode (ManualClock)', () => {
  function setup() {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 10, burst: 1, clock });
    const g = createGuard({ limiter, maxWaitMs: 250 });
    return { clock, g };
  }

  it('waits for a token, counted as queued, then passes', async () => {
    const { clock, g } = setup();
    expect(await g.check(req(), res())).toEqual({ kind: 'pass' });
    const waiting = g.check(req(), res());
    expect(waiting).toBeInstanceOf(Promise);
    expect(g.queued).toBe(1);
    clock.advance(100);
    expect(await waiting).toEqual({ kind: 'pass' });
    expect(g.queued).toBe(0);
    expect(g.inFlight).toBe(2);
  });

  it('refuses at once a request whose wait would exceed maxWaitMs', async () => {
    const { g } = setup();
    await g.check(req(), res());
    const waits = [g.check(req(), res()), g.check(req(), res())];
    const third = await g.check(req(), res()); // would wait 300 ms > 250
    expect(third.kind).toBe('refused');
    expect(waits).toHaveLength(2);
    expect(g.queued).toBe(2);
  });

  it('gives up the wait when the client disconnects', async () => {
    const { clock, g } = setup();
    await g.check(req(), res());
    const r = res();
    const waiting = g.check(req(), r);
    r.destroyed = true;
    r.emit('close');
    expect(await waiting).toEqual({ kind: 'gone' });
    expect(g.queued).toBe(0);
    expect(g.inFlight).toBe(1);
    // the abandoned reservation was refunded: the next request waits only its own 100 ms
    const next = g.check(req(), res());
    clock.advance(100);
    expect((await next).kind).toBe('pass');
  });

  it('close() refuses every waiting request with 503', async () => {
    const { g } = setup();
    await g.check(req(), res());
    const waiting = g.check(req(), res());
    g.close();
    const o = await waiting;
    expect(o.kind === 'refused' && o.refusal.status).toBe(503);
    expect(g.queued).toBe(0);
    expect(g.closed).toBe(true);
  });
});

describe('HttpGuard options', () => {
  const bad: Array<[string, Record<string, unknown>]> = [
    ['HttpGuard.nope', { nope: 1 }],
    ['trustProxy', { trustProxy: ['300.0.0.1'] }],
    ['policyName', { policyName: 'ünïcode' }],
    ['statusPath', { statusPath: 'status' }],
    ['retryAfterJitter', { retryAfterJitter: 2 }],
    ['maxRetryAfterSec', { maxRetryAfterSec: 0 }],
    ['maxWaitMs', { maxWaitMs: -1 }],
    ['rateLimitHeaders', { rateLimitHeaders: 'some' }],
    ['limiter', { limiter: {} }],
    ['shedder', { shedder: { take: () => denyAll } }],
    ['keyHeader', { keyHeader: 'x api key' }],
    ['routes[0].path', { routes: [{ path: 'api' }] }],
    ['routes[0].colour', { routes: [{ colour: 'red' }] }],
    ['priority', { priority: 'urgent' }],
    ['ipv6Subnet', { ipv6Subnet: 129 }],
    ['bypass[0]', { bypass: ['health'] }],
  ];
  it.each(bad)('rejects a bad %s with a ConfigError naming it', (name, options) => {
    let guard: HttpGuard | undefined;
    try {
      guard = createGuard(options as never);
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message).toContain(`\`${name}\``);
    }
    expect(guard).toBeUndefined();
  });
});

describe('pathHasPrefix', () => {
  it('matches on segment boundaries', () => {
    expect(pathHasPrefix('/api', '/api')).toBe(true);
    expect(pathHasPrefix('/api/x', '/api')).toBe(true);
    expect(pathHasPrefix('/apix', '/api')).toBe(false);
    expect(pathHasPrefix('/anything', '/')).toBe(true);
    expect(pathHasPrefix('/api/x', '/api/')).toBe(true);
    expect(pathHasPrefix('/api', '/api/')).toBe(false);
  });
});
