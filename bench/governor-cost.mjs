// The governor's own cost: the built governor with all default signals at the default interval,
// on the real clock, in an otherwise idle process. Two measures, as a share of one core:
//   1. time inside tick() (performance.now() around each call: sampling every signal, smoothing,
//      the controller, events), over the wall time;
//   2. process CPU (process.cpuUsage: all threads, so it includes the signals' background work such
//      as the event-loop-delay histogram's timer) while the governor runs, minus the same measure
//      over an idle period of the same length with no governor (the baseline).
// For attribution it also measures the signals started but never sampled (their background work
// alone: the event-loop-delay histogram's libuv timer fires every resolutionMs) and the time each
// signal's sample() takes inside the ticks.
// Target: < 0.5% of one core. Build first: npx tsc -p tsconfig.build.json (npm run bench does).
// Usage: node bench/governor-cost.mjs [--quick] [--seconds=N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { createGovernor, GOVERNOR_DEFAULTS } = await import('../dist/governor/index.js');
const { defaultSignals } = await import('../dist/signals/index.js');

const quick = process.argv.includes('--quick');
const secondsArg = process.argv.find((a) => a.startsWith('--seconds='));
const seconds = secondsArg ? Number(secondsArg.split('=')[1]) : quick ? 2 : 10;
const durationMs = seconds * 1000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const cpuMs = (u) => (u.user + u.system) / 1000;

/** Process CPU and wall time over `ms` of doing nothing but what is already scheduled. */
async function measure(ms) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(ms);
  const wall = performance.now() - t0;
  return { cpuMs: cpuMs(process.cpuUsage(c0)), wallMs: wall };
}

// Settle: let module loading and JIT of this script finish before anything is measured.
await sleep(500);
const baseline = await measure(durationMs);

// The signals' background work alone: started, never sampled.
const idleSignals = defaultSignals();
for (const s of idleSignals) s.start?.();
const background = await measure(durationMs);
for (const s of idleSignals) s.stop?.();

// The default signals, each sample() timed; otherwise exactly what createGovernor() builds.
const sampleMs = new Map();
const signals = defaultSignals().map((s) => {
  const sample = s.sample.bind(s);
  sampleMs.set(s.name, 0);
  s.sample = (now) => {
    const t0 = performance.now();
    try {
      return sample(now);
    } finally {
      sampleMs.set(s.name, sampleMs.get(s.name) + performance.now() - t0);
    }
  };
  return s;
});
const governor = createGovernor({ signals }); // default interval and options, systemClock
const originalTick = governor.tick.bind(governor);
let tickMs = 0;
let ticks = 0;
let maxTickMs = 0;
governor.tick = () => {
  const t0 = performance.now();
  originalTick();
  const dt = performance.now() - t0;
  tickMs += dt;
  ticks++;
  if (dt > maxTickMs) maxTickMs = dt;
};
let signalErrors = 0;
governor.on('signalError', () => signalErrors++);
governor.start();
const running = await measure(durationMs);
const snapshot = governor.snapshot();
governor.stop();

const share = (ms, wall) => (100 * ms) / wall;
const result = {
  bench: 'governor-cost',
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  seconds,
  intervalMs: GOVERNOR_DEFAULTS.intervalMs,
  signals: governor.options.signals.map((s) => s.name),
  ticks,
  meanTickUs: ticks > 0 ? (1000 * tickMs) / ticks : 0,
  maxTickUs: 1000 * maxTickMs,
  tickSharePercentOfCore: share(tickMs, running.wallMs),
  meanSampleUs: Object.fromEntries([...sampleMs].map(([k, v]) => [k, ticks > 0 ? (1000 * v) / ticks : 0])),
  baselineCpuPercentOfCore: share(baseline.cpuMs, baseline.wallMs),
  signalsBackgroundCpuPercentOfCore:
    share(background.cpuMs, background.wallMs) - share(baseline.cpuMs, baseline.wallMs),
  runningCpuPercentOfCore: share(running.cpuMs, running.wallMs),
  governorCpuPercentOfCore: share(running.cpuMs, running.wallMs) - share(baseline.cpuMs, baseline.wallMs),
  targetPercentOfCore: 0.5,
  signalErrors,
  finalState: snapshot.state,
  finalFactor: snapshot.factor,
};
result.withinTarget =
  result.tickSharePercentOfCore < result.targetPercentOfCore &&
  result.governorCpuPercentOfCore < result.targetPercentOfCore;

const f = (n, d = 3) => n.toFixed(d);
console.log(
  `governor cost over ${seconds} s at ${result.intervalMs} ms (${result.signals.join(', ')}):\n` +
    `  ${ticks} ticks, mean ${f(result.meanTickUs, 1)} µs, max ${f(result.maxTickUs, 1)} µs per tick\n` +
    `  inside tick(): ${f(result.tickSharePercentOfCore, 4)}% of one core\n` +
    `  process CPU: ${f(result.runningCpuPercentOfCore)}% running vs ${f(result.baselineCpuPercentOfCore)}% idle baseline ` +
    `→ governor ${f(result.governorCpuPercentOfCore)}% of one core (target < 0.5%)\n` +
    `  of which the signals' background work alone: ${f(result.signalsBackgroundCpuPercentOfCore)}%\n` +
    `  mean sample() per tick: ${Object.entries(result.meanSampleUs)
      .map(([k, v]) => `${k} ${f(v, 1)} µs`)
      .join(', ')}`,
);
const outFile = join(here, 'results', quick ? 'governor-cost.tmp.json' : 'governor-cost.json');
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
console.log(`wrote ${outFile}`);
