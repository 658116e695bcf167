// The open-loop generator against tiny real servers on 127.0.0.1 (port 0), in this process.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../simulations/src/live/histogram.js';
import { runLoad } from '../../simulations/src/live/load-generator.js';
import { parseScenario } from '../../simulations/src/scenario.js';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(listener: http.RequestListener): Promise<number> {
  const server = http.createServer(listener);
  server.keepAliveTimeout = 60_000;
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

const traffic = (rate: number, durationSec: number, timeoutMs = 10_000) =>
  parseScenario({
    name: 't',
    durationSec,
    traffic: [{ pattern: 'steady', ratePerSec: rate, arrivals: 'uniform', timeoutMs }],
  }).traffic;

describe('runLoad', () => {
  it('sends the scheduled count on time over pre-opened connections', async () => {
    let connections = 0;
    let measured = 0;
    const seen: number[] = [];
    const port = await serve((req, res) => {
      if (req.url !== '/warm') {
        measured++;
        seen.push(performance.timeOrigin + performance.now());
      }
      res.end('ok');
    });
    servers[0]!.on('connection', () => connections++);
    const result = await runLoad({ port, traffic: traffic(200, 1), durationSec: 1, connections: 32 });
    expect(result.scheduled).toBe(200);
    expect(result.sent).toBe(200);
    expect(measured).toBe(200);
    expect(result.totals.ok).toBe(200);
    expect(result.seconds[0]!.offered).toBe(200);
    // Every connection was opened by the warm-up, none during the run.
    expect(connections).toBe(32);
    // The schedule starts on a whole second, and the last request left about 995 ms after it.
    expect(result.startEpochMs % 1000).toBe(0);
    const span = Math.max(...seen) - result.startEpochMs;
    expect(span).toBeGreaterThan(990 - 5);
    expect(span).toBeLessThan(995 + 250);
    expect(result.maxSendLagMs).toBeLessThan(250);
  });

  it('measures latency from the intended send time, not from when a request could leave', async () => {
    // One connection and a server that takes 100 ms per request, asked for 20 req/s: requests
    // queue in the client; the k-th leaves ~k·100 ms after start but was due at k·50 ms.
    const port = await serve((req, res) => {
      if (req.url === '/warm') return res.end();
      setTimeout(() => res.end('ok'), 100);
    });
    const result = await runLoad({ port, traffic: traffic(20, 1), durationSec: 1, connections: 1 });
    expect(result.totals.ok).toBe(20);
    const h = LatencyHistogram.from(result.latencyOk);
    // Measured from the actual send, every latency would be ~100 ms.
    expect(h.maxMs).toBeGreaterThan(900);
    expect(h.percentile(50)).toBeGreaterThan(400);
  });

  it('counts client timeouts, excludes them from goodput and ends by itself', async () => {
    const port = await serve((req, res) => {
      if (req.url === '/warm') res.end();
      // Measured requests are never answered.
    });
    const started = performance.now();
    const result = await runLoad({ port, traffic: traffic(50, 1, 300), durationSec: 1, connections: 64 });
    expect(result.totals.timeouts).toBe(50);
    expect(result.totals.ok).toBe(0);
    expect(result.seconds.reduce((a, s) => a + s.timeouts, 0)).toBe(50);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('counts 429, 503 and connection errors apart', async () => {
    let n = 0;
    const port = await serve((req, res) => {
      if (req.url === '/warm') return res.end();
      const k = n++ % 4;
      if (k === 0) res.writeHead(429).end();
      else if (k === 1) res.writeHead(503).end();
      else if (k === 2) req.socket.destroy();
      else res.end('ok');
    });
    const result = await runLoad({ port, traffic: traffic(40, 1), durationSec: 1, connections: 8 });
    expect(result.totals).toEqual({ ok: 10, r429: 10, r503: 10, otherStatus: 0, errors: 10, timeouts: 0 });
    expect(result.refusedSlices.reduce((a, b) => a + b, 0)).toBe(20);
  });

  it('counts the outcomes of each source per second of their intended send time', async () => {
    // Two sources over 2 s: "a" 20/s throughout, answered 200 in its first second and 503 in its
    // second; "b" 10/s for the first second only, answered 429 (the `x-source` header says who).
    const port = await serve((req, res) => {
      if (req.url === '/warm') return res.end();
      const source = req.headers['x-source'];
      if (source === 'b') return res.writeHead(429).end();
      res.writeHead(answerA.shift() ?? 200).end();
    });
    const answerA = [...new Array<number>(20).fill(200), ...new Array<number>(20).fill(503)];
    const two = parseScenario({
      name: 't',
      durationSec: 2,
      traffic: [
        { name: 'a', pattern: 'steady', ratePerSec: 20, arrivals: 'uniform' },
        {
          name: 'b',
          pattern: 'step',
          basePerSec: 0,
          peakPerSec: 10,
          stepStartSec: 0,
          stepEndSec: 1,
          arrivals: 'uniform',
        },
      ],
    }).traffic;
    const result = await runLoad({ port, traffic: two, durationSec: 2, connections: 16 });
    const [a, b] = result.bySource;
    expect(a!.name).toBe('a');
    expect(a!.perSecond.scheduled.slice(0, 2)).toEqual([20, 20]);
    expect(a!.perSecond.ok.slice(0, 2)).toEqual([20, 0]);
    expect(a!.perSecond.r503.slice(0, 2)).toEqual([0, 20]);
    expect(b!.perSecond.scheduled.slice(0, 2)).toEqual([10, 0]);
    expect(b!.perSecond.r429.slice(0, 2)).toEqual([10, 0]);
    expect(b!.perSecond.ok.reduce((x, y) => x + y, 0)).toBe(0);
    expect(a!.perSecond.timeouts.reduce((x, y) => x + y, 0)).toBe(0);
  });
});
