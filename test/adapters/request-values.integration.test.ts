/**
 * Values computed from a request must never turn into a 500: a bad priority, cost or key falls
 * back to the default, the guard emits `invalidValue`, and a warning is written once per option.
 * Real HTTP on 127.0.0.1.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { protect } from '../../src/adapters/http.js';
import type { InvalidValue } from '../../src/adapters/core.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';

let server: Server | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  if (server === undefined) return;
  server.closeAllConnections();
  await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
});

function header(req: { headers: Record<string, string | string[] | undefined> }, name: string): unknown {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  // A client-chosen JSON value: a number, an object, anything.
  try {
    return JSON.parse(String(v));
  } catch {
    return v;
  }
}

async function start() {
  // A factor below 1 makes both the key limiter and the shedder read the priority.
  const factor = new ManualFactor(0.5);
  const limiter = createLimiter({ ratePerSec: 1000, burst: 1000, factor });
  const shedder = new Shedder({ factor, ratePerSec: 10_000 });
  cleanups.push(() => {
    limiter.close();
    shedder.close();
  });
  const listener = protect((_req, res) => res.end('ok'), {
    limiter,
    shedder,
    priority: (req) => header(req, 'x-priority') as never,
    cost: (req) => header(req, 'x-cost') as never,
    key: (req) => header(req, 'x-key') as never,
  });
  server = createServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, guard: listener.guard };
}

describe('request-derived values (real HTTP)', () => {
  it('a bad priority, cost or key falls back to the default, is reported, and is never a 500', async () => {
    const { url, guard } = await start();
    const events: InvalidValue[] = [];
    guard.on('invalidValue', (e) => events.push(e));
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      if ((w as { code?: string }).code === 'SPILLWAY_INVALID_VALUE') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    cleanups.push(() => process.off('warning', onWarning));

    const sends: Record<string, string>[] = [
      { 'x-priority': 'high' },
      { 'x-priority': '7' },
      { 'x-cost': '"abc"' },
      { 'x-cost': '-1' },
      { 'x-key': '42' },
      { 'x-key': '{"a":1}' },
    ];
    const statuses: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (const headers of sends) {
        const r = await fetch(`${url}/x`, { headers });
        await r.arrayBuffer();
        statuses.push(r.status);
      }
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(guard.invalidValues).toBe(18);
    expect(events).toHaveLength(18);
    expect(events[0]).toEqual({ option: 'priority', value: 'high', used: 'normal' });
    expect(events[2]).toEqual({ option: 'cost', value: 'abc', used: 1 });
    expect(events[4]).toMatchObject({ option: 'key', value: 42 });
    expect(typeof events[4]!.used).toBe('string'); // the client address
    // Warnings are emitted on the next tick; one per option, not one per request.
    await new Promise((r) => setImmediate(r));
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toContain('`priority`');
  });

  it('good values from the request are used, and nothing is reported', async () => {
    const { url, guard } = await start();
    const r = await fetch(`${url}/x`, {
      headers: { 'x-priority': 'critical', 'x-cost': '2', 'x-key': '"u1"' },
    });
    expect(r.status).toBe(200);
    expect(guard.invalidValues).toBe(0);
  });
});
