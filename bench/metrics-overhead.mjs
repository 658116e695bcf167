// What Spillway's observability costs per admission decision: a keyed-limiter decision that a
// guard publishes on the `spillway:decision` channel (the message is built only when someone
// subscribes), with nobody listening, with `createMetrics`, with metrics and `enableTracing`
// (no active span), and with metrics and `logDecisions` (refusals sampled at 1%). Side by side in
// one run, interleaved rounds, medians, reported as ns per decision and as the extra ns over "off".
//
//   node bench/metrics-overhead.mjs [--rounds 7] [--quick]
//
// Needs `npm run build` first (it imports dist/). Writes bench/results/metrics-overhead.json.
import { execFileSync } from 'node:child_process';
import { channel } from 'node:diagnostics_channel';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const rounds = Number(args[args.indexOf('--rounds') + 1]) || (quick ? 3 : 7);
const OPS = quick ? 100_000 : 1_000_000;

const { createLimiter, ManualFactor } = await import('../dist/index.js');
const { DECISION_CHANNEL, logDecisions } = await import('../dist/observability/index.js');
const { createMetrics } = await import('../dist/observability/prometheus/index.js');
const { traceDecisions } = await import('../dist/observability/otel.js');
const otel = await import('@opentelemetry/api');

const decisions = channel(DECISION_CHANNEL);
const routes = ['/', '/search', '/login', '/users', '/orders'];
const priorities = ['normal', 'normal', 'sheddable', 'critical'];

/** One guard-like decision: the limiter decides, and the decision is published if anyone listens. */
function run(limiter, ops) {
  let admitted = 0;
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) {
    const priority = priorities[i & 3];
    const d = limiter.take(`k${i & 1023}`, { priority });
    if (d.allowed) admitted++;
    if (decisions.hasSubscribers) {
      decisions.publish({
        name: 'api',
        outcome: d.allowed ? 'admitted' : d.reason === 'shed' ? 'shed' : 'limited',
        stage: 'key',
        reason: d.reason,
        priority,
        route: routes[i % 5],
        factor: d.factor,
        limit: d.limit,
        retryAfterMs: d.retryAfterMs,
      });
    }
  }
  return { ns: ((performance.now() - t0) * 1e6) / ops, admitted };
}

const modes = {
  off: () => () => {},
  metrics: () => {
    const m = createMetrics({ registry: new Registry() });
    return () => m.close();
  },
  'metrics+tracing': () => {
    const m = createMetrics({ registry: new Registry() });
    const t = traceDecisions(otel);
    return () => {
      t.disable();
      m.close();
    };
  },
  'metrics+log': () => {
    const m = createMetrics({ registry: new Registry() });
    let lines = 0;
    const l = logDecisions({ sink: () => lines++, sample: 0.01 });
    return () => {
      l.close();
      m.close();
    };
  },
};

// Each measurement runs in a child process of its own: subscribing and unsubscribing swaps the
// channel object's prototype in Node, which would leave the hot loop deoptimised for later modes.
const child = args.indexOf('--child');
if (child >= 0) {
  const name = args[child + 1];
  // A factor below 1 so that a share of decisions is refused (shed), as under load.
  const limiter = createLimiter({ ratePerSec: 1e6, burst: 50, factor: new ManualFactor(0.6) });
  modes[name]();
  run(limiter, OPS / 4); // warm-up: JIT and key creation
  const r = run(limiter, OPS);
  console.log(JSON.stringify(r));
  process.exit(0);
}

const samples = Object.fromEntries(Object.keys(modes).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (const name of Object.keys(modes)) {
    const flags = quick ? ['--quick'] : [];
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', name, ...flags], {
      encoding: 'utf8',
    });
    samples[name].push(JSON.parse(out.trim().split('\n').pop()).ns);
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const results = {};
const off = median(samples.off);
for (const [name, xs] of Object.entries(samples)) {
  const m = median(xs);
  results[name] = {
    nsPerDecision: Number(m.toFixed(1)),
    extraNs: Number((m - off).toFixed(1)),
    ratio: Number((m / off).toFixed(2)),
  };
}
let load = '';
try {
  load = execFileSync('uptime', { encoding: 'utf8' }).trim();
} catch {}
const out = { node: process.version, quick, rounds, ops: OPS, load, results, samples };
console.table(results);
console.log(load);
if (!quick) {
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results/metrics-overhead.json'), `${JSON.stringify(out, null, 2)}\n`);
}
