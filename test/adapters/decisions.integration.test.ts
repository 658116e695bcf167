/** The guard publishes each decision on `spillway:decision` (real HTTP on 127.0.0.1). */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { protect } from '../../src/adapters/http.js';
import { isConfigError } from '../../src/errors.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';
import { DECISION_CHANNEL, type DecisionMessage } from '../../src/observability/channels.js';

let server: Server | undefined;
const messages: DecisionMessage[] = [];
const onMessage = (m: unknown): void => {
  messages.push(m as DecisionMessage);
};
afterEach(async () => {
  unsubscribe(DECISION_CHANNEL, onMessage);
  messages.length = 0;
  if (server === undefined) return;
  server.closeAllConnections();
  await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
});

describe('decision messages', () => {
  it('admitted, limited (key) and shed (shedder) decisions, with the guard name and route label', async () => {
    const factor = new ManualFactor(1);
    const limiter = createLimiter({ ratePerSec: 1 / 3600, burst: 1 });
    const shedder = new Shedder({ factor, ratePerSec: 1000 });
    const listener = protect((_req, res) => res.end('ok'), {
      name: 'api',
      limiter,
      shedder,
      turnBudgetMs: false,
      routes: [{ path: '/login', policyName: 'login', limiter: createLimiter({ ratePerSec: 1, burst: 5 }) }],
    });
    server = createServer(listener);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async (path: string) => {
      const r = await fetch(url + path);
      await r.arrayBuffer();
      return r.status;
    };
    expect(await get('/a')).toBe(200); // not subscribed yet: nothing published
    expect(messages).toHaveLength(0);
    subscribe(DECISION_CHANNEL, onMessage);
    expect(await get('/a')).toBe(429);
    expect(await get('/login')).toBe(200);
    factor.set(0);
    expect(await get('/login')).toBe(503);
    expect(messages.map((m) => [m.name, m.outcome, m.stage, m.route])).toEqual([
      ['api', 'limited', 'key', 'default'],
      ['api', 'admitted', 'shedder', 'login'],
      ['api', 'shed', 'shedder', 'login'],
    ]);
    expect(messages[0]!.retryAfterMs).toBeGreaterThan(0);
    expect(messages[1]!.retryAfterMs).toBe(0);
    shedder.close();
  });

  it('the name option is validated', () => {
    expect(() => protect(() => {}, { name: '' })).toThrow(/name/);
    let err: unknown;
    try {
      protect(() => {}, { name: 5 as never });
    } catch (e) {
      err = e;
    }
    expect(isConfigError(err)).toBe(true);
  });
});
