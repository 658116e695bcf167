import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics, metricsHandler } from '../../src/observability/prometheus/index.js';
import { parseExposition, value } from './exposition.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
  server = undefined;
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}/metrics`;
}

describe('metricsHandler on node:http', () => {
  it('serves the registry text with its content type; HEAD has no body; other methods get 405', async () => {
    const registry = new Registry();
    const m = createMetrics({ registry });
    m.observeLimiter({ inFlight: 2, queued: 1 }, { name: 'web' });
    const url = await serve(metricsHandler(registry));
    try {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(registry.contentType);
      const s = parseExposition(await res.text());
      expect(value(s, 'spillway_in_flight', { name: 'web' })).toBe(2);
      expect(value(s, 'spillway_queue_length', { name: 'web' })).toBe(1);
      const head = await fetch(url, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');
      const post = await fetch(url, { method: 'POST' });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET, HEAD');
    } finally {
      m.close();
    }
  });

  it('answers 500 with the reason when a collect fails', async () => {
    const registry = new Registry();
    const m = createMetrics({ registry });
    let gone = false;
    m.observeLimiter({
      get inFlight() {
        if (gone) throw new Error('source is gone');
        return 0;
      },
    });
    gone = true;
    const url = await serve(metricsHandler(registry));
    try {
      const res = await fetch(url);
      expect(res.status).toBe(500);
      expect(await res.text()).toMatch(/source is gone/);
    } finally {
      m.close();
    }
  });
});
