// Live tenants benchmark (not a test): does the governor's factor, fed by the HTTP guard's refusal
// share, cut the heavy tenant first while the light ones keep what they send?
//
// A real node:http server in a child process, its handler burning 2 ms of CPU per request, behind
// the HTTP guard with a per-tenant limiter (key: the `x-tenant` header, quota 2x capacity each at
// factor 1, scaled by the governor), the loop-turn budget (25 ms) and a Governor
// with its default signals (warm-up shortened to 1 s). Open-loop load from this process (node:http
// keep-alive agents, latency from each request's intended send time, 5 s timeout) for three
// tenants, each within its own quota: heavy 1.8x capacity, light 0.3x, lighter 0.15x (2.25x in
// all; --total scales the three), after 3 s at 0.5x and before 5 s at 0.5x. Run with
// `feedGovernor` on and off, and without the guard (none).
//
// Prints per mode: each tenant's share of its overload requests answered 2xx, total goodput (2xx per
// second over capacity), p99 of the 2xx, p50 of the 2xx, 503 and 429 and p99 of the refusals (all
// during the overload, from the intended send time), the lowest factor, and on/off switches of "any request
// refused" in 100 ms slices from the overload's start to the end (2 is clean).
// By default the guard has no Shedder (the turn budget alone refuses for the process): a Shedder
// follows the same factor, its base sits near capacity, so it binds before the scaled quotas and
// refuses every tenant alike; --shedder adds one to show that.
// Flags: --shedder, --overload-sec S (default 15), --modes feed,nofeed,none (none: the bare server, no
// guard), --total X (the overload's total load in multiples of capacity, default 2.25; 0.8 checks
// that nothing is refused below capacity), --capacity N (req/s; default: measured closed loop
// against an unprotected server process). Needs dist/ (npm run build).
import { fork } from 'node:child_process';
import diagnostics_channel from 'node:diagnostics_channel';
import http from 'node:http';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const CPU_MS = 2;

if (process.argv[2] === '--server')
  await server(process.argv[3], Number(process.argv[4]), process.argv[5] === 'shedder');
else await main();

async function server(mode, capacity, withShedder) {
  if (mode === 'bare') return bareServer();
  const feed = mode === 'feed';
  const { createGovernor, createLimiter, Shedder } = await import(join(root, 'dist/index.js'));
  const { createHttpGuard } = await import(join(root, 'dist/adapters/http.js'));
  const governor = createGovernor({ warmupMs: 1000 });
  const limiter = createLimiter({ ratePerSec: 2 * capacity, burst: capacity / 5, factor: governor });
  // A Shedder follows the same factor and, its base near capacity, binds before the scaled quotas
  // (it refuses everyone alike): with --shedder it is added, by default only the turn budget is.
  const shedder = withShedder ? new Shedder({ factor: governor }) : undefined;
  const guard = createHttpGuard({
    limiter,
    ...(shedder ? { shedder } : {}),
    turnBudgetMs: 25,
    governor,
    feedGovernor: feed,
    key: (req) => String(req.headers['x-tenant'] ?? 'none'),
    bypass: ['/warm'],
  });
  let factorMin = 1;
  const changes = [];
  // Refusals by the stage that decided (the key's scaled quota or the turn budget), from the guard's
  // decision messages: a quota refusal the factor caused is a 503 too, so the status cannot tell.
  const byStage = {};
  diagnostics_channel.subscribe('spillway:decision', (m) => {
    if (m.outcome === 'limited' || m.outcome === 'shed') byStage[m.stage] = (byStage[m.stage] ?? 0) + 1;
  });
  governor.on('change', (r) => {
    factorMin = Math.min(factorMin, governor.factor);
    changes.push({ atMs: Date.now(), factor: governor.factor, reason: r.reason });
  });
  governor.start();
  const srv = http.createServer(
    guard.wrap((_req, res) => {
      const end = performance.now() + CPU_MS;
      while (performance.now() < end) {
        // burn CPU
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    }),
  );
  srv.keepAliveTimeout = 60_000;
  srv.listen(0, '127.0.0.1', () => process.send({ port: srv.address().port }));
  process.on('message', (m) => {
    if (m === 'report') {
      process.send({ factorMin, changes: changes.slice(-40), nChanges: changes.length, byStage });
      governor.stop();
      guard.close();
      srv.close();
      srv.closeAllConnections?.();
      setTimeout(() => process.exit(0), 50).unref();
    }
  });
}

function bareServer() {
  const srv = http.createServer((_req, res) => {
    const end = performance.now() + CPU_MS;
    while (performance.now() < end) {
      // burn CPU
    }
    res.end('ok');
  });
  srv.keepAliveTimeout = 60_000;
  srv.listen(0, '127.0.0.1', () => process.send({ port: srv.address().port }));
  process.on('message', () => {
    process.send({});
    srv.close();
    srv.closeAllConnections?.();
    setTimeout(() => process.exit(0), 50).unref();
  });
}

function startServer(mode, capacity, withShedder = false) {
  const args = ['--server', mode, String(capacity), withShedder ? 'shedder' : 'none'];
  const child = fork(fileURLToPath(import.meta.url), args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve) => child.once('message', (m) => resolve({ child, port: m.port })));
}

function request(agent, port, path, tenant, timeoutMs) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, agent, headers: { 'x-tenant': tenant }, timeout: timeoutMs },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', () => resolve(0));
      },
    );
    req.on('timeout', () => {
      req.destroy();
      resolve(-1);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Closed-loop capacity of a bare 2 ms handler in its own process (16 connections, 3 s). */
async function measureCapacity() {
  const { child, port } = await startServer('bare', 0);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  let done = 0;
  const from = performance.now() + 500;
  const until = from + 3000;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < until) {
        await request(agent, port, '/', 'x', 5000);
        if (performance.now() >= from) done++;
      }
    }),
  );
  agent.destroy();
  child.send('report');
  await new Promise((r) => child.once('exit', r));
  return Math.round(done / 3);
}

async function run(mode, capacity, overloadSec, withShedder, overloadTotal) {
  const feed = mode === 'feed';
  const { child, port } = await startServer(mode === 'none' ? 'bare' : mode, capacity, withShedder);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  // Open the connections before the measured period (see shared/NOTES.md: the accept queue).
  await Promise.all(Array.from({ length: 256 }, () => request(agent, port, '/warm', 'warm', 5000)));
  const scale = overloadTotal / 2.25;
  const tenants = [
    { name: 'heavy', base: 0.3, peak: 1.8 * scale },
    { name: 'light', base: 0.13, peak: 0.3 * scale },
    { name: 'lighter', base: 0.07, peak: 0.15 * scale },
  ];
  const baseSec = 3;
  const afterSec = 5;
  const total = baseSec + overloadSec + afterSec;
  const t0 = performance.now() + 100;
  const wall0 = Date.now() + 100;
  const results = [];
  const pending = [];
  for (const t of tenants) {
    const sends = [];
    let at = 0;
    while (at < total * 1000) {
      const inOverload = at >= baseSec * 1000 && at < (baseSec + overloadSec) * 1000;
      const rate = capacity * (inOverload ? t.peak : t.base);
      sends.push({ at, inOverload });
      at += 1000 / rate;
    }
    t.sends = sends;
  }
  const all = tenants
    .flatMap((t) => t.sends.map((s) => ({ ...s, tenant: t.name })))
    .sort((a, b) => a.at - b.at);
  let i = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now() - t0;
      while (i < all.length && all[i].at <= now) {
        const s = all[i++];
        const intended = t0 + s.at;
        pending.push(
          request(agent, port, '/', s.tenant, 5000).then((status) => {
            results.push({ ...s, status, latencyMs: performance.now() - intended });
          }),
        );
      }
      if (i >= all.length) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });
  await Promise.all(pending);
  child.send('report');
  const report = await new Promise((r) => child.once('message', r));
  await new Promise((r) => child.once('exit', r));
  agent.destroy();

  const over = results.filter((r) => r.inOverload);
  const perTenant = {};
  for (const t of tenants) {
    const mine = over.filter((r) => r.tenant === t.name);
    perTenant[t.name] = {
      sent: mine.length,
      ok: mine.filter((r) => r.status === 200).length,
      limited: mine.filter((r) => r.status === 429).length,
      shed: mine.filter((r) => r.status === 503).length,
      timeouts: mine.filter((r) => r.status === -1).length,
    };
  }
  const latencies = (status) =>
    over
      .filter((r) => r.status === status)
      .map((r) => r.latencyMs)
      .sort((a, b) => a - b);
  const pct = (xs, q) => (xs.length ? xs[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)] : null);
  const okLat = latencies(200);
  const shedLat = latencies(503);
  const limitedLat = latencies(429);
  const p99 = pct(okLat, 0.99);
  const lat = {
    ok: [pct(okLat, 0.5), p99],
    shed: [pct(shedLat, 0.5), pct(shedLat, 0.99)],
    limited: [pct(limitedLat, 0.5), pct(limitedLat, 0.99)],
  };
  // On/off switches of "any request refused" per 100 ms slice (by intended send time), from the
  // overload's start to the end of the run.
  const slices = new Map();
  for (const r of results) {
    if (r.at < baseSec * 1000) continue;
    const k = Math.floor(r.at / 100);
    slices.set(k, (slices.get(k) ?? false) || r.status === 429 || r.status === 503);
  }
  let switches = 0;
  let prev = false;
  for (const k of [...slices.keys()].sort((a, b) => a - b)) {
    const on = slices.get(k);
    if (on !== prev) switches++;
    prev = on;
  }
  const goodput = over.filter((r) => r.status === 200).length / overloadSec / capacity;
  const factorTrace = (report.changes ?? [])
    .filter((c) => c.atMs >= wall0)
    .map((c) => `${((c.atMs - wall0) / 1000).toFixed(1)}s:${c.factor.toFixed(2)}`);
  return {
    feed,
    perTenant,
    goodput,
    p99,
    lat,
    factorMin: report.factorMin ?? null,
    switches,
    changes: report.nChanges ?? null,
    byStage: report.byStage ?? null,
    factorTrace,
  };
}

function ms(x) {
  return x === null || x === undefined ? '—' : `${x.toFixed(1)} ms`;
}

async function main() {
  const { values } = parseArgs({
    options: {
      'overload-sec': { type: 'string' },
      modes: { type: 'string' },
      capacity: { type: 'string' },
      shedder: { type: 'boolean' },
      total: { type: 'string' },
    },
    strict: false,
  });
  const overloadSec = Number(values['overload-sec'] ?? 15);
  const total = Number(values.total ?? 2.25);
  if (!(total > 0)) throw new Error(`--total: expected a number > 0, got ${values.total}`);
  const given = values.capacity === undefined ? undefined : Number(values.capacity);
  const modes = (values.modes ?? 'feed,nofeed,none').split(',');
  for (const m of modes) {
    if (!['feed', 'nofeed', 'none'].includes(m))
      throw new Error(`--modes: expected feed, nofeed or none, got ${m}`);
  }
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const capacity = given ?? (await measureCapacity());
  console.log(
    `capacity ${capacity} req/s (2 ms handler, ${given === undefined ? 'measured closed loop' : 'given'}); load average before: ${load}`,
  );
  console.log(`Shedder: ${values.shedder === true ? 'yes' : 'no'}`);
  console.log(
    `tenants (share of capacity, each within its 2x quota): heavy ${((1.8 * total) / 2.25).toFixed(2)}x, light ${((0.3 * total) / 2.25).toFixed(2)}x, lighter ${((0.15 * total) / 2.25).toFixed(2)}x; overload`,
    `${overloadSec} s`,
  );
  console.log(
    '\n| mode | heavy 2xx | light 2xx | lighter 2xx | goodput | p99 2xx | p50 2xx / 503 / 429 | p99 503 / 429 | factor min | switches | factor changes |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const m of modes) {
    const r = await run(m, capacity, overloadSec, values.shedder === true, total);
    const share = (t) => {
      const x = r.perTenant[t];
      return `${((100 * x.ok) / Math.max(1, x.sent)).toFixed(1)}% (429 ${x.limited}, 503 ${x.shed}, t/o ${x.timeouts})`;
    };
    console.log(
      `| ${m} | ${share('heavy')} | ${share('light')} | ${share('lighter')} | ${(100 * r.goodput).toFixed(1)}% | ${ms(r.p99)} | ${ms(r.lat.ok[0])} / ${ms(r.lat.shed[0])} / ${ms(r.lat.limited[0])} | ${ms(r.lat.shed[1])} / ${ms(r.lat.limited[1])} | ${r.factorMin?.toFixed(2) ?? '—'} | ${r.switches} | ${r.changes ?? '—'} |`,
    );
    if (r.factorTrace.length) console.log(`  factor: ${r.factorTrace.join(' ')}`);
    if (r.byStage) {
      const stages = Object.entries(r.byStage).map(([k, v]) => `${k} ${v}`);
      console.log(`  refused by stage (whole run): ${stages.join(', ') || 'none'}`);
    }
  }
  console.log(
    `\nload average after: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}
