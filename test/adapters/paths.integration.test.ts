/**
 * What the guard exempts or limits must be exactly what the router serves. Every spelling is sent
 * as raw bytes over a socket to real 127.0.0.1 servers, for each adapter: once to the bare router
 * (what does it serve?), once behind the guard (which policy applied?).
 *
 * Policies: `/health` is bypassed (200), `/login` has its own limiter that refuses everything (429),
 * everything else falls to the default shedder that refuses everything (503).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import type { HttpGuardOptions } from '../../src/adapters/core.js';
import { createMiddleware } from '../../src/adapters/express.js';
import spillway from '../../src/adapters/fastify.js';
import { protect } from '../../src/adapters/http.js';
import type { Decision } from '../../src/limiters/types.js';

const refused = (reason: 'limited' | 'shed'): Decision => ({
  allowed: false,
  reason,
  remaining: 0,
  limit: 1,
  retryAfterMs: 1000,
  resetMs: 1000,
  factor: 1,
});

const guardOptions = (): HttpGuardOptions => ({
  shedder: { admit: () => refused('shed') },
  turnBudgetMs: false,
  bypass: ['/health'],
  routes: [{ path: '/login', shedder: null, limiter: { take: () => refused('limited') } }],
});

const SPELLINGS = [
  '/api',
  '/login',
  '/health',
  '/health/../api',
  '/health/%2e%2e/api',
  '/health/%2E%2E/api',
  '/health/./../api',
  '/LOGIN',
  '/Login',
  '/%6cogin',
  '/%6Cogin',
  '//login',
  '/login/',
  '/./login',
  '/x/../login',
  'http://host/login',
  'http://host/health/../login',
];

const HANDLERS = ['api', 'login', 'health'] as const;
const EXPECTED: Record<(typeof HANDLERS)[number], number> = { api: 503, login: 429, health: 200 };

function raw(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      data += c;
    });
    socket.on('end', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (m === null) return reject(new Error(`no response to ${target}: ${JSON.stringify(data)}`));
      resolve({ status: Number(m[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    socket.on('error', reject);
    socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 'latin1');
  });
}

interface Pair {
  bare: number;
  guarded: number;
  close: () => Promise<void>;
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function closeServer(s: Server): Promise<void> {
  s.closeAllConnections();
  return new Promise((r) => s.close(() => r()));
}

/** A URL-based router on node:http: WHATWG URL resolves dot segments and %2e. */
function nodeRouter(req: IncomingMessage, res: ServerResponse): void {
  const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
  const name = HANDLERS.find((h) => path === `/${h}`);
  const body = name ?? 'not found';
  res.writeHead(name === undefined ? 404 : 200, { 'content-length': String(body.length) }).end(body);
}

async function nodePair(): Promise<Pair> {
  const a = createServer(nodeRouter);
  const b = createServer(protect(nodeRouter, guardOptions()));
  const [bare, guarded] = [await listen(a), await listen(b)];
  return { bare, guarded, close: async () => void (await Promise.all([closeServer(a), closeServer(b)])) };
}

function expressApp(guarded: boolean) {
  const app = express();
  if (guarded) app.use(createMiddleware(guardOptions()));
  for (const h of HANDLERS) app.get(`/${h}`, (_req, res) => void res.send(h));
  return app;
}

async function expressPair(): Promise<Pair> {
  const a = createServer(expressApp(false));
  const b = createServer(expressApp(true));
  const [bare, guarded] = [await listen(a), await listen(b)];
  return { bare, guarded, close: async () => void (await Promise.all([closeServer(a), closeServer(b)])) };
}

async function fastifyApp(guarded: boolean): Promise<FastifyInstance> {
  const app = Fastify();
  if (guarded) await app.register(spillway, guardOptions());
  for (const h of HANDLERS) app.get(`/${h}`, async () => h);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app;
}

async function fastifyPair(): Promise<Pair> {
  const a = await fastifyApp(false);
  const b = await fastifyApp(true);
  const port = (f: FastifyInstance) => (f.server.address() as AddressInfo).port;
  return {
    bare: port(a),
    guarded: port(b),
    close: async () => void (await Promise.all([a.close(), b.close()])),
  };
}

const pairs: Pair[] = [];
afterAll(async () => {
  for (const p of pairs) await p.close();
});

describe.each([
  ['node:http', nodePair],
  ['Express', expressPair],
  ['Fastify', fastifyPair],
])('paths on %s', (_name, make) => {
  it('every spelling the router serves gets that route’s policy (no exemption, no looser default)', async () => {
    const pair = await make();
    pairs.push(pair);
    const served: string[] = [];
    for (const target of SPELLINGS) {
      const bare = await raw(pair.bare, target);
      const guarded = await raw(pair.guarded, target);
      const handler = bare.status === 200 ? HANDLERS.find((h) => bare.body === h) : undefined;
      if (handler === undefined) continue;
      served.push(`${target}→${handler}`);
      expect({ target, handler, status: guarded.status }).toEqual({
        target,
        handler,
        status: EXPECTED[handler],
      });
    }
    // The plain spellings at least are served, so the table is not empty.
    expect(served).toEqual(expect.arrayContaining(['/api→api', '/login→login', '/health→health']));
  });
});
