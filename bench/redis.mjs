// The Redis store's decision rate and latency, side by side in the same run with
// rate-limiter-flexible's RateLimiterRedis: the same Redis, the same ioredis client, the same keys.
// Concurrency 1 (one decision in flight) and 64; decisions/s and p50/p99 latency; medians of
// interleaved rounds, reported as ratios (Spillway / rate-limiter-flexible).
//
//   node bench/redis.mjs [--rounds 5] [--seconds 2] [--port 6379] [--quick]
//
// Needs `npm run build` first (it imports dist/) and a Redis on 127.0.0.1 (default port 6379).
// Writes bench/results/redis.json. --quick is a smoke run of a few seconds in all.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const quick = args.includes('--quick');
const rounds = opt('rounds', quick ? 1 : 5);
const seconds = opt('seconds', quick ? 0.3 : 2);
const port = opt('port', 6379);
const CONCURRENCY = [1, 64];
const KEYS = 1000;

const { Redis } = await import('ioredis');
const { RateLimiterRedis } = await import('rate-limiter-flexible');
const { createRedisStore } = await import('../dist/stores/redis/index.js');

const client = new Redis({ host: '127.0.0.1', port, enableOfflineQueue: true });
client.on('error', () => {});
await client.ping();

const prefix = `bench:${process.pid}:`;
// Limits high enough that every decision admits: both sides do the same work per call.
const spillway = createRedisStore({ client, prefix: `${prefix}sw:`, timeoutMs: 5000 });
// The same store with batching off: one call per decision, as on a Cluster.
const unbatched = createRedisStore({ client, prefix: `${prefix}sw:`, timeoutMs: 5000, batch: false });
const limits = { ratePerSec: 1e9, burst: 1e9 };
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`);
const rlf = new RateLimiterRedis({
  storeClient: client,
  keyPrefix: `${prefix}rlf`,
  points: 1e9,
  duration: 60,
});

const impls = {
  spillway: async (key) => {
    const d = await spillway.take({ key, cost: 1, limits, factor: 1 });
    if (!d.allowed) throw new Error('spillway refused');
  },
  unbatched: async (key) => {
    const d = await unbatched.take({ key, cost: 1, limits, factor: 1 });
    if (!d.allowed) throw new Error('spillway refused');
  },
  rlf: (key) => rlf.consume(key, 1),
};
const NAMES = Object.keys(impls);

async function measure(take, concurrency) {
  const latencies = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let n = 0;
  const worker = async () => {
    while (performance.now() < end) {
      const key = keys[n++ % KEYS];
      const s = performance.now();
      await take(key);
      latencies.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedS = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return { perSec: latencies.length / elapsedS, p50Ms: q(0.5), p99Ms: q(0.99) };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// Warm both (script cached, connections hot, JIT).
for (const take of Object.values(impls)) await measure(take, 8);

const samples = {};
for (let r = 0; r < rounds; r++) {
  for (const c of CONCURRENCY) {
    // Alternate the order per round so neither side always runs first.
    const order = r % 2 === 0 ? NAMES : [...NAMES].reverse();
    for (const name of order) {
      const m = await measure(impls[name], c);
      for (const [k, v] of Object.entries(m)) {
        const id = `${name}.${c}.${k}`;
        if (samples[id] === undefined) samples[id] = [];
        samples[id].push(v);
      }
    }
  }
}

const results = { rounds, seconds, keys: KEYS, redisPort: port, loadAvg1m: loadavg()[0], cases: {} };
for (const c of CONCURRENCY) {
  const get = (name, k) => median(samples[`${name}.${c}.${k}`]);
  const row = {};
  for (const name of NAMES) {
    row[name] = { perSec: get(name, 'perSec'), p50Ms: get(name, 'p50Ms'), p99Ms: get(name, 'p99Ms') };
  }
  const ratio = (name) => ({
    perSec: row[name].perSec / row.rlf.perSec,
    p50: row[name].p50Ms / row.rlf.p50Ms,
    p99: row[name].p99Ms / row.rlf.p99Ms,
  });
  row.ratio = ratio('spillway');
  row.ratioUnbatched = ratio('unbatched');
  results.cases[`concurrency ${c}`] = row;
  const f = (x) => x.toFixed(3);
  const show = (name, label) =>
    `${label} ${Math.round(row[name].perSec)}/s p50 ${f(row[name].p50Ms)} ms p99 ${f(row[name].p99Ms)} ms`;
  const showRatio = (r) =>
    `decisions/s ${r.perSec.toFixed(2)}x, p50 ${r.p50.toFixed(2)}x, p99 ${r.p99.toFixed(2)}x`;
  console.log(`concurrency ${c}:`);
  console.log(`  ${show('rlf', 'rate-limiter-flexible')}`);
  console.log(`  ${show('spillway', 'spillway (batched)   ')} | vs rlf ${showRatio(row.ratio)}`);
  console.log(`  ${show('unbatched', 'spillway (unbatched) ')} | vs rlf ${showRatio(row.ratioUnbatched)}`);
}

// Leave nothing behind in the shared Redis.
let cursor = '0';
do {
  const [next, found] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
  if (found.length > 0) await client.del(...found);
  cursor = next;
} while (cursor !== '0');
client.disconnect();

if (!quick) {
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'redis.json'), `${JSON.stringify(results, null, 2)}\n`);
}
