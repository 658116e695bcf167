import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
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

describe('the Express and Fastify recipes in docs/metrics.md', () => {
  it('Express: app.get("/metrics", metricsHandler(registry))', async () => {
    const registry = new Registry();
    const m = createMetrics({ registry });
    m.observeLimiter({ inFlight: 5 }, { name: 'express' });
    const app = express();
    app.get('/metrics', metricsHandler(registry));
    server = createServer(app);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
      expect(res.headers.get('content-type')).toBe(registry.contentType);
      expect(value(parseExposition(await res.text()), 'spillway_in_flight', { name: 'express' })).toBe(5);
    } finally {
      m.close();
    }
  });

  it('Fastify: a route that returns registry.metrics() with its content type', async () => {
    const registry = new Registry();
    const m = createMetrics({ registry });
    m.observeLimiter({ inFlight: 6 }, { name: 'fastify' });
    const app = Fastify();
    app.get('/metrics', async (_req, reply) => {
      reply.header('content-type', registry.contentType);
      return registry.metrics();
    });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`${address}/metrics`);
      expect(res.headers.get('content-type')).toBe(registry.contentType);
      expect(value(parseExposition(await res.text()), 'spillway_in_flight', { name: 'fastify' })).toBe(6);
    } finally {
      m.close();
      await app.close();
    }
  });
});
