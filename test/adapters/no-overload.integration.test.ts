/**
 * What the defaults promise: no shedding without overload. A few clients in a closed loop on a
 * handler well within capacity (about 1 ms of work), through the getting-started wiring (the default
 * governor and a default Shedder), on a real node:http server on 127.0.0.1: not one refusal.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { protect } from '../../src/adapters/http.js';
import { createGovernor } from '../../src/governor/index.js';
import { Shedder } from '../../src/limiters/shedder.js';

const CLIENTS = 4;
const RUN_MS = 2_500;

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // about 1 ms of CPU, as a small handler does
  }
}

function get(port: number, agent: import('node:http').Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/work', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('no refusals without overload (defaults)', () => {
  const governor = createGovernor().start();
  const shedder = new Shedder({ factor: governor });
  const listener = protect(
    (_req, res) => {
      busy(1);
      res.end('ok');
    },
    { shedder },
  );
  const server: Server = createServer(listener);
  afterAll(async () => {
    governor.stop();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it(`${CLIENTS} closed-loop clients for ${RUN_MS} ms on a 1 ms handler see no 429 or 503`, async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    const { Agent } = await import('node:http');
    const statuses = new Map<number, number>();
    const end = performance.now() + RUN_MS;
    const client = async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      while (performance.now() < end) {
        const s = await get(port, agent);
        statuses.set(s, (statuses.get(s) ?? 0) + 1);
      }
      agent.destroy();
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(100);
    expect(Object.fromEntries(statuses)).toEqual({ 200: total });
  }, 30_000);
});
