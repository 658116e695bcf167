// The pool-bound server of bench/live-pool.mjs, as its own process (forked; options as JSON in
// argv[2]). Its handler spends 0.3 ms of CPU, then holds one of 8 pool slots for 20 ms (capacity
// ~394 req/s): the event loop is never the bottleneck, the pool is. Two backends:
//   fifo   a FIFO async pool (a semaphore) whose slot is held by a 20 ms timer
//   pg     a real node-postgres `pg.Pool` of 8 running `SELECT pg_sleep(0.02)` (PostgreSQL at
//          127.0.0.1:5432, db test; the PG* variables override, as in test/pool/postgres.ts)
//   worker → { type: 'ready', port }
//   parent → { type: 'stop' }   worker → { type: 'stats', stats }, then it exits
// Modes:
//   none                 no protection: every request waits for the pool (FIFO, unbounded)
//   fixed                a fixed concurrency limit of 8 in front of the handler, unbounded FIFO queue
//   spillway-known       the guard's `concurrency: { limit: 8 }` (the pool's size, known)
//   spillway-adaptive    the guard's `concurrency: {}` (limit learned from latency, Vegas)
//   spillway-governed    a started Governor (default signals) given to the guard, which feeds it
//                        (feedGovernor, the default), and the guard's `concurrency: { limit: 8,
//                        factor: governor }`: the limit follows the factor (issue 10's pool-bound step)
//   spillway-pg          (pg backend) no guard; the handler queries through spillway/pool's
//                        `guardPgPool(pool)` (limit = the pool's max, 8) and answers its
//                        PoolOverloadedError with 503 and Retry-After
//   spillway-defaults, toobusy, overload-protection, under-pressure
//                        the live harness's servers (simulations/src/live/server.ts: the guard's
//                        defaults, and each peer set up as its README shows) with this handler
// It exits when its parent goes away.
import http from 'node:http';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createHttpGuard } from 'spillway/http';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const options = JSON.parse(process.argv[2] ?? '{}');
const mode = options.mode ?? 'none';
const backendName = options.backend ?? 'fifo';
const CPU_MS = options.cpuMs ?? 0.3;
const SLOTS = options.slots ?? 8;
const HOLD_MS = options.holdMs ?? 20;
/** The harness's mode for each of its servers used here. */
const HARNESS_MODES = {
  'spillway-defaults': 'spillway',
  toobusy: 'toobusy',
  'overload-protection': 'overload-protection',
  'under-pressure': 'under-pressure',
};

function burn(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // the request's CPU work
  }
}

/** A FIFO async pool (or semaphore): `acquire()` resolves when one of `size` slots is free. */
class FifoPool {
  #free;
  #waiters = [];
  constructor(size) {
    this.#free = size;
  }
  get waiting() {
    return this.#waiters.length;
  }
  acquire() {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  release() {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}

/** The pool behind the handler: `hold()` takes a slot for one unit of work and gives it back. */
async function createBackend(name) {
  if (name === 'fifo') {
    const pool = new FifoPool(SLOTS);
    return {
      pool,
      waiting: () => pool.waiting,
      async hold() {
        await pool.acquire();
        try {
          await new Promise((r) => setTimeout(r, HOLD_MS));
        } finally {
          pool.release();
        }
      },
      close: async () => {},
    };
  }
  if (name === 'pg') {
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({
      host: process.env.PGHOST ?? '127.0.0.1',
      port: Number(process.env.PGPORT ?? 5432),
      database: process.env.PGDATABASE ?? 'test',
      user: process.env.PGUSER ?? 'postgres',
      max: SLOTS,
    });
    const sql = `SELECT pg_sleep(${HOLD_MS / 1000})`;
    // Open every connection before the measured period, as the load generator opens its sockets.
    const clients = await Promise.all(Array.from({ length: SLOTS }, () => pool.connect()));
    for (const c of clients) c.release();
    return {
      pool,
      waiting: () => pool.waitingCount,
      hold: () => pool.query(sql).then(() => undefined),
      close: () => pool.end(),
    };
  }
  throw new Error(`unknown backend ${name} (fifo, pg)`);
}

const backend = await createBackend(backendName);
let maxPoolWaiting = 0;
let handlers = 0;
let maxHandlers = 0;

/** One request's work: 0.3 ms of CPU, then a pool slot for 20 ms. */
async function work(hold = () => backend.hold()) {
  handlers++;
  maxHandlers = Math.max(maxHandlers, handlers);
  try {
    burn(CPU_MS);
    const p = hold();
    maxPoolWaiting = Math.max(maxPoolWaiting, backend.waiting());
    await p;
  } finally {
    handlers--;
  }
}

function ok(res) {
  if (res.destroyed) return;
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('ok');
}

async function handler(_req, res) {
  await work();
  ok(res);
}

function warm(req, res) {
  if (req.url !== '/warm') return false;
  res.writeHead(204);
  res.end();
  return true;
}

/** The handler behind `g`, /warm answered first; the concurrency limit sampled once a second. */
function guardedListener(g) {
  const wrapped = g.wrap(handler);
  setInterval(() => limits.push(g.concurrency.limit), 1000).unref();
  return (req, res) => {
    if (!warm(req, res)) wrapped(req, res);
  };
}

let guard;
let governor;
let guarded;
let listener;
let harness;
const limits = [];
/** The governor's factor every 250 ms (spillway-governed), and the lowest seen. */
const factors = [];
let minFactor = null;
switch (mode) {
  case 'none':
    listener = (req, res) => {
      if (!warm(req, res)) void handler(req, res);
    };
    break;
  case 'fixed': {
    // A plain concurrency limit with an unbounded FIFO queue (p-limit style), released when the
    // response closes.
    const gate = new FifoPool(SLOTS);
    listener = (req, res) => {
      if (warm(req, res)) return;
      void gate.acquire().then(() => {
        res.once('close', () => gate.release());
        if (res.destroyed) return;
        void handler(req, res);
      });
    };
    break;
  }
  case 'spillway-known':
  case 'spillway-adaptive': {
    guard = createHttpGuard({
      concurrency: { ...(mode === 'spillway-known' ? { limit: SLOTS } : {}), ...(options.concurrency ?? {}) },
      bypass: ['/warm'],
    });
    listener = guardedListener(guard);
    break;
  }
  case 'spillway-governed': {
    const { createGovernor } = await import('spillway');
    governor = createGovernor().start();
    guard = createHttpGuard({
      governor,
      concurrency: { limit: SLOTS, factor: governor, ...(options.concurrency ?? {}) },
      bypass: ['/warm'],
    });
    listener = guardedListener(guard);
    const factorSampler = setInterval(() => {
      const f = governor.factor;
      factors.push(Math.round(f * 1000) / 1000);
      minFactor = minFactor === null ? f : Math.min(minFactor, f);
    }, 250);
    factorSampler.unref();
    break;
  }
  case 'spillway-pg': {
    if (backendName !== 'pg') throw new Error('mode spillway-pg needs --backend pg');
    const { guardPgPool, isPoolOverloadedError } = await import('spillway/pool');
    guarded = guardPgPool(backend.pool, options.concurrency ?? {});
    const sql = `SELECT pg_sleep(${HOLD_MS / 1000})`;
    listener = (req, res) => {
      if (warm(req, res)) return;
      work(() => guarded.query(sql)).then(
        () => ok(res),
        (err) => {
          if (res.destroyed) return;
          if (isPoolOverloadedError(err)) {
            res.writeHead(503, { 'retry-after': String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))) });
            res.end();
            return;
          }
          res.writeHead(500);
          res.end();
        },
      );
    };
    const sampler = setInterval(() => limits.push(guarded.limiter.limit), 1000);
    sampler.unref();
    break;
  }
  default: {
    const harnessMode = HARNESS_MODES[mode];
    if (harnessMode === undefined) {
      console.error(`unknown mode ${mode}`);
      process.exit(2);
    }
    const { startServer } = await import(join(root, 'simulations/dist/live/server.js'));
    harness = await startServer({ mode: harnessMode, work: () => work() });
  }
}

let server;
if (harness === undefined) {
  server = http.createServer(listener);
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 0;
}
process.on('disconnect', () => process.exit(0));
const ready = (port) => process.send?.({ type: 'ready', port });
if (server) server.listen(0, '127.0.0.1', () => ready(server.address().port));
else ready(harness.port);

process.on('message', async (msg) => {
  if (msg?.type !== 'stop') return;
  const limiter = guard?.concurrency ?? guarded?.limiter;
  const stats = {
    mode,
    backend: backendName,
    maxHandlers,
    maxPoolWaiting,
    limits,
    ...(governor ? { minFactor, factors } : {}),
    finalLimit: limiter?.limit ?? null,
    snapshot: limiter?.snapshot() ?? null,
  };
  guard?.close();
  governor?.stop();
  guarded?.close();
  if (server) server.closeAllConnections();
  const closing = server ? new Promise((r) => server.close(r)) : harness.close();
  process.send?.({ type: 'stats', stats }, () => {
    Promise.race([Promise.all([closing, backend.close()]), new Promise((r) => setTimeout(r, 2000))]).finally(
      () => process.exit(0),
    );
  });
});
