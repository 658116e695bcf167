// Live overload benchmark (not a test): a real node:http server whose handler burns 2 ms of CPU per
// request, open-loop load from a separate process stepping from half its measured capacity to 3×
// for one episode and back, under no protection, Spillway, @fastify/under-pressure, toobusy-js and
// overload-protection (each set up as its README shows), in the same run. Repeated (--runs, default
// 3) and reported as medians.
//
// For each mode, over the overload episode:
//   goodput   2xx answered within the client timeout, as a share of the measured capacity
//   p99       of those 2xx, measured from each request's intended send time
//   switches  on/off transitions of "any request refused" in 100 ms slices, from the start of the
//             episode to the end of the run (2 is clean: on once, off once)
//
// Writes bench/results/live-overload.json and docs/img/live-overload.svg, prints a markdown table.
// Flags: --runs N, --episode-sec S (default 20), --quick (1 run, 8 s episode), --modes a,b,...
// Needs dist/ (npm run bench builds it).
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const { runLive, measureCapacity } = await import(join(root, 'simulations/dist/live/live.js'));
const { parseScenario } = await import(join(root, 'simulations/dist/scenario.js'));
const { renderChart } = await import(join(root, 'simulations/dist/chart.js'));
const { fmt, gitHead, median, PEER_LABELS, writeResults } = await import('./live-common.mjs');

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    'episode-sec': { type: 'string' },
    quick: { type: 'boolean' },
    modes: { type: 'string' },
    'expose-gc': { type: 'boolean' },
  },
  strict: false,
});
const quick = values.quick === true;
const runsWanted = Number(values.runs ?? (quick ? 1 : 3));
const episodeSec = Number(values['episode-sec'] ?? (quick ? 8 : 20));
const modes = (values.modes ?? 'none,spillway,under-pressure,toobusy,overload-protection').split(',');
const CPU_MS = 2;

// The step scenario, in units of capacity (scaled to the measured capacity at run time).
const baseSec = 5;
const afterSec = 10;
const scenario = parseScenario(
  {
    name: 'live-overload',
    description: `0.5x capacity for ${baseSec} s, 3x for ${episodeSec} s, 0.5x for ${afterSec} s; 2 ms CPU per request`,
    durationSec: baseSec + episodeSec + afterSec,
    seed: 1,
    capacityPerSec: 1000,
    server: { service: { kind: 'constant', ms: CPU_MS } },
    traffic: [
      {
        name: 'clients',
        pattern: 'step',
        basePerSec: 500,
        peakPerSec: 3000,
        stepStartSec: baseSec,
        stepEndSec: baseSec + episodeSec,
        arrivals: 'uniform',
        timeoutMs: 10_000,
      },
    ],
    modes: ['none', 'spillway'],
    report: { settleSec: afterSec },
  },
  'bench/live-overload.mjs',
);

// The commit the governor and shedder under test came from (dist/ is built from the working tree).
const commit = gitHead(root);
const runs = [];
let lastReports = [];
for (let run = 0; run < runsWanted; run++) {
  const load = loadavg()[0];
  const capacity = await measureCapacity({ cpuMs: CPU_MS, durationSec: 5 });
  console.log(
    `run ${run + 1}/${runsWanted}: capacity ${capacity.usedPerSec.toFixed(0)} req/s (${capacity.method}; ` +
      `the handler alone allows ${capacity.derivedPerSec.toFixed(0)}), load average ${load.toFixed(2)}`,
  );
  const results = {};
  const reports = [];
  for (const mode of modes) {
    const r = await runLive(scenario, { mode, cpuMs: CPU_MS, capacityPerSec: capacity.usedPerSec });
    const ep = r.summary.episodes[0];
    results[mode] = {
      goodputShare: ep.goodputShare,
      p99Ms: r.live.episodeLatency[0]?.p99Ms ?? null,
      p50Ms: r.live.episodeLatency[0]?.p50Ms ?? null,
      refusedP50Ms: r.live.episodeLatency[0]?.refusedP50Ms ?? null,
      refusedP99Ms: r.live.episodeLatency[0]?.refusedP99Ms ?? null,
      switches: r.live.sliceSwitches[0] ?? null,
      engageMs: ep.engageMs,
      recoverMs: ep.recoverMs,
      shedShare: r.summary.shedShare,
      timeouts: r.live.timeouts,
      errors: r.live.errors,
      generatorLagP99Ms: r.live.p99SendLagMs,
      connections: r.live.connections,
    };
    const x = results[mode];
    console.log(
      `  ${mode.padEnd(20)} goodput ${(x.goodputShare * 100).toFixed(1).padStart(5)}%  p99 ${String(x.p99Ms).padStart(8)} ms  ` +
        `p50 2xx ${x.p50Ms} / refused ${x.refusedP50Ms} ms (p99 ${x.refusedP99Ms})  ` +
        `switches ${String(x.switches).padStart(3)}  timeouts ${x.timeouts}  generator lag p99 ${x.generatorLagP99Ms} ms`,
    );
    reports.push(r);
  }
  runs.push({ capacity, loadAverage: load, results });
  lastReports = reports;
}

const medians = {};
for (const mode of modes) {
  const pick = (k) => median(runs.map((r) => r.results[mode][k]));
  medians[mode] = {
    goodputShare: pick('goodputShare'),
    p99Ms: pick('p99Ms'),
    p50Ms: pick('p50Ms'),
    refusedP50Ms: pick('refusedP50Ms'),
    refusedP99Ms: pick('refusedP99Ms'),
    switches: pick('switches'),
    engageMs: pick('engageMs'),
    recoverMs: pick('recoverMs'),
    timeouts: pick('timeouts'),
  };
}

const peers = modes.filter((m) => m !== 'none' && m !== 'spillway');
const sp = medians['spillway'];
let targets = null;
if (sp && peers.length > 0) {
  const bestGoodput = Math.max(...peers.map((m) => medians[m].goodputShare ?? 0));
  const bestP99 = Math.min(...peers.map((m) => medians[m].p99Ms ?? Infinity));
  targets = {
    goodputAtLeast95: { value: sp.goodputShare, target: 0.95, met: sp.goodputShare >= 0.95 },
    goodputAtLeastBestPeer: {
      value: sp.goodputShare,
      target: bestGoodput,
      met: sp.goodputShare >= bestGoodput,
    },
    p99AtMostHalfBestPeer: {
      value: sp.p99Ms,
      target: bestP99 / 2,
      met: sp.p99Ms !== null && sp.p99Ms <= bestP99 / 2,
    },
    switchesAtMost2: { value: sp.switches, target: 2, met: sp.switches !== null && sp.switches <= 2 },
    refusalsNoSlowerP50: {
      value: sp.refusedP50Ms,
      target: sp.p50Ms ?? 0,
      met: sp.refusedP50Ms !== null && sp.p50Ms !== null && sp.refusedP50Ms <= sp.p50Ms,
    },
  };
}

const label = { ...PEER_LABELS, spillway: 'Spillway (defaults)' };
const lines = [
  '| mode | goodput (share of capacity) | p99 of 2xx (ms) | p50 of 2xx / of refusals (ms) | on/off switches | time to engage (ms) | client timeouts |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...modes.map((m) => {
    const x = medians[m];
    return `| ${label[m] ?? m} | ${fmt(x.goodputShare * 100, 1)}% | ${fmt(x.p99Ms)} | ${fmt(x.p50Ms)} / ${fmt(x.refusedP50Ms)} | ${fmt(x.switches)} | ${fmt(x.engageMs)} | ${fmt(x.timeouts)} |`;
  }),
];
console.log(`\nMedians of ${runs.length} run(s), ${episodeSec} s episode at 3x capacity:\n`);
console.log(lines.join('\n'));
if (targets) {
  console.log('\nSpillway targets:');
  for (const [k, t] of Object.entries(targets)) {
    console.log(
      `  ${t.met ? 'met   ' : 'MISSED'} ${k}: ${typeof t.value === 'number' ? t.value.toFixed(3) : t.value} (target ${t.target.toFixed(3)})`,
    );
  }
}

await writeResults(here, 'live-overload.json', commit, {
  cpuMs: CPU_MS,
  episodeSec,
  scenario: scenario.description,
  modes,
  runs,
  medians,
  targets,
  table: lines.join('\n'),
});
await mkdir(join(root, 'docs', 'img'), { recursive: true });
await writeFile(join(root, 'docs', 'img', 'live-overload.svg'), await renderChart(lastReports));
console.log('\nWrote bench/results/live-overload.json and docs/img/live-overload.svg');
