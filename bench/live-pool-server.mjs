// The pool-bound server of bench/live-pool.mjs, as its own process (forked; options as JSON in
// argv[2]). Its handler spends 0.3 ms of CPU, then holds one of 8 slots of a FIFO async pool for
// 20 ms (capacity ~394 req/s): the event loop is never the bottleneck, the pool is.
//   worker → { type: 'ready', port }
//   parent → { type: 'stop' }   worker → { type: 'stats', stats }, then it exits
// Modes:
//   none              no protection: every request waits for the pool (FIFO, unbounded)
//   fixed             a fixed concurrency limit of 8 in front of the handler, unbounded FIFO queue
//   spillway-known    the guard's `concurrency: { limit: 8 }` (the pool's size, known)
//   spillway-adaptive the guard's `concurrency: {}` (limit learned from latency, Vegas)
// It exits when its parent goes away.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { createHttpGuard } from 'spillway/http';

const options = JSON.parse(process.argv[2] ?? '{}');
const mode = options.mode ?? 'none';
const CPU_MS = options.cpuMs ?? 0.3;
const SLOTS = options.slots ?? 8;
const HOLD_MS = options.holdMs ?? 20;

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

const pool = new FifoPool(SLOTS);
let maxPoolWaiting = 0;
let handlers = 0;
let maxHandlers = 0;

async function handler(_req, res) {
  handlers++;
  maxHandlers = Math.max(maxHandlers, handlers);
  try {
    burn(CPU_MS);
    await pool.acquire();
    maxPoolWaiting = Math.max(maxPoolWaiting, pool.waiting);
    try {
      await new Promise((r) => setTimeout(r, HOLD_MS));
    } finally {
      pool.release();
    }
    if (!res.destroyed) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    }
  } finally {
    handlers--;
  }
}

function warm(req, res) {
  if (req.url !== '/warm') return false;
  res.writeHead(204);
  res.end();
  return true;
}

let guard;
let listener;
const limits = [];
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
    const wrapped = guard.wrap(handler);
    listener = (req, res) => {
      if (!warm(req, res)) wrapped(req, res);
    };
    const sampler = setInterval(() => limits.push(guard.concurrency.limit), 1000);
    sampler.unref();
    break;
  }
  default:
    console.error(`unknown mode ${mode}`);
    process.exit(2);
}

const server = http.createServer(listener);
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 0;
process.on('disconnect', () => process.exit(0));
server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: server.address().port });
});
process.on('message', (msg) => {
  if (msg?.type !== 'stop') return;
  const stats = {
    mode,
    maxHandlers,
    maxPoolWaiting,
    limits,
    finalLimit: guard?.concurrency?.limit ?? null,
    snapshot: guard?.concurrency?.snapshot() ?? null,
  };
  guard?.close();
  server.closeAllConnections();
  process.send?.({ type: 'stats', stats }, () => server.close(() => process.exit(0)));
});
