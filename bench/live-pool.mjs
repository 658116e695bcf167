// Live pool-bound overload benchmark (not a test), issue 9's setup: a node:http server whose handler
// spends 0.3 ms of CPU and then holds one of 8 pool slots for 20 ms (capacity ~394 req/s;
// bench/live-pool-server.mjs): a FIFO async pool (`--backend fifo`, the default) or a real
// `pg.Pool` of 8 running `SELECT pg_sleep(0.02)` (`--backend pg`; PostgreSQL at 127.0.0.1:5432,
// db test). Open-loop load from a separate process (the live harness's load generator: fixed
// schedule, latency from the intended send time, keep-alive connections opened first, client
// timeout 10 s), a fresh server per phase, side by side:
//   none                 no protection
//   fixed                a fixed concurrency limit (8) with an unbounded FIFO queue
//   toobusy, overload-protection, under-pressure
//                        the peers, as the live harness sets them up (their READMEs' settings)
//   spillway-known       the HTTP guard's `concurrency: { limit: 8 }`
//   spillway-adaptive    the HTTP guard's `concurrency: {}` (limit learned, Vegas; no maxConcurrent told)
//   spillway-governed    (on request) a Governor given to the guard, which feeds it, and
//                        `concurrency: { limit: 8, factor: governor }` (issue 10's pool-bound step:
//                        the factor's lowest value is reported as `min factor`)
//   spillway-pg          (pg backend, in the default modes there) spillway/pool's `guardPgPool`
//                        around the pg.Pool, 503 on PoolOverloadedError
//   spillway-defaults    (on request) the guard's defaults (governor + Shedder), no concurrency stage
// Phases (in units of the measured capacity): 3× for 20 s; a step 0.5× → 3× → 0.5× of 10 s each;
// 0.8× for 20 s. Reported per phase and mode (medians of --runs, default 3):
//   goodput    2xx answered within the client timeout during the overload (3× seconds), as a share
//              of capacity
//   p99        of those 2xx, from each request's intended send time
//   timeouts   client timeouts over the whole phase
//   switches   on/off transitions of "any request refused" in 100 ms slices (client completion time),
//              over the whole phase
//   late refusals (step)  refusals completed more than 2 s after the load fell; lastRefusalMs: the
//              last refusal after the fall, in ms; p99 after: 2xx p99 from 2 s after the fall
//   refusals (0.8×)       every 429/503 of the phase
// Writes bench/results/live-pool.json (live-pool-pg.json for pg) and prints markdown tables.
// Flags: --runs N, --time-scale K (multiplies every phase length; --quick = 1 run at 0.5),
// --modes a,b,..., --phases overload,step,below, --backend fifo|pg
// Needs dist/ and simulations/dist/ (npm run bench builds them).
import { fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const { runLoadProcess } = await import(join(root, 'simulations/dist/live/processes.js'));
const { LatencyHistogram } = await import(join(root, 'simulations/dist/live/histogram.js'));
const { fmt, gitHead, median, PEER_LABELS, round, sliceSwitches, writeResults } = await import(
  './live-common.mjs'
);

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    'time-scale': { type: 'string' },
    quick: { type: 'boolean' },
    modes: { type: 'string' },
    phases: { type: 'string' },
    concurrency: { type: 'string' },
    backend: { type: 'string' },
    'expose-gc': { type: 'boolean' },
  },
  strict: false,
});
const quick = values.quick === true;
const runsWanted = Number(values.runs ?? (quick ? 1 : 3));
const timeScale = Number(values['time-scale'] ?? (quick ? 0.5 : 1));
const backend = values.backend ?? 'fifo';
if (backend !== 'fifo' && backend !== 'pg') {
  console.error(`--backend: expected fifo or pg, got ${backend}`);
  process.exit(2);
}
const DEFAULT_MODES = [
  'none',
  'fixed',
  'toobusy',
  'overload-protection',
  'under-pressure',
  'spillway-known',
  'spillway-adaptive',
  ...(backend === 'pg' ? ['spillway-pg'] : []),
];
const modes = values.modes === undefined ? DEFAULT_MODES : values.modes.split(',');
const phaseNames = (values.phases ?? 'overload,step,below').split(',');
const TIMEOUT_MS = 10_000;
const SLICE_MS = 100;

/** Each phase: segments of [seconds, multiple of capacity]; `overload` marks the 3× segment. */
const PHASES = {
  overload: [{ sec: 20, x: 3, overload: true }],
  step: [
    { sec: 10, x: 0.5 },
    { sec: 10, x: 3, overload: true },
    { sec: 10, x: 0.5, after: true },
  ],
  below: [{ sec: 20, x: 0.8 }],
};

/** Uniform arrivals at each segment's rate: a fixed schedule (priority 'normal' for all). */
function schedule(segments, capacity) {
  const at = [];
  let t0 = 0;
  for (const s of segments) {
    const rate = s.x * capacity;
    const n = Math.round(rate * s.sec * timeScale);
    for (let k = 0; k < n; k++) at.push(t0 + (k * 1000) / rate);
    t0 += s.sec * timeScale * 1000;
  }
  return {
    atMs: Float64Array.from(at),
    source: new Uint16Array(at.length),
    priority: new Uint8Array(at.length).fill(1),
    durationSec: t0 / 1000,
  };
}

/** Extra options of the guard's `concurrency` in the Spillway modes (--concurrency JSON), to explore settings. */
const concurrencyExtra = values.concurrency === undefined ? undefined : JSON.parse(values.concurrency);

function spawnServer(mode) {
  const options = { mode, backend, ...(concurrencyExtra ? { concurrency: concurrencyExtra } : {}) };
  const child = fork(join(here, 'live-pool-server.mjs'), [JSON.stringify(options)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the ${mode} server exited early (${code})`)));
    child.on('message', (m) => {
      if (m.type !== 'ready') return;
      child.removeAllListeners('exit');
      resolve({
        port: m.port,
        stop: () =>
          new Promise((res) => {
            const timer = setTimeout(() => {
              child.kill('SIGKILL');
              res(null);
            }, 10_000);
            child.on('message', (s) => {
              if (s.type === 'stats') {
                clearTimeout(timer);
                res(s.stats);
              }
            });
            child.send({ type: 'stop' });
          }),
      });
    });
  });
}

/** Closed-loop capacity of the unprotected server (autocannon, 32 connections, 3 s). */
async function measureCapacity() {
  const autocannon = (await import('autocannon')).default;
  const server = await spawnServer('none');
  try {
    const r = await autocannon({ url: `http://127.0.0.1:${server.port}/`, connections: 32, duration: 3 });
    return r.requests.total / 3;
  } finally {
    await server.stop();
  }
}

async function runPhase(name, mode, capacity) {
  const segments = PHASES[name];
  const sched = schedule(segments, capacity);
  const server = await spawnServer(mode);
  let load;
  let stats;
  try {
    load = await runLoadProcess({
      port: server.port,
      traffic: sched,
      timeoutMs: TIMEOUT_MS,
      durationSec: sched.durationSec,
    });
  } finally {
    stats = await server.stop();
  }
  // Seconds of each segment (the schedule starts at a whole second; segment lengths are whole
  // seconds unless scaled, then rounded).
  let s0 = 0;
  const spans = segments.map((s) => {
    const span = { ...s, from: s0, to: s0 + s.sec * timeScale };
    s0 = span.to;
    return span;
  });
  const secs = load.seconds;
  const inSecs = (from, to) => secs.filter((x) => x.second >= Math.floor(from) && x.second < Math.ceil(to));
  const histOf = (list) => {
    const h = new LatencyHistogram();
    for (const x of list) h.merge(x.latencyOk);
    return h;
  };
  const over = spans.find((s) => s.overload);
  const out = {
    offered: load.scheduled,
    ok: load.totals.ok,
    refused: load.totals.r429 + load.totals.r503,
    timeouts: load.totals.timeouts,
    errors: load.totals.errors + load.totals.otherStatus,
    generatorLagP99Ms: round(load.p99SendLagMs),
    minFactor: stats?.minFactor ?? null,
    server: stats,
  };
  // The whole phase, including the drain (seconds after the schedule fold in).
  const all = histOf(secs);
  out.p99Ms = all.count > 0 ? round(all.percentile(99)) : null;
  out.p50Ms = all.count > 0 ? round(all.percentile(50)) : null;
  const slices = [];
  const nSlices = Math.max(load.refusedSlices.length, Math.ceil(sched.durationSec * 10));
  for (let i = 0; i < nSlices; i++) slices.push((load.refusedSlices[i] ?? 0) > 0);
  out.switches = sliceSwitches(slices);
  if (over) {
    const ovSecs = inSecs(over.from, over.to);
    const ok = ovSecs.reduce((a, x) => a + x.ok, 0);
    out.goodputShare = ok / ((over.to - over.from) * capacity);
    const h = histOf(ovSecs);
    out.overloadP99Ms = h.count > 0 ? round(h.percentile(99)) : null;
  }
  const after = spans.find((s) => s.after);
  if (after) {
    const fallMs = after.from * 1000;
    let last = null;
    let late = 0;
    for (let i = 0; i < load.refusedSlices.length; i++) {
      const c = load.refusedSlices[i] ?? 0;
      if (c === 0) continue;
      const atMs = (i + 1) * SLICE_MS; // the slice's end: an upper bound of when it happened
      if (atMs > fallMs) last = atMs - fallMs;
      if (i * SLICE_MS >= fallMs + 2000) late += c;
    }
    out.lastRefusalAfterFallMs = last;
    out.refusalsLaterThan2s = late;
    const h = histOf(inSecs(after.from + 2, after.to));
    out.p99After2sMs = h.count > 0 ? round(h.percentile(99)) : null;
  }
  return out;
}

const runs = [];
for (let run = 0; run < runsWanted; run++) {
  const loadBefore = loadavg();
  const capacity = await measureCapacity();
  console.log(
    `run ${run + 1}/${runsWanted}: capacity ${capacity.toFixed(0)} req/s (closed loop), load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')}`,
  );
  const results = {};
  for (const phase of phaseNames) {
    results[phase] = {};
    for (const mode of modes) {
      const r = await runPhase(phase, mode, capacity);
      results[phase][mode] = r;
      console.log(
        `  ${phase.padEnd(8)} ${mode.padEnd(18)} goodput ${r.goodputShare === undefined ? '   -  ' : `${(r.goodputShare * 100).toFixed(1).padStart(5)}%`}` +
          `  p99 ${String(r.overloadP99Ms ?? r.p99Ms).padStart(7)} ms  timeouts ${String(r.timeouts).padStart(5)}` +
          `  refused ${String(r.refused).padStart(5)}  switches ${String(r.switches).padStart(3)}` +
          (r.lastRefusalAfterFallMs !== undefined
            ? `  last refusal ${r.lastRefusalAfterFallMs} ms after the fall, ${r.refusalsLaterThan2s} later than 2 s, p99 after ${r.p99After2sMs} ms`
            : '') +
          (r.server?.finalLimit !== null && r.server?.finalLimit !== undefined
            ? `  limit ${r.server.limits.join(',')}`
            : '') +
          (r.server?.minFactor !== undefined && r.server?.minFactor !== null
            ? `  min factor ${r.server.minFactor.toFixed(3)}`
            : ''),
      );
    }
  }
  runs.push({ capacity, loadAverage: loadBefore, results });
}

const medians = {};
for (const phase of phaseNames) {
  medians[phase] = {};
  for (const mode of modes) {
    const pick = (k) => median(runs.map((r) => r.results[phase][mode][k]));
    medians[phase][mode] = {
      goodputShare: pick('goodputShare'),
      overloadP99Ms: pick('overloadP99Ms'),
      p99Ms: pick('p99Ms'),
      timeouts: pick('timeouts'),
      refused: pick('refused'),
      switches: pick('switches'),
      lastRefusalAfterFallMs: pick('lastRefusalAfterFallMs'),
      refusalsLaterThan2s: pick('refusalsLaterThan2s'),
      p99After2sMs: pick('p99After2sMs'),
      offered: pick('offered'),
      minFactor: pick('minFactor'),
    };
  }
}

const label = {
  ...PEER_LABELS,
  fixed: 'fixed limit 8, unbounded queue',
  'spillway-known': 'Spillway `concurrency: { limit: 8 }`',
  'spillway-adaptive': 'Spillway `concurrency: {}` (adaptive)',
  'spillway-pg': 'Spillway `guardPgPool(pool)` (limit 8)',
  'spillway-defaults': 'Spillway (defaults, no concurrency stage)',
  'spillway-governed': 'Spillway fed governor, `concurrency: { limit: 8, factor: governor }`',
};
const tables = [];
if (medians.overload) {
  tables.push(
    `3× capacity for ${20 * timeScale} s:\n`,
    '| mode | goodput (share of capacity) | p99 of 2xx (ms) | client timeouts | refused | on/off switches |',
    '|---|---:|---:|---:|---:|---:|',
    ...modes.map((m) => {
      const x = medians.overload[m];
      return `| ${label[m] ?? m} | ${fmt(x.goodputShare * 100, 1)}% | ${fmt(x.overloadP99Ms)} | ${fmt(x.timeouts)} | ${fmt(x.refused)} | ${fmt(x.switches)} |`;
    }),
  );
}
if (medians.step) {
  tables.push(
    `\nStep 0.5× → 3× → 0.5× (${10 * timeScale} s each):\n`,
    '| mode | goodput during 3× | p99 of 2xx (ms) | client timeouts | switches | last refusal after the fall (ms) | refusals > 2 s after | p99 from 2 s after (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...modes.map((m) => {
      const x = medians.step[m];
      return `| ${label[m] ?? m} | ${fmt(x.goodputShare * 100, 1)}% | ${fmt(x.overloadP99Ms)} | ${fmt(x.timeouts)} | ${fmt(x.switches)} | ${fmt(x.lastRefusalAfterFallMs)} | ${fmt(x.refusalsLaterThan2s)} | ${fmt(x.p99After2sMs)} |`;
    }),
  );
}
if (medians.below) {
  tables.push(
    `\n0.8× capacity for ${20 * timeScale} s:\n`,
    '| mode | refused | p99 of 2xx (ms) | client timeouts |',
    '|---|---:|---:|---:|',
    ...modes.map((m) => {
      const x = medians.below[m];
      return `| ${label[m] ?? m} | ${fmt(x.refused)} | ${fmt(x.p99Ms)} | ${fmt(x.timeouts)} |`;
    }),
  );
}
const governed = modes.filter((m) => phaseNames.some((p) => medians[p][m].minFactor !== null));
if (governed.length > 0) {
  tables.push(
    "\nThe governor's lowest factor (sampled every 250 ms; its floor is 0.05):\n",
    `| mode | ${phaseNames.join(' | ')} |`,
    `|---|${phaseNames.map(() => '---:').join('|')}|`,
    ...governed.map(
      (m) => `| ${label[m] ?? m} | ${phaseNames.map((p) => fmt(medians[p][m].minFactor, 3)).join(' | ')} |`,
    ),
  );
}
console.log(`\nMedians of ${runs.length} run(s), time scale ${timeScale}, backend ${backend}:\n`);
console.log(tables.join('\n'));

// The simulator's figures for the same phases (pool-bound.json's model, evenly spaced arrivals),
// beside the live medians, each within the tolerance of docs/pool.md › Simulator and live run.
const SIM_MODES = {
  'spillway-known': { scenario: 'pool-bound.json', concurrency: { limit: 8 } },
  'spillway-adaptive': { scenario: 'pool-bound.json', concurrency: {} },
  'spillway-governed': { scenario: 'pool-bound-governed.json', concurrency: { limit: 8, scaled: true } },
};
const simComparison = {};
if (backend === 'fifo' && phaseNames.length === 3) {
  const { loadScenario } = await import(join(root, 'simulations/dist/scenario.js'));
  const { simulatePoolPhases, comparePoolPhases, POOL_SIM_TOLERANCE } = await import(
    join(root, 'simulations/dist/pool-phases.js')
  );
  const rows = [];
  for (const [mode, { scenario, concurrency }] of Object.entries(SIM_MODES)) {
    if (!modes.includes(mode) || concurrencyExtra !== undefined) continue;
    const base = await loadScenario(join(root, 'simulations/scenarios', scenario));
    const sim = await simulatePoolPhases(base, { timeScale, concurrency });
    const m = medians;
    const live = {
      overload: { ...m.overload[mode], refused: m.overload[mode].refused ?? 0 },
      step: { ...m.step[mode], refused: m.step[mode].refused ?? 0 },
      below: { ...m.below[mode], refused: m.below[mode].refused ?? 0 },
    };
    const cmp = comparePoolPhases(sim, live);
    simComparison[mode] = { sim, comparison: cmp };
    for (const c of cmp) {
      rows.push(
        `| ${label[mode]} | ${c.phase} | ${c.figure} | ${fmt(c.sim, 3)} | ${fmt(c.live, 3)} | ±${c.tolerance} | ${c.within ? 'yes' : '**no**'} |`,
      );
    }
  }
  if (rows.length > 0) {
    console.log(
      [
        '\nSimulator (pool-bound.json, same phases) against live medians:\n',
        '| mode | phase | figure | sim | live | tolerance | within |',
        '|---|---|---|---:|---:|---:|---|',
        ...rows,
      ].join('\n'),
    );
    simComparison.tolerance = POOL_SIM_TOLERANCE;
  }
}

const resultsFile = backend === 'pg' ? 'live-pool-pg.json' : 'live-pool.json';
await writeResults(here, resultsFile, gitHead(root), {
  backend,
  timeScale,
  concurrency: concurrencyExtra ?? null,
  clientTimeoutMs: TIMEOUT_MS,
  runs,
  medians,
  simComparison,
});
console.log(`\nwrote bench/results/${resultsFile}`);
