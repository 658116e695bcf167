// The hello-world apps that bench/http-overhead.mjs (served, under autocannon) and
// bench/adapter-cost.mjs (in process) both measure: one builder per framework and mode, so that
// the two benchmarks always compare the same apps.
//
//   http     node:http    bare | same-job | default | refuse | shed
//   express  Express 5    bare | same-job | default | peer (express-rate-limit)
//   fastify  Fastify 5    bare | same-job | default | peer (@fastify/rate-limit)
// where
//   bare      the app alone
//   same-job  Spillway doing what the peer does: a per-client-address limit that never refuses, with
//             its RateLimit headers on every response (no shedder, so no turn budget)
//   default   Spillway as docs/http.md sets it up: a started governor, a per-address limit that
//             follows it, a Shedder on it (so the loop-turn budget is on), and the guard feeding the
//             governor (`governor` given): every stage of the pipeline on every request
//   peer      express-rate-limit / @fastify/rate-limit: their defaults (per-IP keys, in memory, their
//             headers on every response), the limit raised so that it never refuses
//   refuse    a per-address limiter that refuses every request: 429 + problem body
//   shed      a Shedder at factor 0: 503 + jittered Retry-After + problem body
//
// Each builder takes the Spillway build to load (`dist`, a directory; default this checkout's
// dist/), so that adapter-cost can compare builds side by side.
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export const BODY = 'hello world';
export const DEFAULT_DIST = join(here, '..', 'dist');
/** The limiter each framework's users would pick (undefined: none for plain node:http). */
export const PEER = { http: undefined, express: 'express-rate-limit', fastify: '@fastify/rate-limit' };

const distUrl = (dist, file) =>
  pathToFileURL(join(isAbsolute(dist) ? dist : join(process.cwd(), dist), file)).href;

/** Governors started by `default` mode; `stopGovernors()` stops them (an in-process bench's end). */
const governors = [];

export function stopGovernors() {
  for (const g of governors.splice(0)) g.stop();
}

/** Spillway's guard options for a mode. */
export async function guardOptions(mode, dist = DEFAULT_DIST) {
  const { createLimiter } = await import(distUrl(dist, 'limiters/keyed-limiter.js'));
  const { Shedder } = await import(distUrl(dist, 'limiters/shedder.js'));
  const never = { ratePerSec: 1e9, burst: 1e9 };
  switch (mode) {
    case 'same-job':
      return { limiter: createLimiter(never) };
    case 'default': {
      const { createGovernor } = await import(distUrl(dist, 'index.js'));
      const governor = createGovernor().start();
      governors.push(governor);
      return {
        limiter: createLimiter({ ...never, factor: governor }),
        shedder: new Shedder({ factor: governor }),
        governor,
      };
    }
    case 'refuse':
      return { limiter: createLimiter({ ratePerSec: 1e-6, burst: 1 }) };
    case 'shed': {
      const { ManualFactor } = await import(distUrl(dist, 'limiters/factor.js'));
      return { shedder: new Shedder({ factor: new ManualFactor(0), ratePerSec: 1000 }) };
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

/** A node:http request listener. */
export async function httpApp(mode, dist = DEFAULT_DIST) {
  const hello = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
    res.end(BODY);
  };
  if (mode === 'bare') return hello;
  const { protect } = await import(distUrl(dist, 'adapters/http.js'));
  return protect(hello, await guardOptions(mode, dist));
}

/** An Express app (a request listener too), not listening. */
export async function expressApp(mode, dist = DEFAULT_DIST) {
  const { default: express } = await import('express');
  const app = express();
  if (mode === 'peer') {
    const { rateLimit } = await import('express-rate-limit');
    app.use(rateLimit({ limit: 1e9 }));
  } else if (mode !== 'bare') {
    const { createMiddleware } = await import(distUrl(dist, 'adapters/express.js'));
    app.use(createMiddleware(await guardOptions(mode, dist)));
  }
  app.get('/', (_req, res) => {
    res.send(BODY);
  });
  return app;
}

/** A Fastify app with its route, neither ready nor listening; `fastifyOptions` go to `Fastify()`. */
export async function fastifyApp(mode, dist = DEFAULT_DIST, fastifyOptions = {}) {
  const { default: Fastify } = await import('fastify');
  const app = Fastify(fastifyOptions);
  if (mode === 'peer') {
    const { default: rateLimit } = await import('@fastify/rate-limit');
    await app.register(rateLimit, { max: 1e9 });
  } else if (mode !== 'bare') {
    const { spillway } = await import(distUrl(dist, 'adapters/fastify.js'));
    await app.register(spillway, await guardOptions(mode, dist));
  }
  app.get('/', async () => BODY);
  return app;
}

const socket = new Socket();
Object.defineProperty(socket, 'remoteAddress', { value: '127.0.0.1' });

/**
 * One GET / through a node:http-style request handler in process (no socket I/O), for the
 * in-process benchmarks; resolves with the status once the response has ended, after it emitted
 * 'close' (and first 'finish' with `emitFinish`, as a served response does: Fastify's
 * `onResponse` hook listens for it).
 */
export function inProcessCall(handler, emitFinish = false) {
  return new Promise((resolve) => {
    const req = new IncomingMessage(socket);
    req.url = '/';
    req.method = 'GET';
    req.headers = { host: '127.0.0.1' };
    req.push(null);
    const res = new ServerResponse(req);
    res.end = function end(...a) {
      ServerResponse.prototype.end.apply(this, a);
      if (emitFinish) this.emit('finish');
      this.emit('close');
      resolve(this.statusCode);
      return this;
    };
    handler(req, res);
  });
}
