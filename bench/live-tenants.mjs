// Live tenants benchmark (not a test): does the governor's factor, fed by the HTTP guard's refusal
// share, cut the heavy tenant first while the light ones keep what they send? Side by side with
// the same guard not feeding its governor, no protection, and the peers.
//
// The live harness of bench/live-overload.mjs (simulations/src/live): a real node:http server in
// its own process, its handler burning 2 ms of CPU per request; capacity measured first with
// autocannon (closed loop, 16 connections, 5 s, unprotected); open-loop load from another process
// (keep-alive connections opened first, 2x the peak rate; latency from each request's intended
// send time; 5 s client timeout). Three tenants (the `x-source` header), uniform arrivals, each
// within its own quota: heavy 1.8x capacity, light 0.3x, lighter 0.15x (2.25x in all; --total
// scales the three), after 3 s at 0.5x and before 5 s at 0.5x.
//
// Modes:
//   feed    Spillway: a per-tenant limiter (quota 2x capacity each, burst capacity/5, scaled by the
//           governor's factor), the loop-turn budget (25 ms), no Shedder, and a Governor with its
//           default signals (warm-up 1 s) that the guard feeds its refusal share (the default)
//   nofeed  the same with `feedGovernor: false` (the factor stays at 1: the turn budget alone)
//   none, under-pressure, toobusy, overload-protection   as bench/live-overload.mjs sets them up
// (--shedder adds a Shedder to the Spillway modes: it binds before the quotas and refuses every
// tenant alike.)
//
// Per mode, over the overload (requests by their intended send time): each tenant's share answered
// 2xx in time, goodput (2xx per second over capacity), p99 and p50 of the 2xx and p50 / p99 of the
// refusals (429 and 503, from the intended send time), the lowest factor, on/off switches of "any
// request refused" in 100 ms slices from the overload's start to the end of the run (2 is clean),
// refusals outside the overload, client timeouts. Repeated --runs N times (default 3), medians.
// Writes bench/results/live-tenants.json (bench/results/live-tenants-0.8.json for --total 0.8,
// and so on; -tb20 for --turn-budget-ms 20, -40s for --overload-sec 40), prints markdown tables.
// Flags: --runs N, --overload-sec S (default 15), --modes a,b,..., --total X (default 2.25; 0.8
// checks that nothing is refused below capacity), --capacity N (req/s: skip the measurement),
// --shedder, --turn-budget-ms N (the Spillway modes' loop-turn budget, default 25), --quick (1 run,
// a 6 s overload: a smoke run, written to live-tenants-6s.json). Needs dist/ and simulations/dist/ (npm run build).
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const { runLive, measureCapacity } = await import(join(root, 'simulations/dist/live/live.js'));
const { parseScenario } = await import(join(root, 'simulations/dist/scenario.js'));
const { fmt, gitHead, median, PEER_LABELS, writeResults } = await import('./live-common.mjs');

const CPU_MS = 2;
const MODES = ['feed', 'nofeed', 'none', 'under-pressure', 'toobusy', 'overload-protection'];
const TENANTS = [
  { name: 'heavy', base: 0.3, peak: 1.8 },
  { name: 'light', base: 0.13, peak: 0.3 },
  { name: 'lighter', base: 0.07, peak: 0.15 },
];
const BASE_SEC = 3;
const AFTER_SEC = 5;

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    'overload-sec': { type: 'string' },
    modes: { type: 'string' },
    capacity: { type: 'string' },
    shedder: { type: 'boolean' },
    total: { type: 'string' },
    'turn-budget-ms': { type: 'string' },
    quick: { type: 'boolean' },
  },
  strict: true,
});
const quick = values.quick === true;
const runsWanted = Number(values.runs ?? (quick ? 1 : 3));
if (!Number.isInteger(runsWanted) || runsWanted < 1)
  throw new Error(`--runs: expected an integer >= 1, got ${values.runs}`);
const overloadSec = Number(values['overload-sec'] ?? (quick ? 6 : 15));
if (!(overloadSec >= 2))
  throw new Error(`--overload-sec: expected a number >= 2, got ${values['overload-sec']}`);
const total = Number(values.total ?? 2.25);
if (!(total > 0)) throw new Error(`--total: expected a number > 0, got ${values.total}`);
const givenCapacity = values.capacity === undefined ? undefined : Number(values.capacity);
if (givenCapacity !== undefined && !(givenCapacity > 0))
  throw new Error(`--capacity: expected a number > 0, got ${values.capacity}`);
const modes = (values.modes ?? MODES.join(',')).split(',');
for (const m of modes)
  if (!MODES.includes(m)) throw new Error(`--modes: expected some of ${MODES.join(', ')}, got ${m}`);
const withShedder = values.shedder === true;
const turnBudgetMs = Number(values['turn-budget-ms'] ?? 25);
if (!(turnBudgetMs > 0))
  throw new Error(`--turn-budget-ms: expected a number > 0, got ${values['turn-budget-ms']}`);
const scale = total / 2.25;

// The schedule in units of a nominal capacity of 1,000/s (runLive scales it to the measured one).
const scenario = parseScenario(
  {
    name: 'live-tenants',
    description: `heavy ${(1.8 * scale).toFixed(2)}x, light ${(0.3 * scale).toFixed(2)}x, lighter ${(0.15 * scale).toFixed(2)}x of capacity for ${overloadSec} s, after ${BASE_SEC} s and before ${AFTER_SEC} s at 0.5x; 2 ms CPU per request`,
    durationSec: BASE_SEC + overloadSec + AFTER_SEC,
    seed: 1,
    capacityPerSec: 1000,
    server: { service: { kind: 'constant', ms: CPU_MS } },
    traffic: TENANTS.map((t) => ({
      name: t.name,
      pattern: 'step',
      basePerSec: 1000 * t.base,
      peakPerSec: 1000 * t.peak * scale,
      stepStartSec: BASE_SEC,
      stepEndSec: BASE_SEC + overloadSec,
      arrivals: 'uniform',
      timeoutMs: 5000,
    })),
    modes: ['none', 'spillway'],
    report: { settleSec: AFTER_SEC },
    spillway: { governor: { warmupMs: 1000 }, ...(withShedder ? {} : { shedder: false }) },
  },
  'bench/live-tenants.mjs',
);

const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const pct = (x) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

/** One mode's figures from one live report. */
function figures(mode, r, capacity) {
  const from = BASE_SEC;
  const to = BASE_SEC + overloadSec;
  const within = (arr) => sum(arr.slice(from, to));
  const outside = (arr) => sum(arr) - within(arr);
  const tenants = {};
  let refusedOutside = 0;
  for (const s of r.live.sources) {
    const p = s.perSecond;
    const sent = within(p.scheduled);
    tenants[s.name] = {
      sent,
      share: sent > 0 ? within(p.ok) / sent : null,
      r429: within(p.r429),
      r503: within(p.r503),
      timeouts: within(p.timeouts),
    };
    refusedOutside += outside(p.r429) + outside(p.r503);
  }
  const okInOverload = sum(r.live.sources.map((s) => within(s.perSecond.ok)));
  const lat = r.live.episodeLatency[0];
  // Below capacity (--total 0.8) there is no overload episode: the worst second's p99 instead.
  const worstSecondP99 = Math.max(0, ...r.series.slice(from, to).map((p) => p.p99Ms ?? 0));
  const byStage = {};
  for (const d of r.live.decisions) {
    if (d === null) continue;
    for (const [k, v] of Object.entries(d.refused)) byStage[k] = (byStage[k] ?? 0) + v;
  }
  return {
    tenants,
    goodputShare: okInOverload / overloadSec / capacity,
    p99Ms: lat?.p99Ms ?? worstSecondP99,
    p50Ms: lat?.p50Ms ?? null,
    refusedP50Ms: lat?.refusedP50Ms ?? null,
    refusedP99Ms: lat?.refusedP99Ms ?? null,
    switches: r.live.sliceSwitches[0] ?? null,
    refusedOutside,
    refusedInOverload: sum(Object.values(tenants).map((t) => t.r429 + t.r503)),
    timeouts: r.live.timeouts,
    factorMin: mode === 'feed' || mode === 'nofeed' ? r.summary.minFactor : null,
    factorChanges: r.factorChanges.length,
    factorTrace: r.factorChanges
      .filter((c, i, a) => i === 0 || Math.abs(c.factor - a[i - 1].factor) >= 0.02)
      .map((c) => `${(c.atMs / 1000).toFixed(1)}s:${c.factor.toFixed(2)}`)
      .join(' '),
    byStage,
    generatorLagP99Ms: r.live.p99SendLagMs,
    // The server's longest event-loop delay in each second of the overload (its longest turn, as
    // monitorEventLoopDelay at 10 ms resolution sees it): the median second and the worst.
    loopDelayMaxMs: median(r.series.slice(from, to).map((p) => p.maxWaitMs)),
    loopDelayWorstMs: Math.max(0, ...r.series.slice(from, to).map((p) => p.maxWaitMs)),
    connections: r.live.connections,
  };
}

const commit = gitHead(root);
const runs = [];
for (let run = 0; run < runsWanted; run++) {
  const load = loadavg()[0];
  const capacity =
    givenCapacity === undefined
      ? await measureCapacity({ cpuMs: CPU_MS, durationSec: 5 })
      : { measuredPerSec: null, derivedPerSec: 1000 / CPU_MS, usedPerSec: givenCapacity, method: 'given' };
  const cap = capacity.usedPerSec;
  console.log(
    `run ${run + 1}/${runsWanted}: capacity ${cap.toFixed(0)} req/s (${capacity.method}), load average ${load.toFixed(2)}`,
  );
  const results = {};
  for (const mode of modes) {
    const spillway = mode === 'feed' || mode === 'nofeed';
    const r = await runLive(scenario, {
      mode: spillway ? 'spillway' : mode,
      cpuMs: CPU_MS,
      capacityPerSec: cap,
      ...(spillway
        ? {
            server: {
              guard: {
                keyLimit: { ratePerSec: 2 * cap, burst: cap / 5 },
                turnBudgetMs,
                ...(withShedder ? {} : { noShedder: true }),
                feedGovernor: mode === 'feed',
              },
            },
          }
        : {}),
    });
    const x = figures(mode, r, cap);
    results[mode] = x;
    const t = (n) => `${n} ${pct(x.tenants[n]?.share)}`;
    console.log(
      `  ${mode.padEnd(20)} ${t('heavy')}  ${t('light')}  ${t('lighter')}  goodput ${pct(x.goodputShare)}  p99 ${fmt(x.p99Ms, 1)} ms  ` +
        `p50 2xx ${fmt(x.p50Ms, 1)} / refused ${fmt(x.refusedP50Ms, 1)} ms  factor min ${fmt(x.factorMin, 2)}  switches ${x.switches}  ` +
        `refused outside ${x.refusedOutside}  timeouts ${x.timeouts}  generator lag p99 ${x.generatorLagP99Ms} ms  ` +
        `server loop delay max/s ${fmt(x.loopDelayMaxMs, 1)} ms (worst ${fmt(x.loopDelayWorstMs, 1)})`,
    );
    if (x.factorTrace) console.log(`    factor: ${x.factorTrace}`);
    if (Object.keys(x.byStage).length > 0)
      console.log(
        `    refused by stage: ${Object.entries(x.byStage)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
  }
  runs.push({ capacity, loadAverage: load, results });
}

const medians = {};
for (const mode of modes) {
  const pick = (f) => median(runs.map((r) => f(r.results[mode])));
  medians[mode] = {
    tenants: Object.fromEntries(
      TENANTS.map((t) => [
        t.name,
        {
          share: pick((x) => x.tenants[t.name]?.share),
          r429: pick((x) => x.tenants[t.name]?.r429),
          r503: pick((x) => x.tenants[t.name]?.r503),
          timeouts: pick((x) => x.tenants[t.name]?.timeouts),
        },
      ]),
    ),
    goodputShare: pick((x) => x.goodputShare),
    p99Ms: pick((x) => x.p99Ms),
    p50Ms: pick((x) => x.p50Ms),
    refusedP50Ms: pick((x) => x.refusedP50Ms),
    refusedP99Ms: pick((x) => x.refusedP99Ms),
    switches: pick((x) => x.switches),
    refusedInOverload: pick((x) => x.refusedInOverload),
    refusedOutside: pick((x) => x.refusedOutside),
    timeouts: pick((x) => x.timeouts),
    factorMin: pick((x) => x.factorMin),
    generatorLagP99Ms: pick((x) => x.generatorLagP99Ms),
    loopDelayMaxMs: pick((x) => x.loopDelayMaxMs),
    loopDelayWorstMs: pick((x) => x.loopDelayWorstMs),
  };
}

const label = { ...PEER_LABELS, feed: 'Spillway, fed (default)', nofeed: 'Spillway, not fed' };
const share = (m, t) => pct(medians[m].tenants[t].share);
const lines = [
  '| mode | heavy | light | lighter | goodput | p99 2xx (ms) | p50 2xx / refused (ms) | factor min | switches | refused (overload / outside) | timeouts |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...modes.map((m) => {
    const x = medians[m];
    return `| ${label[m] ?? m} | ${share(m, 'heavy')} | ${share(m, 'light')} | ${share(m, 'lighter')} | ${pct(x.goodputShare)} | ${fmt(x.p99Ms)} | ${fmt(x.p50Ms, 1)} / ${fmt(x.refusedP50Ms, 1)} | ${fmt(x.factorMin, 2)} | ${fmt(x.switches)} | ${fmt(x.refusedInOverload)} / ${fmt(x.refusedOutside)} | ${fmt(x.timeouts)} |`;
  }),
];
console.log(
  `\nMedians of ${runs.length} run(s); ${scenario.description}; capacity ${runs.map((r) => r.capacity.usedPerSec.toFixed(0)).join(', ')} req/s; load average ${runs.map((r) => r.loadAverage.toFixed(2)).join(', ')}:\n`,
);
console.log(lines.join('\n'));
console.log(
  `\nGenerator lag p99 / server loop delay (median second's max, worst second) per mode: ${modes
    .map(
      (m) =>
        `${m} ${fmt(medians[m].generatorLagP99Ms, 1)} / ${fmt(medians[m].loopDelayMaxMs, 1)}, ${fmt(medians[m].loopDelayWorstMs, 1)} ms`,
    )
    .join('; ')}`,
);

const name = `live-tenants${total === 2.25 ? '' : `-${total}`}${turnBudgetMs === 25 ? '' : `-tb${turnBudgetMs}`}${overloadSec === 15 ? '' : `-${overloadSec}s`}`;
await writeResults(here, `${name}.json`, commit, {
  cpuMs: CPU_MS,
  overloadSec,
  total,
  shedder: withShedder,
  turnBudgetMs,
  scenario: scenario.description,
  modes,
  runs,
  medians,
  table: lines.join('\n'),
  loadAverageAfter: loadavg()[0],
});
console.log(
  `\nload average after: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}; wrote bench/results/${name}.json`,
);
