/**
 * The HTTP guards publish the end of each response on `spillway:response` (real HTTP on
 * 127.0.0.1, for node:http, Express and Fastify): status, time from the decision, the decision's
 * outcome; a client that leaves gives `finished: false` and no status; nobody listening, nothing
 * is watched.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { HttpGuardOptions } from '../../src/adapters/core.js';
import { createMiddleware } from '../../src/adapters/express.js';
import spillway from '../../src/adapters/fastify.js';
import { protect } from '../../src/adapters/http.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';
import { RESPONSE_CHANNEL, type ResponseMessage } from '../../src/observability/channels.js';
import { createMetrics } from '../../src/observability/prometheus/index.js';

const SLOW_MS = 40;

/** What every app does: /slow answers after SLOW_MS, /hang never answers, the rest answer at once. */
interface App {
  url: string;
  /** `close` listeners on the response of the last request the handler saw. */
  closeListeners: () => number;
  /** Requests that reached the handler. */
  reached: () => number;
  close: () => Promise<void>;
}
type Start = (options: HttpGuardOptions) => Promise<App>;

function handlerState() {
  let listeners = 0;
  let reached = 0;
  return {
    see(res: ServerResponse) {
      reached++;
      listeners = res.listenerCount('close');
    },
    closeListeners: () => listeners,
    reached: () => reached,
  };
}

const startHttp: Start = async (options) => {
  const h = handlerState();
  const server: Server = createServer(
    protect((req, res) => {
      h.see(res);
      if (req.url === '/hang') return;
      if (req.url === '/slow') setTimeout(() => res.end('slow'), SLOW_MS);
      else res.end('ok');
    }, options),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ...h,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
};

const startExpress: Start = async (options) => {
  const h = handlerState();
  const app = express();
  app.use(createMiddleware(options));
  app.use((_req, res, next) => {
    h.see(res);
    next();
  });
  app.get('/hang', () => {});
  app.get('/slow', (_req, res) => {
    setTimeout(() => res.send('slow'), SLOW_MS);
  });
  app.use((_req, res) => {
    res.send('ok');
  });
  const server = createServer(app);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ...h,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
};

const startFastify: Start = async (options) => {
  const h = handlerState();
  const app = Fastify({ logger: false });
  await app.register(spillway, options);
  app.addHook('preHandler', async (_req, reply) => {
    h.see(reply.raw);
  });
  app.get('/hang', () => new Promise(() => {}));
  app.get('/slow', () => new Promise((r) => setTimeout(() => r('slow'), SLOW_MS)));
  app.get('/*', async () => 'ok');
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    ...h,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
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

const messages: ResponseMessage[] = [];
const onMessage = (m: unknown): void => {
  messages.push(m as ResponseMessage);
};
let app: App | undefined;
afterEach(async () => {
  unsubscribe(RESPONSE_CHANNEL, onMessage);
  messages.length = 0;
  await app?.close();
  app = undefined;
});

describe.each([
  ['node:http', startHttp],
  ['express', startExpress],
  ['fastify', startFastify],
] as const)('response messages (%s)', (_kind, start) => {
  const options = () => {
    const factor = new ManualFactor(0);
    return {
      name: 'api',
      // Two requests per client, then 429 for an hour.
      limiter: createLimiter({ ratePerSec: 1 / 3600, burst: 2 }),
      turnBudgetMs: false as const,
      routes: [
        { path: '/hang', policyName: 'hang', limiter: null },
        { path: '/free', policyName: 'free', limiter: null },
        // Factor 0: the shedder refuses everything on this route.
        { path: '/shed', policyName: 'shed', limiter: null, shedder: new Shedder({ factor, ratePerSec: 1 }) },
      ],
    } satisfies HttpGuardOptions;
  };
  const get = async (path: string) => {
    const r = await fetch(app!.url + path);
    await r.arrayBuffer();
    return r.status;
  };

  it('admitted, limited and shed responses, with status and the time from the decision', async () => {
    app = await start(options());
    subscribe(RESPONSE_CHANNEL, onMessage);
    expect(await get('/slow')).toBe(200);
    expect(await get('/a')).toBe(200);
    expect(await get('/a')).toBe(429);
    expect(await get('/shed')).toBe(503);
    // The message goes out on 'close', which may come just after the client has its answer.
    await until(() => messages.length === 4);
    expect(messages.map((m) => [m.name, m.outcome, m.route, m.status, m.finished, m.priority])).toEqual([
      ['api', 'admitted', 'default', 200, true, 'normal'],
      ['api', 'admitted', 'default', 200, true, 'normal'],
      ['api', 'limited', 'default', 429, true, 'normal'],
      ['api', 'shed', 'shed', 503, true, 'normal'],
    ]);
    // The slow handler answered SLOW_MS after admission (timers never fire early; allow 1 ms of rounding).
    expect(messages[0]!.durationMs).toBeGreaterThanOrEqual(SLOW_MS - 1);
    for (const m of messages) expect(m.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('a client that leaves: finished false, no status', async () => {
    app = await start(options());
    subscribe(RESPONSE_CHANNEL, onMessage);
    const req = request(`${app.url}/hang`);
    req.on('error', () => {});
    req.end();
    await until(() => app!.reached() === 1);
    req.destroy();
    await until(() => messages.length === 1);
    expect(messages[0]).toMatchObject({ name: 'api', outcome: 'admitted', route: 'hang', finished: false });
    expect(messages[0]!.status).toBeUndefined();
  });

  it('nobody subscribed: no message and no listener added to the response', async () => {
    app = await start(options());
    expect(await get('/free')).toBe(200);
    const without = app.closeListeners();
    subscribe(RESPONSE_CHANNEL, onMessage);
    expect(await get('/free')).toBe(200);
    expect(app.closeListeners()).toBe(without + 1);
    await until(() => messages.length === 1);
    unsubscribe(RESPONSE_CHANNEL, onMessage);
    expect(await get('/free')).toBe(200);
    expect(app.closeListeners()).toBe(without);
    expect(messages).toHaveLength(1);
  });
});

describe('decision-to-response metrics from a real guard', () => {
  it('spillway_decision_to_response_seconds counts each response by outcome and route', async () => {
    const registry = new Registry();
    const metrics = createMetrics({ registry });
    try {
      app = await startHttp({
        name: 'api',
        limiter: createLimiter({ ratePerSec: 1 / 3600, burst: 1 }),
        turnBudgetMs: false,
      });
      const get = async (path: string) => (await fetch(app!.url + path)).arrayBuffer();
      await get('/slow');
      await get('/slow');
      await get('/slow');
      // The last message goes out on 'close', which may come just after the client has its answer.
      let text = await registry.metrics();
      for (let i = 0; i < 200 && !/outcome="limited",route="default"\} 2/.test(text); i++) {
        await new Promise((r) => setTimeout(r, 5));
        text = await registry.metrics();
      }
      const count = (outcome: string) =>
        Number(
          new RegExp(
            `spillway_decision_to_response_seconds_count\\{name="api",outcome="${outcome}",route="default"\\} (\\d+)`,
          ).exec(text)?.[1],
        );
      expect(count('admitted')).toBe(1);
      expect(count('limited')).toBe(2);
      // The admitted one took at least SLOW_MS: it is not in the 5 ms bucket.
      expect(text).toMatch(
        /spillway_decision_to_response_seconds_bucket\{name="api",outcome="admitted",route="default",le="0.005"\} 0/,
      );
    } finally {
      metrics.close();
    }
  });
});
