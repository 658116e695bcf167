/**
 * The guard in its default mode (no maxWaitMs) with a key limiter that decides with a promise, as
 * a limiter over a shared store does: real HTTP on 127.0.0.1 for node:http, Express and Fastify.
 * A limiter whose answers the test releases by hand shows what happens across the await (the
 * client leaves, the guard closes); a StoreLimiter over the MemoryStore shows the responses.
 * Real Redis: test/stores/redis/guard.integration.test.ts.
 */
import { createHook } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpGuard } from '../../src/adapters/http.js';
import type { KeyAdmission } from '../../src/adapters/core.js';
import { ADMITTED_UNLIMITED } from '../../src/limiters/decisions.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';
import type { Decision } from '../../src/limiters/types.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { ADAPTERS, get, type Running, until } from './guarded-apps.js';

/** A key limiter whose takes the test answers by hand; counts what it holds. */
class HandKey implements KeyAdmission {
  readonly ratePerSec = 1;
  readonly burst = 4;
  held = 0;
  refunds = 0;
  readonly pending: ((d: Decision) => void)[] = [];
  take(): Promise<Decision> {
    return new Promise((resolve) =>
      this.pending.push((d) => {
        if (d.allowed) this.held++;
        resolve(d);
      }),
    );
  }
  refund(): void {
    this.refunds++;
    this.held--;
  }
}

const ADMIT: Decision = { ...ADMITTED_UNLIMITED, remaining: 3, limit: 4, resetMs: 1000 };

const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.close();
});

describe.each(ADAPTERS)('%s: a key limiter that decides with a promise, default mode', (_name, start) => {
  it('a client that leaves while its key is being decided: refunded once, never handled', async () => {
    const key = new HandKey();
    const app = await start({ limiter: key, key: () => 'u' });
    running.push(app);
    const closed = app.nextSocketClosed();
    const { req } = get(`${app.url}/`);
    await until(() => key.pending.length === 1);
    req.destroy();
    await closed; // the server saw the client leave while the take was pending
    key.pending[0]!(ADMIT);
    await until(() => key.refunds === 1);
    expect(key.held).toBe(0);
    expect(app.handled()).toBe(0);
    expect(app.guard.inFlight).toBe(0);
    expect(app.guard.queued).toBe(0);

    // The guard still answers the next request once its key is decided.
    const next = get(`${app.url}/`);
    await until(() => key.pending.length === 2);
    key.pending[1]!(ADMIT);
    expect((await next.answered).status).toBe(200);
    expect(key.refunds).toBe(1);
    expect(key.held).toBe(1);
  });

  it('the guard closing while a key is decided answers 503 and gives the charge back', async () => {
    const key = new HandKey();
    const app = await start({ limiter: key, key: () => 'u' });
    running.push(app);
    const { answered } = get(`${app.url}/`);
    await until(() => key.pending.length === 1);
    app.guard.close();
    key.pending[0]!(ADMIT);
    const res = await answered;
    expect(res.status).toBe(503);
    expect(key.refunds).toBe(1);
    expect(key.held).toBe(0);
    expect(app.handled()).toBe(0);
  });

  it('a StoreLimiter passed as it is: 429 with Retry-After and RateLimit; a shed request spends no quota', async () => {
    // No cast: the guard's option types accept a limiter over a store.
    const limiter = createLimiter({ store: new MemoryStore(), ratePerSec: 0.05, burst: 3 });
    const shedder = new Shedder({ factor: new ManualFactor(1), ratePerSec: 1e6 });
    const app = await start({ limiter, shedder, key: (req) => req.headers['x-user'] as string });
    running.push(app);
    const statuses: number[] = [];
    let last: Record<string, unknown> = {};
    for (let i = 0; i < 5; i++) {
      const res = await get(`${app.url}/`, { 'x-user': 'a' }).answered;
      statuses.push(res.status);
      last = res.headers;
      if (i === 0) {
        expect(res.headers['ratelimit-policy']).toBe('"default";q=3;w=60');
        expect(res.headers.ratelimit).toBe('"default";r=2;t=20');
      }
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(Number(last['retry-after'])).toBe(20);
    expect(last.ratelimit).toMatch(/^"default";r=0;t=\d+$/);

    // The shedder refuses after the key admitted: 503, and user b's quota is given back.
    const shedding = new Shedder({ factor: new ManualFactor(0), ratePerSec: 1000 });
    app.guard.attach({ shedder: shedding });
    for (let i = 0; i < 4; i++)
      expect((await get(`${app.url}/`, { 'x-user': 'b' }).answered).status).toBe(503);
    expect((await limiter.peek('b')).remaining).toBeCloseTo(3, 3);
    expect(app.handled()).toBe(3);
  });
});

describe('the synchronous path', () => {
  it('an in-memory limiter and a shedder: guard.check answers without creating a single promise', () => {
    const guard = createHttpGuard({
      limiter: createLimiter({ ratePerSec: 1e9, burst: 1e9 }),
      shedder: new Shedder({ factor: new ManualFactor(1) }),
      key: () => 'k',
    });
    const req = { url: '/x', method: 'GET', headers: {}, socket: { remoteAddress: '127.0.0.1' } };
    const res = () => Object.assign(new EventEmitter(), { destroyed: false, setHeader() {} });
    guard.check(req as unknown as IncomingMessage, res() as unknown as ServerResponse); // warm
    let promises = 0;
    const hook = createHook({
      init(_id, type) {
        if (type === 'PROMISE') promises++;
      },
    }).enable();
    const outcomes: unknown[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        outcomes.push(guard.check(req as unknown as IncomingMessage, res() as unknown as ServerResponse));
      }
    } finally {
      hook.disable();
    }
    expect(promises).toBe(0);
    // The hook does see promises: the same checks over a store-backed limiter create some.
    const remote = createHttpGuard({
      limiter: createLimiter({ store: new MemoryStore(), ratePerSec: 1e9, burst: 1e9 }),
      key: () => 'k',
    });
    hook.enable();
    try {
      remote.check(req as unknown as IncomingMessage, res() as unknown as ServerResponse);
    } finally {
      hook.disable();
    }
    expect(promises).toBeGreaterThan(0);
    // Admitted, or refused by the loop-turn budget when this loaded turn ran long: either at once.
    expect(outcomes.every((o) => !(o instanceof Promise))).toBe(true);
    expect((outcomes[0] as { kind: string }).kind).toBe('pass');
  });
});
