// Concurrency 1 part by part, on a private redis-server so that its counters hold only these calls:
// short paired segments, in a new random order each round, of the Redis store's `take` (whole and
// fractional counts left) and rate-limiter-flexible's `consume`, on one ioredis client. Per case,
// medians over the rounds of: Redis's time per EVALSHA (INFO commandstats, reset per segment), the
// client's CPU per decision (process.cpuUsage), the wall time per decision, and each segment's rate
// over rate-limiter-flexible's in the same round. `--before <dir>` adds another build's stores
// (its dist/), to compare two builds in one process. `--bare` adds bare ioredis `EVALSHA`s of this
// build's take script (with the arguments the store sends) and of rate-limiter-flexible's script
// (with the arguments it sends): each library's own client-side cost is its case minus its bare call.
//
//   node bench/redis-paired.mjs [--rounds 25] [--calls 2000] [--port 6397] [--before ../main/dist] [--bare]
//
// Needs `npm run build` first and `redis-server` on the PATH (started here on --port, killed after).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const rounds = Number(opt('rounds', 25));
const calls = Number(opt('calls', 2000));
const port = Number(opt('port', 6397));
const beforeDir = opt('before', undefined);
const bare = args.includes('--bare');

const { Redis } = await import('ioredis');
const { RateLimiterRedis } = await import('rate-limiter-flexible');
const builds = { this: await import('../dist/stores/redis/index.js') };
if (beforeDir !== undefined) {
  builds.before = await import(pathToFileURL(resolve(beforeDir, 'stores/redis/index.js')).href);
}

const server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
  stdio: 'ignore',
});
const client = new Redis({ host: '127.0.0.1', port, retryStrategy: (n) => (n < 20 ? 50 : null) });
client.on('error', () => {});
await client.ping();

// Every decision admitted (the limits of bench/redis.mjs); a cost of 0.5 leaves a fractional count.
const limits = { ratePerSec: 1e9, burst: 1e9 };
const keys = Array.from({ length: 1000 }, (_, i) => `user:${i}`);
const admitted = (d) => {
  if (!d.allowed) throw new Error('refused');
};
const cases = {};
for (const [name, m] of Object.entries(builds)) {
  const store = m.createRedisStore({ client, prefix: `${name}:`, timeoutMs: 5000, batch: false });
  cases[`${name}, whole`] = (key) => store.take({ key, cost: 1, limits, factor: 1 }).then(admitted);
  cases[`${name}, fractional`] = (key) => store.take({ key, cost: 0.5, limits, factor: 1 }).then(admitted);
}
const rlf = new RateLimiterRedis({ storeClient: client, keyPrefix: 'rlf', points: 1e9, duration: 60 });
cases['rate-limiter-flexible'] = (key) => rlf.consume(key, 1);
if (bare) {
  const script = await import('../dist/stores/redis/script.js');
  await client.script('LOAD', script.TOKEN_BUCKET_TAKE_SCRIPT);
  const rlfSha = await client.script('LOAD', rlf._incrTtlLuaScript);
  // What the store sends for a take of 1 at factor 1: the cost, the rate per ms, the capacity.
  const [cost, rate, cap] = [String(1), String(limits.ratePerSec / 1000), String(limits.burst)];
  cases['bare EVALSHA, this'] = (key) =>
    client.evalsha(script.TOKEN_BUCKET_TAKE_SHA, 1, `bare:{${key}}`, cost, rate, cap);
  cases['bare EVALSHA, rlf'] = (key) =>
    client.evalsha(rlfSha, 1, `bare:rlf:${key}`, '1', '60', '1000000000', '60');
}
const names = Object.keys(cases);
const RLF = 'rate-limiter-flexible';

const usecPerCall = async () => {
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await client.info('commandstats'));
  return m ? Number(m[2]) / Number(m[1]) : Number.NaN;
};
const samples = {};
for (const name of names) {
  for (let i = 0; i < 3000; i++) await cases[name](keys[i % keys.length]); // scripts cached, JIT warm
  samples[name] = { redisUs: [], clientUs: [], wallUs: [] };
}
for (let r = 0; r < rounds; r++) {
  for (const name of [...names].sort(() => Math.random() - 0.5)) {
    await client.config('RESETSTAT');
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await cases[name](keys[i % keys.length]);
    const wallUs = ((performance.now() - t0) * 1000) / calls;
    const cpu = process.cpuUsage(cpu0);
    samples[name].clientUs.push((cpu.user + cpu.system) / calls);
    samples[name].redisUs.push(await usecPerCall());
    samples[name].wallUs.push(wallUs);
  }
}
client.disconnect();
server.kill();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const paired = (name, k, f) => median(samples[name][k].map((v, i) => f(v, samples[RLF][k][i])));
console.log(`${rounds} rounds of ${calls} calls at concurrency 1; medians (paired with ${RLF} per round)`);
for (const name of names) {
  const s = samples[name];
  console.log(
    `${name.padEnd(23)} Redis ${median(s.redisUs).toFixed(2)} µs/call (${paired(name, 'redisUs', (a, b) => a - b).toFixed(2)})` +
      `  client CPU ${median(s.clientUs).toFixed(1)} µs (${paired(name, 'clientUs', (a, b) => a - b).toFixed(2)})` +
      `  wall ${median(s.wallUs).toFixed(1)} µs  rate ${paired(name, 'wallUs', (a, b) => b / a).toFixed(3)}x`,
  );
}
