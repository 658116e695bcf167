// Each protection mode of the live server starts, answers, and counts what it answered.
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { burn, LIVE_MODES, startServer } from '../../simulations/src/live/server.js';

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

describe('startServer', () => {
  it.each(LIVE_MODES)('%s: answers /warm at once and / after burning the CPU time', async (mode) => {
    const server = await startServer({ mode, cpuMs: 1, governor: { warmupMs: 0 } });
    try {
      expect(await get(server.port, '/warm')).toBe(204);
      for (let i = 0; i < 5; i++) expect(await get(server.port, '/')).toBe(200);
      // Slices are counted when the response finishes.
      await new Promise((r) => setTimeout(r, 20));
      const stats = server.stats();
      const ok = Object.values(stats.okSlices).reduce((a, b) => a + b, 0);
      expect(ok).toBe(5);
      expect(stats.shed).toBe(0);
    } finally {
      await server.close();
    }
  });

  it.each(LIVE_MODES)('%s: a custom async work is awaited before the 200, and a failed one is a 500', async (mode) => {
    let pending: (() => void)[] = [];
    let fail = false;
    const work = () =>
      new Promise<void>((resolve, reject) => {
        pending.push(fail ? () => reject(new Error('downstream failed')) : resolve);
      });
    const server = await startServer({ mode, work, governor: { warmupMs: 0 } });
    try {
      let answered: number | undefined;
      const first = get(server.port, '/').then((s) => {
        answered = s;
        return s;
      });
      while (pending.length === 0) await new Promise((r) => setTimeout(r, 1));
      await new Promise((r) => setTimeout(r, 20));
      expect(answered).toBeUndefined(); // still waiting for its work
      for (const f of pending) f();
      pending = [];
      expect(await first).toBe(200);
      fail = true;
      const second = get(server.port, '/');
      while (pending.length === 0) await new Promise((r) => setTimeout(r, 1));
      for (const f of pending) f();
      expect(await second).toBe(500);
    } finally {
      await server.close();
    }
  });

  it('refuses a work that is not a function', async () => {
    await expect(startServer({ mode: 'none', work: 5 as never })).rejects.toThrow(/`work`/);
  });

  it('rejects an unknown mode', async () => {
    await expect(startServer({ mode: 'fast' as never })).rejects.toThrow(/mode/);
  });

  it('burns at least the asked CPU time', () => {
    const t = performance.now();
    burn(5);
    expect(performance.now() - t).toBeGreaterThanOrEqual(5);
  });
});
