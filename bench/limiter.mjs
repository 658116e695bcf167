// Decision cost and heap per key of Spillway's keyed limiter, side by side in the same run with a
// minimal hand-written token bucket (the floor) and rate-limiter-flexible's RateLimiterMemory.
// Reported as ratios to the floor; medians of interleaved rounds (the machine is shared and noisy).
//
//   node bench/limiter.mjs [--rounds 7] [--quick]
//
// Needs `npm run build` first (it imports dist/). Writes bench/results/limiter.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const rounds = Number(args[args.indexOf('--rounds') + 1]) || (quick ? 3 : 7);
const OPS = quick ? 200_000 : 1_000_000;

// --- heap per key, measured in a child process of its own per implementation -------------------
if (args[0] === '--heap') {
  await heapChild(args[1], Number(args[2]));
  process.exit(0);
}

const { createLimiter } = await import('../dist/index.js');
const { RateLimiterMemory } = await import('rate-limiter-flexible');

/** The floor: the least a correct lazy token bucket per key can do. */
function minimalBucket(ratePerSec, burst) {
  const map = new Map();
  const perMs = ratePerSec / 1000;
  return {
    take(key) {
      const now = performance.now();
      let b = map.get(key);
      if (b === undefined) {
        b = { tokens: burst, last: now };
        map.set(key, b);
      } else {
        b.tokens = Math.min(burst, b.tokens + (now - b.last) * perMs);
        b.last = now;
      }
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return true;
      }
      return false;
    },
  };
}

/**
 * The floor with the same answer Spillway gives: a decision value (allowed, remaining, limit, exact
 * retry and reset times) instead of a boolean. Shows how much of the gap is the answer itself.
 */
function minimalDecisionBucket(ratePerSec, burst) {
  const map = new Map();
  const perMs = ratePerSec / 1000;
  return {
    take(key) {
      const now = performance.now();
      let b = map.get(key);
      if (b === undefined) {
        b = { tokens: burst, last: now };
        map.set(key, b);
      } else {
        b.tokens = Math.min(burst, b.tokens + (now - b.last) * perMs);
        b.last = now;
      }
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return {
          allowed: true,
          remaining: b.tokens,
          limit: burst,
          retryAfterMs: 0,
          resetMs: (burst - b.tokens) / perMs,
        };
      }
      return {
        allowed: false,
        remaining: b.tokens,
        limit: burst,
        retryAfterMs: (1 - b.tokens) / perMs,
        resetMs: (burst - b.tokens) / perMs,
      };
    },
  };
}

function keys(n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = `user:${i}`;
  return out;
}

// Admitted: a rate so high the bucket never runs dry. Refused: burst 1, a rate so low it never refills.
const ADMIT = { ratePerSec: 1e9, burst: 1e9 };
const REFUSE = { ratePerSec: 1e-6, burst: 1 };

function makeSync(kind, cfg, keyCount) {
  if (kind === 'spillway') {
    const l = createLimiter({ ...cfg, maxKeys: Math.max(keyCount, 1) });
    return (k) => l.take(k).allowed;
  }
  if (kind === 'decision') {
    const m = minimalDecisionBucket(cfg.ratePerSec, cfg.burst);
    return (k) => m.take(k).allowed;
  }
  const m = minimalBucket(cfg.ratePerSec, cfg.burst);
  return (k) => m.take(k);
}

function timeSync(take, ks) {
  const n = ks.length;
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < OPS; i++) if (take(ks[i % n])) sink++;
  const t1 = performance.now();
  if (sink < 0) console.log(sink);
  return ((t1 - t0) * 1e6) / OPS;
}

async function timeRlf(cfg, ks) {
  const points = cfg === ADMIT ? 1e9 : 1;
  const l = new RateLimiterMemory({ points, duration: cfg === ADMIT ? 1 : 3600 });
  const n = ks.length;
  const ops = Math.min(OPS, 200_000);
  for (let i = 0; i < n; i++) await l.consume(ks[i]).catch(() => {}); // warm: create every key
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) {
    try {
      await l.consume(ks[i % n]);
    } catch {}
  }
  const t1 = performance.now();
  return ((t1 - t0) * 1e6) / ops;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const workloads = [
  { name: 'hot key, admitted', cfg: ADMIT, keyCount: 1 },
  { name: 'hot key, refused', cfg: REFUSE, keyCount: 1 },
  { name: '100k keys, admitted', cfg: ADMIT, keyCount: 100_000 },
  { name: '100k keys, refused', cfg: REFUSE, keyCount: 100_000 },
];

const results = [];
for (const w of workloads) {
  const ks = keys(w.keyCount);
  const samples = { spillway: [], minimal: [], decision: [], rlf: [] };
  // Warm both implementations (JIT, and every key created) before measuring.
  const impl = {
    spillway: makeSync('spillway', w.cfg, w.keyCount),
    minimal: makeSync('minimal', w.cfg, w.keyCount),
    decision: makeSync('decision', w.cfg, w.keyCount),
  };
  for (const k of ks) {
    impl.spillway(k);
    impl.minimal(k);
    impl.decision(k);
  }
  timeSync(impl.decision, ks);
  timeSync(impl.spillway, ks);
  timeSync(impl.minimal, ks);
  for (let r = 0; r < rounds; r++) {
    // Interleave so that a noisy moment hits both alike.
    samples.spillway.push(timeSync(impl.spillway, ks));
    samples.minimal.push(timeSync(impl.minimal, ks));
    samples.decision.push(timeSync(impl.decision, ks));
  }
  for (let r = 0; r < Math.min(rounds, 3); r++) samples.rlf.push(await timeRlf(w.cfg, ks));
  const row = {
    workload: w.name,
    spillwayNs: median(samples.spillway),
    minimalNs: median(samples.minimal),
    minimalDecisionNs: median(samples.decision),
    rlfNs: median(samples.rlf),
  };
  row.ratioToMinimal = row.spillwayNs / row.minimalNs;
  row.rlfRatioToMinimal = row.rlfNs / row.minimalNs;
  row.ratioToMinimalDecision = row.spillwayNs / row.minimalDecisionNs;
  results.push(row);
}

// Heap per key at 1M keys, each implementation in a fresh process.
const HEAP_KEYS = quick ? 200_000 : 1_000_000;
const heap = {};
for (const kind of ['spillway', 'minimal', 'rlf']) {
  const out = execFileSync(
    process.execPath,
    [
      '--expose-gc',
      '--max-old-space-size=4096',
      fileURLToPath(import.meta.url),
      '--heap',
      kind,
      String(HEAP_KEYS),
    ],
    { encoding: 'utf8' },
  );
  heap[kind] = JSON.parse(out.trim().split('\n').pop()).bytesPerKey;
}

const admitted = results.filter((r) => r.workload.endsWith('admitted'));
const refused = results.filter((r) => r.workload.endsWith('refused'));
const summary = {
  date: new Date().toISOString(),
  node: process.version,
  rounds,
  opsPerRound: OPS,
  results,
  heapBytesPerKey: { keys: HEAP_KEYS, ...heap },
  targets: {
    'decision within 1.2x of minimal (worst workload)': Math.max(...results.map((r) => r.ratioToMinimal)),
    'refused / admitted (hot key)': refused[0].spillwayNs / admitted[0].spillwayNs,
    'refused / admitted (100k keys)': refused[1].spillwayNs / admitted[1].spillwayNs,
    'heap bytes per key at 1M keys (target <= 48)': heap.spillway,
  },
};

console.log(
  `\nKeyed limiter decision cost (ns/op, median of ${rounds} rounds of ${OPS.toLocaleString()} ops)`,
);
console.table(
  results.map((r) => ({
    workload: r.workload,
    'spillway ns': r.spillwayNs.toFixed(1),
    'minimal ns': r.minimalNs.toFixed(1),
    'minimal+decision ns': r.minimalDecisionNs.toFixed(1),
    'rate-limiter-flexible ns': r.rlfNs.toFixed(1),
    'spillway / minimal': r.ratioToMinimal.toFixed(2),
    'spillway / minimal+decision': r.ratioToMinimalDecision.toFixed(2),
    'rlf / minimal': r.rlfRatioToMinimal.toFixed(2),
  })),
);
console.log(
  `Heap bytes per key at ${HEAP_KEYS.toLocaleString()} keys (V8 heap + array buffers, key strings excluded)`,
);
console.table(heap);
console.table(summary.targets);

mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', 'limiter.json'), `${JSON.stringify(summary, null, 2)}\n`);
console.log('wrote bench/results/limiter.json');

async function heapChild(kind, n) {
  const ks = keys(n); // the key strings exist before the baseline: only the limiter's own cost is counted
  // Modules load before the baseline too.
  const { createLimiter: create } = await import('../dist/index.js');
  const { RateLimiterMemory: R } = await import('rate-limiter-flexible');
  const gc = globalThis.gc;
  gc();
  gc();
  // Typed arrays keep their bytes outside the V8 heap: count them too (arrayBuffers).
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = used();
  let holder;
  if (kind === 'spillway') {
    holder = create({ ratePerSec: 1, burst: 10, maxKeys: n });
    for (const k of ks) holder.take(k);
  } else if (kind === 'minimal') {
    holder = minimalBucket(1, 10);
    for (const k of ks) holder.take(k);
  } else {
    holder = new R({ points: 10, duration: 3600 });
    for (const k of ks) await holder.consume(k);
  }
  gc();
  gc();
  const after = used();
  console.log(
    JSON.stringify({ kind, keys: n, bytesPerKey: (after - before) / n, alive: holder !== undefined }),
  );
}
