/**
 * Guarded apps for the adapter tests: node:http, Express and Fastify on 127.0.0.1 port 0, each
 * behind a guard built from the given options, answering 200 'ok' on GET /.
 */
import { once } from 'node:events';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import type { HttpGuard, HttpGuardOptions } from '../../src/adapters/core.js';
import { createMiddleware } from '../../src/adapters/express.js';
import spillway from '../../src/adapters/fastify.js';
import { protect } from '../../src/adapters/http.js';

export interface Running {
  url: string;
  guard: HttpGuard;
  /** Requests that reached the application handler. */
  handled: () => number;
  /** Resolves when the server side of the next connection closes. */
  nextSocketClosed: () => Promise<void>;
  close(): Promise<void>;
}

function watchSockets(server: Server): () => Promise<void> {
  const waiting: Socket[] = [];
  server.on('connection', (s: Socket) => waiting.push(s));
  return async () => {
    while (waiting.length === 0) await new Promise((r) => setTimeout(r, 5));
    const s = waiting.shift()!;
    if (!s.destroyed) await once(s, 'close');
  };
}

export async function startHttp(options: HttpGuardOptions): Promise<Running> {
  let handled = 0;
  const listener = protect((_req, res) => {
    handled++;
    res.end('ok');
  }, options);
  const server = createServer(listener);
  const nextSocketClosed = watchSockets(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    guard: listener.guard,
    handled: () => handled,
    nextSocketClosed,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

export async function startExpress(options: HttpGuardOptions): Promise<Running> {
  let handled = 0;
  const app = express();
  const mw = createMiddleware(options);
  app.use(mw);
  app.get('/', (_req, res) => {
    handled++;
    res.send('ok');
  });
  const server = createServer(app);
  const nextSocketClosed = watchSockets(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    guard: mw.guard,
    handled: () => handled,
    nextSocketClosed,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

export async function startFastify(options: HttpGuardOptions): Promise<Running> {
  let handled = 0;
  const app = Fastify({ logger: false });
  await app.register(spillway, options);
  app.get('/', async () => {
    handled++;
    return 'ok';
  });
  const nextSocketClosed = watchSockets(app.server);
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    guard: app.spillway,
    handled: () => handled,
    nextSocketClosed,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

export const ADAPTERS = [
  ['node:http', startHttp],
  ['Express', startExpress],
  ['Fastify', startFastify],
] as const;

export async function until(cond: () => boolean, limitMs = 5000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A GET whose socket the test can destroy before the answer. */
export function get(url: string, headers: Record<string, string> = {}) {
  const r = httpRequest(url, { headers, agent: false });
  const answered = new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
    r.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    r.on('error', reject);
  });
  answered.catch(() => {});
  r.end();
  return { req: r, answered };
}
