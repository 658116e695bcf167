/**
 * The guard's `concurrency` option against real servers on 127.0.0.1 (port 0) with real HTTP
 * clients, for node:http, Express 5 and Fastify 5: in-flight work never exceeds the limit, queued
 * requests are served, a deadline refusal is a 503 with Retry-After, RateLimit fields and its
 * reason, a client that leaves frees its slot (admitted) or its place (queued), and decisions are
 * published. Waits are bounded polls, never fixed sleeps; the handlers' holds are real time.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { HttpGuard, HttpGuardOptions } from '../../src/adapters/core.js';
import { createMiddleware } from '../../src/adapters/express.js';
import spillway from '../../src/adapters/fastify.js';
import { createHttpGuard, protect } from '../../src/adapters/http.js';
import { isConfigError } from '../../src/errors.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/limiter.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { DECISION_CHANNEL, type DecisionMessage } from '../../src/observability/channels.js';
import { parseList } from './structured-fields.js';

/** What the application saw: requests running in its handlers now, and the most at once. */
class Handlers {
  active = 0;
  max = 0;
  served = 0;
  /** Opens the gate that `/gate` requests wait on. */
  open: () => void = () => {};
  #gate: Promise<void> = this.#newGate();

  #newGate(): Promise<void> {
    return new Promise<void>((r) => {
      this.open = () => {
        r();
        this.#gate = this.#newGate();
      };
    });
  }

  /** Runs one request: `/slow?ms=N` holds N ms, `/gate` until `open()`, `/hang` never answers. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.active++;
    this.max = Math.max(this.max, this.active);
    res.once('close', () => this.active--);
    const url = new URL(req.url ?? '/', 'http://x');
    const reply = () => {
      this.served++;
      if (!res.destroyed) res.end('ok');
    };
    if (url.pathname === '/hang') return;
    if (url.pathname === '/gate') {
      void this.#gate.then(reply);
      return;
    }
    setTimeout(reply, Number(url.searchParams.get('ms') ?? 0));
  }
}

interface Running {
  url: string;
  port: number;
  guard: HttpGuard;
  app: Handlers;
  close(): Promise<void>;
}
type Start = (options: HttpGuardOptions) => Promise<Running>;

async function listen(server: ReturnType<typeof createServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function closeServer(server: ReturnType<typeof createServer>): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

const startHttp: Start = async (options) => {
  const app = new Handlers();
  const listener = protect((req, res) => app.handle(req, res), options);
  const server = createServer(listener);
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    guard: listener.guard,
    app,
    close: () => closeServer(server),
  };
};

const startExpress: Start = async (options) => {
  const app = new Handlers();
  const ex = express();
  const mw = createMiddleware(options);
  ex.use(mw);
  ex.get(['/slow', '/gate', '/hang'], (req, res) => app.handle(req, res));
  const server = createServer(ex);
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, port, guard: mw.guard, app, close: () => closeServer(server) };
};

const startFastify: Start = async (options) => {
  const app = new Handlers();
  const f = Fastify({ logger: false });
  await f.register(spillway, options);
  for (const path of ['/slow', '/gate', '/hang']) {
    f.get(path, (request, reply) => {
      reply.hijack();
      app.handle(request.raw, reply.raw);
    });
  }
  await f.listen({ port: 0, host: '127.0.0.1' });
  const port = (f.server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    guard: f.spillway,
    app,
    close: async () => {
      f.server.closeAllConnections();
      await f.close();
    },
  };
};

/** Polls `cond` every 5 ms, up to `limitMs`: a bounded wait, not a fixed sleep. */
async function until(cond: () => boolean, limitMs = 5000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A GET on its own connection (no agent), so that each request is a client of its own. */
function get(url: string): { done: Promise<Answer>; abort: () => void } {
  let abort = () => {};
  const done = new Promise<Answer>((resolve, reject) => {
    const r = httpRequest(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end();
    abort = () => r.destroy();
  });
  return { done, abort };
}

const frameworks: Array<[string, Start]> = [
  ['node:http', startHttp],
  ['Express 5', startExpress],
  ['Fastify 5', startFastify],
];

describe.each(frameworks)('concurrency at the front door: %s', (_name, start) => {
  let running: Running | undefined;
  const run = async (options: HttpGuardOptions) => {
    running = await start(options);
    return running;
  };
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  it('with a key function, a light client takes the place of the heavy one’s newest queued request at a full queue; without, it is refused', async () => {
    const tenant = (req: IncomingMessage) =>
      new URL(req.url ?? '/', 'http://x').searchParams.get('t') ?? undefined;
    for (const keyed of [true, false]) {
      const { url, guard, app } = await run({
        concurrency: { limit: 1, maxQueue: 2, maxWaitMs: 10_000, codel: false },
        ...(keyed ? { key: tenant } : {}),
      });
      const h0 = get(`${url}/gate?t=heavy`);
      await until(() => app.active === 1);
      const h1 = get(`${url}/gate?t=heavy`);
      await until(() => guard.concurrency!.waiting === 1);
      const h2 = get(`${url}/gate?t=heavy`);
      await until(() => guard.concurrency!.waiting === 2);
      const light = get(`${url}/gate?t=light`);
      const refused = await (keyed ? h2 : light).done;
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.body).reason).toBe('queue-full');
      // Serve the rest, one at a time.
      for (let i = 0; i < 3; i++) {
        await until(() => app.active === 1 && app.served === i);
        app.open();
      }
      const answers = await Promise.all([h0, h1, keyed ? light : h2].map((r) => r.done));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
      await until(() => guard.inFlight === 0);
      expect(guard.concurrency!.keysHeld).toBe(0);
      expect(guard.concurrency!.waiting).toBe(0);
      await running!.close();
      running = undefined;
    }
  });

  it('never runs more than the limit at once, and serves every queued request', async () => {
    const { url, guard, app } = await run({ concurrency: { limit: 3, maxWaitMs: 10_000, codel: false } });
    const answers = await Promise.all(Array.from({ length: 15 }, () => get(`${url}/slow?ms=40`).done));
    expect(answers.map((a) => a.status)).toEqual(new Array(15).fill(200));
    expect(app.served).toBe(15);
    expect(app.max).toBe(3); // reached, never exceeded
    await until(() => guard.inFlight === 0);
    expect(guard.concurrency!.inFlight).toBe(0);
    expect(guard.concurrency!.waiting).toBe(0);
    expect(guard.queued).toBe(0);
  });

  it('refuses a request that waited past its deadline with 503, Retry-After, RateLimit fields and the reason', async () => {
    const messages: DecisionMessage[] = [];
    const listener = (m: unknown) => messages.push(m as DecisionMessage);
    subscribe(DECISION_CHANNEL, listener);
    try {
      const { url, guard, app } = await run({
        limiter: createLimiter({ ratePerSec: 100, burst: 100 }),
        concurrency: { limit: 1, maxWaitMs: 60, codel: false },
        name: 'front',
      });
      const first = get(`${url}/gate`);
      await until(() => app.active === 1);
      const started = performance.now();
      const second = await get(`${url}/slow`).done;
      expect(performance.now() - started).toBeGreaterThanOrEqual(55); // it waited its deadline
      expect(second.status).toBe(503);
      expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      const [rl] = parseList(second.headers.ratelimit as string);
      expect(rl!.params.r).toBeGreaterThanOrEqual(98); // the key's quota is not spent by a 503
      expect(second.headers['ratelimit-policy']).toBeDefined();
      const body = JSON.parse(second.body);
      expect(body).toMatchObject({ status: 503, reason: 'deadline' });
      expect(body.retryAfter).toBe(Number(second.headers['retry-after']));
      expect(guard.concurrency!.inFlight).toBe(1);
      app.open();
      expect((await first.done).status).toBe(200);
      await until(() => guard.concurrency!.inFlight === 0 && guard.inFlight === 0);
      const ours = messages.filter((m) => m.name === 'front');
      expect(ours.map((m) => m.outcome)).toEqual(['admitted', 'queued', 'timed_out']);
      expect(ours[2]).toMatchObject({ stage: 'concurrency', reason: 'deadline', limit: 1 });
      expect(ours[2]!.queueWaitMs).toBeGreaterThanOrEqual(55);
      expect(ours[0]).toMatchObject({ stage: 'concurrency', reason: 'ok' });
    } finally {
      unsubscribe(DECISION_CHANNEL, listener);
    }
  });

  it('frees the slot of an admitted request whose client leaves, exactly once', async () => {
    const { url, guard, app } = await run({ concurrency: { limit: 1, maxWaitMs: 10_000, codel: false } });
    const hung = get(`${url}/hang`);
    hung.done.catch(() => {});
    await until(() => app.active === 1);
    const waiting = get(`${url}/slow?ms=5`);
    await until(() => guard.concurrency!.waiting === 1 && guard.queued === 1);
    hung.abort(); // the handler never answers: only the client's disconnect can free the slot
    expect((await waiting.done).status).toBe(200);
    await until(() => guard.concurrency!.inFlight === 0 && guard.inFlight === 0);
    // Released once: a second request runs alone, and the limit still holds.
    const again = await Promise.all([get(`${url}/slow?ms=20`).done, get(`${url}/slow?ms=20`).done]);
    expect(again.map((a) => a.status)).toEqual([200, 200]);
    expect(app.max).toBe(1);
    await until(() => guard.concurrency!.inFlight === 0);
  });

  it('a request admitted before `attach` rebuilds the pipelines still frees its slot', async () => {
    const { url, guard, app } = await run({ concurrency: { limit: 1, maxWaitMs: 10_000, codel: false } });
    const first = get(`${url}/gate`);
    await until(() => app.active === 1);
    const queued = get(`${url}/slow`);
    await until(() => guard.concurrency!.waiting === 1);
    guard.attach({
      shedder: {
        admit: () => ({
          allowed: true,
          reason: 'ok',
          remaining: 1,
          limit: 1,
          retryAfterMs: 0,
          resetMs: 0,
          factor: 1,
        }),
      },
    });
    app.open();
    expect((await first.done).status).toBe(200);
    expect((await queued.done).status).toBe(200);
    await until(() => guard.concurrency!.inFlight === 0 && guard.inFlight === 0);
    expect((await get(`${url}/slow`).done).status).toBe(200);
    await until(() => guard.concurrency!.inFlight === 0);
  });

  it('a client that leaves while queued leaves the queue and takes no slot', async () => {
    const { url, guard, app } = await run({ concurrency: { limit: 1, maxWaitMs: 10_000, codel: false } });
    const first = get(`${url}/gate`);
    await until(() => app.active === 1);
    const queued = get(`${url}/slow`);
    queued.done.catch(() => {});
    await until(() => guard.concurrency!.waiting === 1);
    queued.abort();
    await until(() => guard.concurrency!.waiting === 0 && guard.queued === 0);
    app.open();
    expect((await first.done).status).toBe(200);
    await until(() => guard.concurrency!.inFlight === 0 && guard.inFlight === 0);
    expect(app.served).toBe(1); // the one that left never reached the handler
  });

  it('under a standing queue, CoDel refuses what waited past the target and serves the newest', async () => {
    const { url, guard, app } = await run({ concurrency: { limit: 2, maxWaitMs: 5000 } });
    // 40 requests of 30 ms through 2 slots: 600 ms of work. The queue stands after 100 ms, then the
    // target is max(5 ms, 2 · 30 / 2 ms) = 30 ms of sojourn: the backlog is refused, fast.
    const answers = await Promise.all(Array.from({ length: 40 }, () => get(`${url}/slow?ms=30`).done));
    const ok = answers.filter((a) => a.status === 200).length;
    const refused = answers.filter((a) => a.status === 503);
    expect(ok + refused.length).toBe(40);
    expect(refused.length).toBeGreaterThan(0);
    expect(
      refused.every((a) => ['codel', 'queue-full', 'deadline'].includes(JSON.parse(a.body).reason)),
    ).toBe(true);
    expect(refused.some((a) => JSON.parse(a.body).reason === 'codel')).toBe(true);
    expect(app.max).toBeLessThanOrEqual(2);
    await until(() => guard.concurrency!.inFlight === 0 && guard.concurrency!.waiting === 0);
  });

  it('close() refuses every waiting request with 503 and Connection: close', async () => {
    const { url, guard, app } = await run({ concurrency: { limit: 1, maxWaitMs: 10_000, codel: false } });
    const first = get(`${url}/gate`);
    await until(() => app.active === 1);
    const queued = get(`${url}/slow`);
    await until(() => guard.concurrency!.waiting === 1);
    guard.close();
    const r = await queued.done;
    expect(r.status).toBe(503);
    expect(r.headers.connection).toBe('close');
    app.open();
    expect((await first.done).status).toBe(200);
    await until(() => guard.inFlight === 0);
    expect(guard.concurrency!.closed).toBe(true); // the guard built it, the guard closed it
  });
});

describe('the concurrency option', () => {
  it('is validated: a bad value names the option under `concurrency`', () => {
    const bad: Array<[unknown, string]> = [
      [5, 'concurrency'],
      [{ limit: 0 }, 'concurrency.limit'],
      [{ maxWaitMs: -1 }, 'concurrency.maxWaitMs'],
      [{ limit: 2, adaptive: {} }, 'concurrency.adaptive'],
      [{ wait: 1 }, 'concurrency.wait'],
      [{ acquire: () => {} }, 'concurrency'],
    ];
    for (const [value, option] of bad) {
      let caught: unknown;
      try {
        createHttpGuard({ concurrency: value as never });
      } catch (err) {
        caught = err;
      }
      expect(isConfigError(caught), JSON.stringify(value)).toBe(true);
      expect((caught as { option: string }).option).toBe(option);
      expect((caught as Error).message).toContain(`\`${option}\``);
    }
    let caught: unknown;
    try {
      createHttpGuard({ routes: [{ path: '/a', concurrency: { limit: 1.5 } }] });
    } catch (err) {
      caught = err;
    }
    expect((caught as { option: string }).option).toBe('routes[0].concurrency.limit');
  });

  it('routes share the guard limiter unless they bring their own (or null); a limiter passed in is not closed', () => {
    const shared = new ConcurrencyLimiter({ limit: 4 });
    const guard = createHttpGuard({
      concurrency: shared,
      routes: [
        { path: '/own', concurrency: { limit: 1 } },
        { path: '/free', concurrency: null },
      ],
    });
    expect(guard.concurrency).toBe(shared);
    expect(guard.status()).toMatchObject({ concurrency: { limit: 4, inFlight: 0, waiting: 0 } });
    guard.close();
    expect(shared.closed).toBe(false);
    shared.close();
  });
});
