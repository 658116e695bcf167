// The JavaScript each HTTP adapter adds to a request, with no socket and no load generator: the
// complement of http-overhead.mjs, whose end-to-end figures on a shared 2-core machine move with the
// kernel's cost of waking the client as much as with the server's own work.
//
// In one process, requests are built as node:http IncomingMessage/ServerResponse pairs on an
// unconnected socket (remote address 127.0.0.1) and handed to the app, 64 per event-loop turn, until
// each response has ended (Fastify through `app.routing`, the handler its server calls). The apps are
// those of http-overhead.mjs, built by bench/overhead-apps.mjs (the modes are explained there):
//   bare       the app alone
//   same-job   Spillway: a per-address limit that never refuses, RateLimit fields on every response
//   default    Spillway as docs/http.md sets it up: governor, limit following it, Shedder (turn budget
//              on), the guard feeding the governor
//   peer       express-rate-limit / @fastify/rate-limit, defaults, limit raised so it never refuses
// The process's CPU time is measured (not wall time: the machine is shared). Rounds alternate the
// order; each figure is the median over rounds of CPU ns per request, and the
// overhead is the median of per-round differences with bare.
//
//   npm run build && node bench/adapter-cost.mjs [--rounds 9] [--requests 20000] [--quick] [http express fastify]
//
// Writes bench/results/adapter-cost.json and prints a table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_DIST,
  expressApp,
  fastifyApp,
  httpApp,
  inProcessCall,
  stopGovernors,
} from './overhead-apps.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const num = (flag, fallback) => (args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : fallback);
const ROUNDS = num('--rounds', quick ? 3 : 9);
const REQUESTS = num('--requests', quick ? 5000 : 20_000);
const BATCH = 64;

// `--dist DIR` (repeatable) compares builds side by side in one process, e.g. before and after a
// change: `--dist dist --dist /tmp/old/dist`. Default: this checkout's dist.
const dists = args.flatMap((a, i) => (a === '--dist' ? [args[i + 1]] : []));
if (dists.length === 0) dists.push(DEFAULT_DIST);

/** Fastify's app once ready (adapter-cost calls its request handler, `app.routing`, directly). */
async function readyFastifyApp(mode, dist) {
  const app = await fastifyApp(mode, dist);
  await app.ready();
  return app;
}

const flagValues = new Set(
  ['--rounds', '--requests', '--dist'].flatMap((f) => args.flatMap((a, i) => (a === f ? [args[i + 1]] : []))),
);
const only = args.filter((a) => !a.startsWith('--') && !flagValues.has(a));
const MAKERS = { http: httpApp, express: expressApp, fastify: readyFastifyApp };
const MODES = {
  http: ['bare', 'same-job', 'default'],
  express: ['bare', 'same-job', 'default', 'peer'],
  fastify: ['bare', 'same-job', 'default', 'peer'],
};
const CASES = [];
for (const framework of Object.keys(MODES)) {
  if (only.length > 0 && !only.includes(framework)) continue;
  for (const mode of MODES[framework]) {
    // bare and the peer do not depend on the build; Spillway's modes once per build.
    const builds = mode === 'bare' || mode === 'peer' ? [dists[0]] : dists;
    for (const dist of builds) {
      const label = dists.length > 1 && builds.length > 1 ? `@${dists.indexOf(dist)}` : '';
      CASES.push({ framework, mode, dist, label, make: MAKERS[framework] });
    }
  }
}

for (const c of CASES) {
  const app = await c.make(c.mode, c.dist);
  c.id = `${c.framework}/${c.mode}${c.label}`;
  // Fastify's request handler (what its server calls) once the app is ready.
  const handler = c.framework === 'fastify' ? (req, res) => app.routing(req, res) : app;
  c.one = () => inProcessCall(handler);
}

async function measure(c, n) {
  const statuses = {};
  // CPU time, not wall time: on a shared machine this process is descheduled for whole slices.
  const t0 = process.cpuUsage();
  for (let done = 0; done < n; done += BATCH) {
    const batch = [];
    for (let i = 0; i < BATCH; i++) batch.push(c.one());
    for (const s of await Promise.all(batch)) statuses[s] = (statuses[s] ?? 0) + 1;
    // End the event-loop turn, as a server's turns end between socket reads (the turn budget and
    // the governor's timers see turns).
    await new Promise((resolve) => setImmediate(resolve));
  }
  const t = process.cpuUsage(t0);
  return { ns: ((t.user + t.system) / n) * 1e3, statuses };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const loadBefore = loadavg();
for (const c of CASES) await measure(c, 2000); // warm-up: JIT
const rows = Object.fromEntries(CASES.map((c) => [c.id, []]));
const statuses = {};
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? CASES : [...CASES].reverse();
  for (const c of order) {
    const m = await measure(c, REQUESTS);
    rows[c.id].push(m.ns);
    statuses[c.id] = m.statuses;
  }
  process.stdout.write(`round ${r + 1}/${ROUNDS}\n`);
}
stopGovernors();

const summary = {};
for (const c of CASES) {
  const bare = rows[`${c.framework}/bare`];
  const mine = rows[c.id];
  summary[c.id] = {
    medianNsPerReq: Math.round(median(mine)),
    // The least-disturbed round: on a shared machine the closest to the code's own cost.
    minNsPerReq: Math.round(Math.min(...mine)),
    minExtraNs: c.mode === 'bare' ? 0 : Math.round(Math.min(...mine) - Math.min(...bare)),
    extraNs: c.mode === 'bare' ? 0 : Math.round(median(mine.map((x, i) => x - bare[i]))),
    statuses: statuses[c.id],
  };
}
const out = {
  benchmark: 'adapter-cost',
  date: new Date().toISOString(),
  node: process.version,
  loadavg: { before: loadBefore, after: loadavg() },
  config: { rounds: ROUNDS, requestsPerRun: REQUESTS, batch: BATCH, dists },
  summary,
  rounds: rows,
};
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', 'adapter-cost.json'), `${JSON.stringify(out, null, 2)}\n`);
console.log(
  `\nadapter-cost: in-process, ${ROUNDS} rounds × ${REQUESTS} requests, medians; load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${out.loadavg.after.map((x) => x.toFixed(2)).join(' ')} after`,
);
if (dists.length > 1) for (const [i, d] of dists.entries()) console.log(`@${i}: ${d}`);
console.log('case                 median ns/req  extra ns   min ns/req  extra ns  statuses');
for (const c of CASES) {
  const s = summary[c.id];
  const extra = (x) => (c.mode === 'bare' ? '—' : `${x >= 0 ? '+' : ''}${x}`);
  console.log(
    `${c.id.padEnd(19)} ${String(s.medianNsPerReq).padStart(14)}  ${extra(s.extraNs).padStart(8)}  ${String(s.minNsPerReq).padStart(11)}  ${extra(s.minExtraNs).padStart(8)}  ${JSON.stringify(s.statuses)}`,
  );
}
process.exit(0);
