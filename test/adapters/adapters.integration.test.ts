/**
 * The three entry points against real servers on 127.0.0.1, port 0, with real HTTP clients
 * (fetch and node:http). One table of cases, run against node:http, Express 5 and Fastify 5.
 */
import { once } from 'node:events';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { HttpGuard, HttpGuardOptions } from '../../src/adapters/core.js';
import { createMiddleware } from '../../src/adapters/express.js';
import spillway from '../../src/adapters/fastify.js';
import { protect } from '../../src/adapters/http.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';
import { parseList } from './structured-fields.js';

interface Running {
  url: string;
  guard: HttpGuard;
  close(): Promise<void>;
  /** Requests that reached the application handler. */
  handled: () => number;
}

/** Routes every app has: /hello (200), /throw (handler throws), /hang (never answers), /body (echo length). */
type Start = (options: HttpGuardOptions) => Promise<Running>;

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

const startHttp: Start = async (options) => {
  let handled = 0;
  const listener = protect(
    (req: IncomingMessage, res: ServerResponse) => {
      handled++;
      if (req.url === '/throw') throw new Error('boom');
      if (req.url === '/hang') return;
      res.end('hello');
    },
    { ...options, onError: (_err, _req, res) => res.writeHead(500).end('failed') },
  );
  const server = createServer(listener);
  const url = await listen(server);
  return { url, guard: listener.guard, close: () => closeServer(server), handled: () => handled };
};

const startExpress: Start = async (options) => {
  let handled = 0;
  const app = express();
  app.set('env', 'test'); // finalhandler stays quiet about the thrown error
  const mw = createMiddleware(options);
  app.use(mw);
  app.use((_req, _res, next) => {
    handled++;
    next();
  });
  app.get('/hello', (_req, res) => {
    res.send('hello');
  });
  app.get('/throw', () => {
    throw new Error('boom');
  });
  app.get('/hang', () => {});
  const server = createServer(app);
  const url = await listen(server);
  return { url, guard: mw.guard, close: () => closeServer(server), handled: () => handled };
};

const startFastify: Start = async (options) => {
  let handled = 0;
  const app = Fastify({ logger: false });
  await app.register(spillway, options);
  app.addHook('preHandler', async () => {
    handled++;
  });
  app.get('/hello', async () => 'hello');
  app.get('/throw', async () => {
    throw new Error('boom');
  });
  app.get('/hang', () => new Promise(() => {}));
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    guard: app.spillway,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
    handled: () => handled,
  };
};

/** Polls `cond` every 10 ms, up to `limitMs`: a bounded wait, not a fixed sleep. */
async function until(cond: () => boolean, limitMs = 3000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function retryAfter(res: Response): number {
  const v = res.headers.get('retry-after');
  expect(v).toMatch(/^[1-9]\d*$/);
  return Number(v);
}

/** A GET with a chosen X-Forwarded-For, through node:http (fetch's agent pools differently). */
function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const r = httpRequest(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

const frameworks: Array<[string, Start]> = [
  ['node:http', startHttp],
  ['Express 5', startExpress],
  ['Fastify 5', startFastify],
];

describe.each(frameworks)('%s', (_name, start) => {
  let running: Running | undefined;
  const run = async (options: HttpGuardOptions) => {
    running = await start(options);
    return running;
  };
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  it('admits with RateLimit fields, then answers 429 with Retry-After and a problem body', async () => {
    const { url } = await run({ limiter: createLimiter({ ratePerSec: 0.5, burst: 2 }), windowSec: 4 });
    const ok = await fetch(`${url}/hello`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('hello');
    expect(parseList(ok.headers.get('ratelimit-policy')!)).toEqual([
      { value: 'default', params: { q: 2, w: 4 } },
    ]);
    expect(parseList(ok.headers.get('ratelimit')!)).toEqual([{ value: 'default', params: { r: 1, t: 2 } }]);
    await fetch(`${url}/hello`).then((r) => r.arrayBuffer());
    const no = await fetch(`${url}/hello`);
    expect(no.status).toBe(429);
    expect(no.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(no.headers.get('connection')).not.toBe('close');
    const sec = retryAfter(no);
    expect(sec).toBe(2); // one token at 0.5/s: 2 s, exact (no jitter on 429)
    const [rl] = parseList(no.headers.get('ratelimit')!);
    expect(rl!.params.r).toBe(0);
    expect(rl!.params.t).toBeGreaterThanOrEqual(1);
    expect(await no.json()).toEqual({
      type: 'https://iana.org/assignments/http-problem-types#quota-exceeded',
      title: 'Quota exceeded',
      status: 429,
      detail: 'Too many requests for this client; retry in 2 s.',
      retryAfter: 2,
      'violated-policies': ['default'],
    });
  });

  it('keeps the connection alive through a refusal, with an unread request body', async () => {
    const { url } = await run({ limiter: createLimiter({ ratePerSec: 0.01, burst: 1 }) });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const send = (method: string) =>
        new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
          const r = httpRequest(
            `${url}/hello`,
            { method, agent, headers: { 'content-type': 'text/plain' } },
            (res) => {
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: r.reusedSocket }));
            },
          );
          r.on('error', reject);
          r.end(method === 'POST' ? 'x'.repeat(64 * 1024) : undefined);
        });
      expect(await send('GET')).toEqual({ status: 200, reused: false });
      expect(await send('POST')).toEqual({ status: 429, reused: true });
      expect(await send('GET')).toEqual({ status: 429, reused: true });
    } finally {
      agent.destroy();
    }
  });

  it('ignores a spoofed X-Forwarded-For by default', async () => {
    const { url } = await run({ limiter: createLimiter({ ratePerSec: 0.01, burst: 2 }) });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await get(`${url}/hello`, { 'x-forwarded-for': `203.0.113.${i}` })).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it('honours X-Forwarded-For behind a trusted proxy; a burst from one client leaves others served', async () => {
    const { url } = await run({
      limiter: createLimiter({ ratePerSec: 0.01, burst: 2 }),
      trustProxy: 'loopback',
    });
    const burst: number[] = [];
    for (let i = 0; i < 6; i++)
      burst.push((await get(`${url}/hello`, { 'x-forwarded-for': '203.0.113.9' })).status);
    expect(burst).toEqual([200, 200, 429, 429, 429, 429]);
    // the client-chosen leftmost entry is not believed: the proxy-appended address is the key
    expect((await get(`${url}/hello`, { 'x-forwarded-for': '198.51.100.1, 203.0.113.9' })).status).toBe(429);
    const others = await Promise.all(
      ['203.0.113.10', '203.0.113.11', '2001:db8::1'].map((ip) =>
        get(`${url}/hello`, { 'x-forwarded-for': ip }),
      ),
    );
    expect(others.map((r) => r.status)).toEqual([200, 200, 200]);
  });

  it('sheds with 503, a jittered Retry-After, and never reaches the handler', async () => {
    const factor = new ManualFactor(0);
    const draws = [0, 0.99];
    const { url, handled } = await run({
      shedder: new Shedder({ factor, ratePerSec: 1000, shedRetryAfterMs: 2000 }),
      retryAfterJitter: 1,
      random: () => draws.shift() ?? 0.5,
    });
    const a = await fetch(`${url}/hello`);
    const b = await fetch(`${url}/hello`);
    expect([a.status, b.status]).toEqual([503, 503]);
    expect([retryAfter(a), retryAfter(b)]).toEqual([2, 4]); // ceil(2 · (1 + u)) for u = 0, 0.99
    const body = await a.json();
    expect(body).toMatchObject({
      type: 'https://iana.org/assignments/http-problem-types#temporary-reduced-capacity',
      status: 503,
      retryAfter: 2,
    });
    expect(handled()).toBe(0);
  });

  it('releases the slot of a client that disconnects mid-request', async () => {
    const { url, guard } = await run({});
    const ac = new AbortController();
    const pending = fetch(`${url}/hang`, { signal: ac.signal }).catch((e: unknown) => e);
    await until(() => guard.inFlight === 1);
    ac.abort();
    await pending;
    await until(() => guard.inFlight === 0);
  });

  it('releases the slot of a handler that throws', async () => {
    const { url, guard } = await run({});
    const r = await fetch(`${url}/throw`);
    expect(r.status).toBe(500);
    await r.arrayBuffer();
    await until(() => guard.inFlight === 0);
    // and a normal request is counted while in flight, then released
    expect((await fetch(`${url}/hello`)).status).toBe(200);
    await until(() => guard.inFlight === 0);
  });

  it("reports each admitted request's completion to the Shedder exactly once: answered, thrown, or left mid-request", async () => {
    const completed: number[] = [];
    class CountingShedder extends Shedder {
      override complete(cost = 1): void {
        completed.push(cost);
        super.complete(cost);
      }
    }
    const shedder = new CountingShedder({ factor: new ManualFactor(1) });
    const { url, guard } = await run({ shedder, cost: 2, turnBudgetMs: false });
    const ok = await fetch(`${url}/hello`);
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    await until(() => guard.inFlight === 0);
    const thrown = await fetch(`${url}/throw`);
    expect(thrown.status).toBe(500);
    await thrown.arrayBuffer();
    await until(() => guard.inFlight === 0);
    const ac = new AbortController();
    const pending = fetch(`${url}/hang`, { signal: ac.signal }).catch((e: unknown) => e);
    await until(() => guard.inFlight === 1);
    ac.abort();
    await pending;
    await until(() => guard.inFlight === 0);
    expect(completed).toEqual([2, 2, 2]);
    shedder.close();
  });

  it('bypasses /health and serves the status endpoint', async () => {
    const snapshot = {
      factor: 0.25,
      appliedFactor: 0.25,
      state: 'throttling',
      pressure: 0.8,
      dominant: { name: 'cpu' },
    };
    const { url } = await run({
      shedder: new Shedder({ factor: new ManualFactor(0), ratePerSec: 1 }),
      bypass: ['/hello'],
      statusPath: '/__spillway',
      governor: { snapshot: () => snapshot },
    });
    expect((await fetch(`${url}/hello`)).status).toBe(200);
    const s = await fetch(`${url}/__spillway`);
    expect(s.status).toBe(200);
    expect(s.headers.get('cache-control')).toBe('no-store');
    expect(await s.json()).toEqual({ ...snapshot, inFlight: 0, queued: 0 });
  });

  it('queueing mode: a request waits and succeeds; one whose wait would exceed maxWaitMs is refused at once', async () => {
    const { url, guard } = await run({
      limiter: createLimiter({ ratePerSec: 2, burst: 1 }),
      maxWaitMs: 750,
    });
    const order: string[] = [];
    const send = (tag: string) =>
      fetch(`${url}/hello`).then(async (r) => {
        order.push(`${tag}:${r.status}`);
        await r.arrayBuffer();
        return r.status;
      });
    expect(await send('first')).toBe(200);
    const second = send('second'); // waits ~500 ms
    await until(() => guard.queued === 1);
    const third = send('third'); // would wait ~1000 ms > 750: refused at once
    expect(await third).toBe(429);
    expect(order).toEqual(['first:200', 'third:429']);
    expect(await second).toBe(200);
    expect(guard.queued).toBe(0);
  });

  it('queueing mode: a client that disconnects while waiting frees its place', async () => {
    const { url, guard } = await run({
      limiter: createLimiter({ ratePerSec: 1, burst: 1 }),
      maxWaitMs: 5000,
    });
    expect((await fetch(`${url}/hello`)).status).toBe(200);
    const ac = new AbortController();
    const pending = fetch(`${url}/hello`, { signal: ac.signal }).catch((e: unknown) => e);
    await until(() => guard.queued === 1);
    ac.abort();
    await pending;
    await until(() => guard.queued === 0 && guard.inFlight === 0);
  });
});

describe('Fastify plugin lifecycle', () => {
  it('closes with the server: waiting requests are refused and nothing stays counted', async () => {
    const app = Fastify({ logger: false });
    await app.register(spillway, {
      limiter: createLimiter({ ratePerSec: 0.1, burst: 1 }),
      maxWaitMs: 20_000,
    });
    app.get('/hello', async () => 'hello');
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    expect((await fetch(`${url}/hello`)).status).toBe(200);
    const waiting = fetch(`${url}/hello`);
    await until(() => app.spillway.queued === 1);
    const closing = app.close();
    const r = await waiting;
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(r.headers.get('connection')).toBe('close'); // the server is going away: so is the socket
    await r.arrayBuffer();
    await closing;
    expect(app.spillway.closed).toBe(true);
    expect(app.spillway.queued).toBe(0);
    expect(app.spillway.inFlight).toBe(0);
  });

  it('declares its fastify-plugin metadata', () => {
    const meta = (spillway as unknown as Record<symbol, { name: string; fastify: string }>)[
      Symbol.for('plugin-meta')
    ];
    expect(meta).toMatchObject({ name: 'spillway', fastify: '5.x' });
  });
});
