// What Spillway's HTTP adapters cost a served request, side by side with the limiter each
// framework's users would pick, and what a refusal costs compared with serving.
//
// The same hello-world app runs in a child process per case (framework × mode), built by
// bench/overhead-apps.mjs (shared with adapter-cost.mjs; each mode is explained there):
//   http     bare | same-job | default | refuse | shed
//   express  bare | same-job | default | peer (express-rate-limit)
//   fastify  bare | same-job | default | peer (@fastify/rate-limit)
// autocannon loads each from this (parent) process: closed loop, keep-alive connections opened
// before the measured run (a warm-up), 127.0.0.1 only. The server reads its own CPU time
// (process.cpuUsage) around the measured run, divided by the requests served: on a 2-core machine
// the load generator competes with the server, so CPU per request is the figure, throughput only a
// hint. Rounds alternate the order of the cases; each figure is the median of the rounds.
//
//   npm run build && node bench/http-overhead.mjs [--rounds 5] [--duration 4] [--quick] [http express fastify]
//
// Writes bench/results/http-overhead.json and prints a table.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expressApp, fastifyApp, httpApp, PEER } from './overhead-apps.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

const CASES = {
  http: ['bare', 'same-job', 'default', 'refuse', 'shed'],
  express: ['bare', 'same-job', 'default', 'peer'],
  fastify: ['bare', 'same-job', 'default', 'peer'],
};

if (args[0] === '--server') {
  await serve(args[1], args[2]);
} else {
  await main();
}

async function httpServer(mode) {
  const { createServer } = await import('node:http');
  const server = createServer({ keepAliveTimeout: 60_000 }, await httpApp(mode));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server.address().port;
}

async function expressServer(mode) {
  const app = await expressApp(mode);
  const server = app.listen(0, '127.0.0.1');
  server.keepAliveTimeout = 60_000;
  await once(server, 'listening');
  return server.address().port;
}

async function fastifyServer(mode) {
  const app = await fastifyApp(mode, undefined, { keepAliveTimeout: 60_000 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app.server.address().port;
}

/** Child: one server for one case; tells the parent its port, exits when the parent disconnects. */
async function serve(framework, mode) {
  const start = { http: httpServer, express: expressServer, fastify: fastifyServer }[framework];
  const port = await start(mode);
  process.send({ port });
  // The parent asks for this process's CPU time around each measured run.
  process.on('message', (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      process.send({ cpuUs: u.user + u.system });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  const quick = args.includes('--quick');
  const num = (flag, fallback) => (args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : fallback);
  const rounds = num('--rounds', quick ? 2 : 5);
  const duration = num('--duration', quick ? 2 : 4);
  const connections = num('--connections', 32);
  // The values of the flags given (an absent flag must not swallow the first framework named).
  const flagValues = new Set(
    ['--rounds', '--duration', '--connections'].flatMap((f) =>
      args.flatMap((a, i) => (a === f ? [args[i + 1]] : [])),
    ),
  );
  const only = args.filter((a) => !a.startsWith('--') && !flagValues.has(a));
  const frameworks = Object.keys(CASES).filter((f) => only.length === 0 || only.includes(f));
  const warmupSec = 1;
  const { default: autocannon } = await import('autocannon');
  const loadBefore = loadavg();

  const cases = frameworks.flatMap((framework) => CASES[framework].map((mode) => ({ framework, mode })));
  for (const c of cases) {
    c.id = `${c.framework}/${c.mode}`;
    c.child = fork(fileURLToPath(import.meta.url), ['--server', c.framework, c.mode], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const [msg] = await once(c.child, 'message');
    c.url = `http://127.0.0.1:${msg.port}/`;
  }

  const load = (url, opts) =>
    new Promise((resolve, reject) => {
      autocannon({ url, connections, pipelining: 1, ...opts }, (err, result) =>
        err ? reject(err) : resolve(result),
      );
    });
  const cpuOf = async (child) => {
    child.send('cpu');
    const [m] = await once(child, 'message');
    return m.cpuUs;
  };

  const results = Object.fromEntries(cases.map((c) => [c.id, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      // Alternate the order each round so that no case always runs first (or right after another).
      const order = r % 2 === 0 ? cases : [...cases].reverse();
      for (const c of order) {
        await load(c.url, { duration: warmupSec }); // JIT warm, connections open
        const cpu0 = await cpuOf(c.child);
        const res = await load(c.url, { duration });
        const cpu1 = await cpuOf(c.child);
        const codes = res.statusCodeStats ?? {};
        const row = {
          round: r,
          requests: res.requests.total,
          reqPerSec: res.requests.total / duration,
          serverCpuUsPerReq: (cpu1 - cpu0) / res.requests.total,
          latencyP50Ms: res.latency.p50,
          latencyP99Ms: res.latency.p99,
          status: Object.fromEntries(Object.entries(codes).map(([k, v]) => [k, v.count])),
          errors: res.errors,
          timeouts: res.timeouts,
        };
        results[c.id].push(row);
        process.stdout.write(
          `round ${r + 1}/${rounds} ${c.id.padEnd(17)} ${String(Math.round(row.reqPerSec)).padStart(6)} req/s, ${row.serverCpuUsPerReq.toFixed(1).padStart(6)} µs server CPU/req\n`,
        );
      }
    }
  } finally {
    for (const c of cases) c.child.disconnect();
  }

  const summary = {};
  for (const c of cases) {
    const rows = results[c.id];
    summary[c.id] = {
      medianReqPerSec: Math.round(median(rows.map((x) => x.reqPerSec))),
      medianServerCpuUsPerReq: Number(median(rows.map((x) => x.serverCpuUsPerReq)).toFixed(2)),
      medianP50Ms: median(rows.map((x) => x.latencyP50Ms)),
      medianP99Ms: median(rows.map((x) => x.latencyP99Ms)),
      status: rows.reduce((acc, x) => {
        for (const [k, v] of Object.entries(x.status)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {}),
    };
  }

  // Per framework: each mode's extra CPU per request over bare, as the median of per-round
  // differences (bare and the mode ran in the same round), and its throughput against bare's.
  const overhead = {};
  for (const framework of frameworks) {
    const bare = results[`${framework}/bare`];
    const rows = {};
    for (const mode of CASES[framework]) {
      if (mode === 'bare') continue;
      const mine = results[`${framework}/${mode}`];
      rows[mode] = {
        extraCpuUs: Number(
          median(mine.map((x, i) => x.serverCpuUsPerReq - bare[i].serverCpuUsPerReq)).toFixed(2),
        ),
        cpuRatio: Number(
          median(mine.map((x, i) => x.serverCpuUsPerReq / bare[i].serverCpuUsPerReq)).toFixed(3),
        ),
        throughputVsBare: Number(median(mine.map((x, i) => x.reqPerSec / bare[i].reqPerSec)).toFixed(3)),
      };
    }
    const peer = rows.peer;
    overhead[framework] = {
      bareCpuUs: summary[`${framework}/bare`].medianServerCpuUsPerReq,
      peer: PEER[framework],
      modes: rows,
      // The issue's bar: each adapter within the overhead of its framework's usual limiter.
      sameJobWithinPeer: peer === undefined ? undefined : rows['same-job'].extraCpuUs <= peer.extraCpuUs,
      defaultWithinPeer: peer === undefined ? undefined : rows.default.extraCpuUs <= peer.extraCpuUs,
    };
  }

  const out = {
    benchmark: 'http-overhead',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadavg: { before: loadBefore, after: loadavg() },
    config: { rounds, durationSec: duration, warmupSec, connections, pipelining: 1, keepAlive: true },
    summary,
    overhead,
    rounds: results,
  };
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'http-overhead.json'), `${JSON.stringify(out, null, 2)}\n`);

  console.log(
    `\nhttp-overhead: ${connections} keep-alive connections, ${rounds} rounds × ${duration} s, medians; load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${out.loadavg.after.map((x) => x.toFixed(2)).join(' ')} after`,
  );
  console.log('case               req/s  CPU µs/req  extra µs  vs bare req/s  p50 ms  p99 ms  statuses');
  for (const c of cases) {
    const s = summary[c.id];
    const o = overhead[c.framework].modes[c.mode];
    console.log(
      `${c.id.padEnd(17)} ${String(s.medianReqPerSec).padStart(6)}  ${s.medianServerCpuUsPerReq.toFixed(1).padStart(10)}  ${o === undefined ? '       —' : `${o.extraCpuUs >= 0 ? '+' : ''}${o.extraCpuUs.toFixed(1)}`.padStart(8)}  ${o === undefined ? '            —' : `${(o.throughputVsBare * 100).toFixed(0)}%`.padStart(13)}  ${String(s.medianP50Ms).padStart(6)}  ${String(s.medianP99Ms).padStart(6)}  ${JSON.stringify(s.status)}`,
    );
  }
  for (const framework of frameworks) {
    const o = overhead[framework];
    if (o.peer === undefined) continue;
    const m = o.modes;
    console.log(
      `${framework}: Spillway same-job +${m['same-job'].extraCpuUs} µs, default +${m.default.extraCpuUs} µs, ${o.peer} +${m.peer.extraCpuUs} µs per request (bare ${o.bareCpuUs} µs): same-job ${o.sameJobWithinPeer ? 'within' : 'over'} the peer, default ${o.defaultWithinPeer ? 'within' : 'over'}`,
    );
  }
}
