/**
 * The loop-turn budget on a real node:http server: requests that land in one event-loop turn behind
 * a CPU-bound handler are refused once the turn has run its budget, before the governor could see.
 */
import { once } from 'node:events';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { protect } from '../../src/adapters/http.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { Shedder } from '../../src/limiters/shedder.js';

const burn = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

function get(agent: Agent, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('loop-turn budget on node:http', () => {
  it('refuses what a single long turn cannot serve within its budget, and releases every slot', async () => {
    const CONNECTIONS = 60;
    const HANDLER_MS = 5;
    // A shedder at factor 1 that admits everything: any 503 here comes from the turn budget.
    const shedder = new Shedder({ factor: new ManualFactor(1) });
    const listener = protect(
      (req, res) => {
        if (req.url === '/work') burn(HANDLER_MS);
        res.end('ok');
      },
      { shedder, bypass: ['/warm'], turnBudgetMs: 25 },
    );
    const server = createServer(listener);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    cleanup = async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    };
    // Open every connection first (bypassed path), so the burst is not paced by connection setup.
    await Promise.all(Array.from({ length: CONNECTIONS }, () => get(agent, port, '/warm')));
    // Block the loop while the burst is written, so that all of it is ready at the next poll: one turn.
    const burst = Array.from({ length: CONNECTIONS }, () => get(agent, port, '/work'));
    burn(100);
    const codes = await Promise.all(burst);
    const ok = codes.filter((c) => c === 200).length;
    const shed = codes.filter((c) => c === 503).length;
    expect(ok + shed).toBe(CONNECTIONS);
    // 25 ms of budget at 5 ms a request: about 6 admitted in the first turn (more if the burst was
    // split across turns), far from all 60; without the budget every request would be served.
    expect(shed).toBeGreaterThan(CONNECTIONS / 2);
    expect(ok).toBeGreaterThanOrEqual(1);
    expect(listener.guard.turnBudget?.refused).toBe(shed);
    expect(listener.guard.inFlight).toBe(0);
  });

  it('is on by default with a shedder, and off without one or when set to false', () => {
    const shedder = new Shedder({ factor: new ManualFactor(1) });
    const noop = () => {};
    expect(protect(noop, { shedder }).guard.turnBudget?.budgetMs).toBe(25);
    expect(protect(noop, {}).guard.turnBudget).toBeUndefined();
    expect(protect(noop, { shedder, turnBudgetMs: false }).guard.turnBudget).toBeUndefined();
  });
});
