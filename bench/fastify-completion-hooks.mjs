// What it costs a Fastify request to learn when its response is done, by each way the guard could:
//   noop              an onRequest hook that does nothing (the baseline)
//   close             an onRequest hook that adds one `close` listener to the raw response (what the
//                     Spillway plugin does: it releases the request's count and slots there)
//   onResponse        an onRequest hook plus an `onResponse` hook (Fastify then sets up its own
//                     `finish`/`error` listeners and reads the clock at the start and end of every
//                     request, and runs its hook runner when the response finishes)
//   onResponse+abort  the same plus an `onRequestAbort` hook, which an aborted request would need
// In process, as bench/adapter-cost.mjs does it (IncomingMessage/ServerResponse on an unconnected
// socket, 64 a turn, Fastify's `app.routing`), except that the response emits `finish` before
// `close`, as a served one does, so that `onResponse` runs. CPU time per request, median of rounds.
//
//   node bench/fastify-completion-hooks.mjs [--rounds 15] [--requests 50000]
import Fastify from 'fastify';
import { inProcessCall } from './overhead-apps.mjs';

const args = process.argv.slice(2);
const num = (flag, fallback) => (args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : fallback);
const ROUNDS = num('--rounds', 15);
const REQUESTS = num('--requests', 50_000);
const BATCH = 64;

let completions = 0;
const done = () => {
  completions++;
};

async function make(kind) {
  const app = Fastify();
  if (kind === 'close') {
    app.addHook('onRequest', (_request, reply, next) => {
      let open = true;
      reply.raw.on('close', () => {
        if (!open) return;
        open = false;
        done();
      });
      next();
    });
  } else {
    app.addHook('onRequest', (_request, _reply, next) => next());
  }
  if (kind === 'onResponse' || kind === 'onResponse+abort') {
    app.addHook('onResponse', (_request, _reply, next) => {
      done();
      next();
    });
  }
  if (kind === 'onResponse+abort') app.addHook('onRequestAbort', (_request, next) => next());
  app.get('/', async () => 'hello world');
  await app.ready();
  return app;
}

/** One request through Fastify's handler; the response emits `finish`, then `close`. */
const call = (app) => inProcessCall((req, res) => app.routing(req, res), true);

const KINDS = ['noop', 'close', 'onResponse', 'onResponse+abort'];
const apps = {};
for (const k of KINDS) apps[k] = await make(k);
const rows = Object.fromEntries(KINDS.map((k) => [k, []]));
// Round 0 warms the JIT and is not counted.
for (let r = 0; r <= ROUNDS; r++) {
  for (const k of r % 2 === 0 ? KINDS : [...KINDS].reverse()) {
    const t0 = process.cpuUsage();
    for (let n = 0; n < REQUESTS; n += BATCH) {
      const batch = [];
      for (let i = 0; i < BATCH; i++) batch.push(call(apps[k]));
      await Promise.all(batch);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const t = process.cpuUsage(t0);
    if (r > 0) rows[k].push(((t.user + t.system) / REQUESTS) * 1e3);
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const base = median(rows.noop);
console.log(`fastify completion hooks: ${ROUNDS} rounds × ${REQUESTS} requests, CPU ns per request`);
for (const k of KINDS) {
  const m = median(rows[k]);
  console.log(
    `${k.padEnd(18)} ${m.toFixed(0).padStart(6)} ns  ${k === 'noop' ? '' : `+${(m - base).toFixed(0)} ns`}`,
  );
}
// Every request of the three completion kinds reported once (onResponse runs on `finish`).
const expected = 3 * (ROUNDS + 1) * Math.ceil(REQUESTS / BATCH) * BATCH;
if (completions !== expected) throw new Error(`completions ${completions}, expected ${expected}`);
process.exit(0);
