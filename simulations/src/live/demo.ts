/**
 * `npm run demo`: the live overload, phase after phase, each a real server process under real
 * open-loop load from another process (127.0.0.1 only), with three tenants of different rates
 * (simulations/scenarios/demo-tenants.json):
 *
 *   cpu-none       CPU-bound handler (2 ms), no protection
 *   cpu-spillway   the same behind the guard: a per-tenant limit scaled by the governor's factor, the
 *                  loop-turn budget, the guard feeding the governor its refusal share
 *   pool-none      pool-bound handler (0.3 ms CPU, then one of 8 async slots held 20 ms), no protection
 *   pool-spillway  the same behind the guard with its `concurrency` option (the pool's 8 slots), the
 *                  per-tenant limit and the turn budget; the governor also hears the queue time
 *
 * What acted in each phase is read from what the run recorded (the guard's `spillway:decision`
 * messages: refusals by stage and reason, the key limiter's factor, queue waits; the governor's
 * factor), never written by hand: `mechanisms` and `phaseLine` turn it into one line per phase, the
 * lines the README shows. `demoChartSpec` draws the phases on one time axis: requests, the factor,
 * the per-key quota and the queue time.
 */
import type { Scenario } from '../scenario.js';
import { type LiveOptions, type LiveReport, measureCapacity, runLive } from './live.js';
import type { LiveServerOptions } from './server.js';

export type DemoPhaseName = 'cpu-none' | 'cpu-spillway' | 'pool-none' | 'pool-spillway';

export interface DemoPhase {
  readonly name: DemoPhaseName;
  readonly title: string;
  readonly bound: 'cpu' | 'pool';
  readonly mode: 'none' | 'spillway';
}

export const DEMO_PHASES: readonly DemoPhase[] = Object.freeze([
  { name: 'cpu-none', title: 'CPU-bound, no protection', bound: 'cpu', mode: 'none' },
  { name: 'cpu-spillway', title: 'CPU-bound, Spillway', bound: 'cpu', mode: 'spillway' },
  { name: 'pool-none', title: 'pool-bound, no protection', bound: 'pool', mode: 'none' },
  {
    name: 'pool-spillway',
    title: 'pool-bound, Spillway with `concurrency`',
    bound: 'pool',
    mode: 'spillway',
  },
]);

/** The pool-bound handler: 8 async slots held 20 ms each after 0.3 ms of CPU (capacity ~400/s). */
export const DEMO_POOL = Object.freeze({ slots: 8, holdMs: 20, cpuMs: 0.3 });
/** CPU per request of the CPU-bound handler, in ms. */
export const DEMO_CPU_MS = 2;

export interface DemoOptions {
  /** Multiplies every time in the scenario (0.5: twice as fast). @default 1 */
  durationScale?: number;
  /** Skip the capacity measurements: the CPU-bound and pool-bound servers' capacities, in req/s. */
  capacityPerSec?: { cpu?: number; pool?: number };
  /** Which phases to run, in this order. @default all */
  phases?: readonly DemoPhaseName[];
  onProgress?: LiveOptions['onProgress'];
}

/** One mechanism that acted in a phase, with what the run recorded of it. */
export interface Mechanism {
  readonly kind: 'turn-budget' | 'key-limiter' | 'shedder' | 'concurrency' | 'governor-factor';
  /** Requests it refused (0 for the factor, which refuses through the other stages). */
  readonly refused: number;
  /** Its reasons (`limited`, `shed`, `queue-full`, `deadline`, `codel`...), with counts. */
  readonly reasons: Record<string, number>;
  /** Key limiter: the lowest share of its full quota the factor left it; governor: the lowest factor. */
  readonly lowest?: number;
}

export interface DemoPhaseReport {
  readonly phase: DemoPhase;
  readonly report: LiveReport;
  /** The full per-key quota in req/s at factor 1 (spillway phases), else null. */
  readonly keyRatePerSec: number | null;
  readonly mechanisms: readonly Mechanism[];
  /** The README line for the phase. */
  readonly line: string;
}

export interface DemoReport {
  readonly scenario: string;
  readonly capacityPerSec: { readonly cpu: number | null; readonly pool: number | null };
  readonly phases: readonly DemoPhaseReport[];
  readonly wallMs: number;
}

/** Runs the demo's phases one after another (see the module comment). */
export async function runDemo(scenario: Scenario, options: DemoOptions = {}): Promise<DemoReport> {
  const start = performance.now();
  const names = options.phases ?? DEMO_PHASES.map((p) => p.name);
  const phases = names.map((n) => {
    const p = DEMO_PHASES.find((x) => x.name === n);
    if (p === undefined) throw new RangeError(`unknown demo phase ${n}`);
    return p;
  });
  const capacity: { cpu: number | null; pool: number | null } = { cpu: null, pool: null };
  const capacityOf = async (bound: 'cpu' | 'pool'): Promise<number> => {
    const known = capacity[bound] ?? options.capacityPerSec?.[bound];
    if (known !== undefined && known !== null) {
      capacity[bound] = known;
      return known;
    }
    options.onProgress?.(0, 1, `measuring ${bound}-bound capacity`);
    const m = await measureCapacity(
      bound === 'cpu' ? { cpuMs: DEMO_CPU_MS } : { cpuMs: DEMO_POOL.cpuMs, pool: DEMO_POOL },
    );
    capacity[bound] = m.usedPerSec;
    return m.usedPerSec;
  };
  const out: DemoPhaseReport[] = [];
  for (const phase of phases) {
    const cap = await capacityOf(phase.bound);
    const server = serverFor(phase, cap);
    const report = await runLive(scenario, {
      mode: phase.mode,
      cpuMs: phase.bound === 'cpu' ? DEMO_CPU_MS : DEMO_POOL.cpuMs,
      capacityPerSec: cap,
      durationScale: options.durationScale ?? 1,
      server,
      ...(options.onProgress === undefined
        ? {}
        : { onProgress: (d, t, label) => options.onProgress!(d, t, `${phase.name} (${label})`) }),
    });
    const keyRatePerSec = server.guard?.keyLimit?.ratePerSec ?? null;
    const mechanisms = mechanismsOf(report);
    out.push({ phase, report, keyRatePerSec, mechanisms, line: phaseLine(phase, report, mechanisms) });
  }
  return {
    scenario: scenario.name,
    capacityPerSec: capacity,
    phases: out,
    wallMs: performance.now() - start,
  };
}

/**
 * The server of a phase. Spillway: a per-tenant quota of 2× capacity (every tenant is within it at
 * factor 1), bursts of capacity / 5, scaled by the factor; the loop-turn budget (25 ms); no Shedder
 * (its learned base sits near capacity and would refuse every tenant alike before the quotas
 * shrink); pool-bound, the guard's concurrency limit at the pool's size.
 */
function serverFor(phase: DemoPhase, capacity: number): Pick<LiveServerOptions, 'pool' | 'guard'> {
  const pool = phase.bound === 'pool' ? { slots: DEMO_POOL.slots, holdMs: DEMO_POOL.holdMs } : undefined;
  if (phase.mode === 'none') return pool === undefined ? {} : { pool };
  const guard = {
    keyLimit: { ratePerSec: 2 * capacity, burst: Math.max(1, capacity / 5) },
    turnBudgetMs: 25,
    noShedder: true,
    ...(pool === undefined ? {} : { concurrency: { limit: DEMO_POOL.slots } }),
  };
  return pool === undefined ? { guard } : { pool, guard };
}

/** What acted in a run, from its recorded decisions and factor (see Mechanism). */
export function mechanismsOf(report: LiveReport): Mechanism[] {
  const refused: Record<string, Record<string, number>> = {};
  let keyShare = Infinity;
  for (const d of report.live.decisions) {
    if (d === null) continue;
    for (const [k, n] of Object.entries(d.refused)) {
      const [stage = '', reason = ''] = k.split(':');
      const byReason = refused[stage] ?? {};
      byReason[reason] = (byReason[reason] ?? 0) + n;
      refused[stage] = byReason;
    }
    if (d.keyFactor !== null) keyShare = Math.min(keyShare, d.keyFactor);
  }
  const sum = (r: Record<string, number> | undefined) => Object.values(r ?? {}).reduce((a, b) => a + b, 0);
  const out: Mechanism[] = [];
  const stageKinds: [string, Mechanism['kind']][] = [
    ['turn-budget', 'turn-budget'],
    ['key', 'key-limiter'],
    ['shedder', 'shedder'],
    ['concurrency', 'concurrency'],
  ];
  for (const [stage, kind] of stageKinds) {
    const reasons = refused[stage];
    if (reasons === undefined || sum(reasons) === 0) continue;
    const m: Mechanism = { kind, refused: sum(reasons), reasons };
    out.push(kind === 'key-limiter' && Number.isFinite(keyShare) ? { ...m, lowest: keyShare } : m);
  }
  const minFactor = report.summary.minFactor;
  if (minFactor !== null && minFactor < 1) {
    out.push({ kind: 'governor-factor', refused: 0, reasons: {}, lowest: minFactor });
  }
  return out.sort((a, b) => b.refused - a.refused);
}

const pct = (x: number) => `${Math.round(x * 100)}%`;
const count = (n: number) => n.toLocaleString('en-US');

function describe(m: Mechanism): string {
  // The status each refusal got: the key limiter's own quota is a 429, its factor's cut (`shed`) and
  // every other stage's refusal a 503 (see buildRefusal).
  const status = (reason: string) => (m.kind === 'key-limiter' && reason !== 'shed' ? 429 : 503);
  const reasons = Object.entries(m.reasons)
    .sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `${count(n)} ${r} → ${status(r)}`)
    .join(', ');
  switch (m.kind) {
    case 'turn-budget':
      return `loop-turn budget (${reasons})`;
    case 'key-limiter':
      return m.lowest !== undefined && m.lowest < 1
        ? `key limiter with scaled quota (${reasons}; quota down to ${pct(m.lowest)})`
        : `key limiter at its full quota (${reasons})`;
    case 'shedder':
      return `shedder (${reasons})`;
    case 'concurrency':
      return `concurrency stage (${reasons})`;
    case 'governor-factor':
      return `governor factor (down to ${m.lowest!.toFixed(2)})`;
  }
}

/** One line for the README: the phase, what acted (or that nothing did), and what each tenant kept. */
export function phaseLine(phase: DemoPhase, report: LiveReport, mechanisms: readonly Mechanism[]): string {
  const s = report.summary;
  const acted =
    mechanisms.length === 0
      ? phase.mode === 'none'
        ? 'nothing refuses'
        : 'no mechanism acted'
      : `acted: ${mechanisms.map(describe).join('; ')}`;
  const tenants = s.tenants
    .map((t) => `${t.tenant} ${t.demand > 0 ? pct(t.goodput / t.demand) : '-'}`)
    .join(', ');
  const p99 = s.latencyMs.p99 === null ? '-' : `${Math.round(s.latencyMs.p99)} ms`;
  // During the step the most a server can serve is its capacity; over the whole run (half of it at
  // 0.5x) it is well under: quote the step's, and the whole run's beside it.
  const step = s.episodes?.[0];
  const goodput =
    step === undefined
      ? `goodput ${pct(s.goodputShareOfCapacity)} of capacity`
      : `goodput ${pct(step.goodputShare)} of capacity during the step (${pct(s.goodputShareOfCapacity)} over the whole run)`;
  return (
    `**${phase.title}**: ${acted}. Served of what each sent: ${tenants}; ${goodput}, ` +
    `2xx p99 ${p99}, ${count(report.live.timeouts)} client timeouts.`
  );
}

/**
 * A recorded demo (its demo.json) read again: each phase's mechanisms and line derived afresh from
 * its recorded report, so that the lines follow this code's wording without a new run.
 */
export function rederive(demo: DemoReport): DemoReport {
  return {
    ...demo,
    phases: demo.phases.map((p) => {
      const mechanisms = mechanismsOf(p.report);
      return { ...p, mechanisms, line: phaseLine(p.phase, p.report, mechanisms) };
    }),
  };
}

/** The README block: one line per phase, between the markers `npm run demo -- --readme` rewrites. */
export function readmeBlock(demo: DemoReport): string {
  const lines = demo.phases.map((p) => `- ${p.line}`);
  const cap = demo.capacityPerSec;
  const caps = [
    cap.cpu === null ? null : `CPU-bound ${Math.round(cap.cpu)} req/s`,
    cap.pool === null ? null : `pool-bound ${Math.round(cap.pool)} req/s`,
  ].filter((x) => x !== null);
  return [
    `What acted in each phase of the last recorded run (capacity ${caps.join(', ')}; written by the demo from its decisions):`,
    '',
    ...lines,
  ].join('\n');
}

export const README_START = '<!-- demo:phases:start -->';
export const README_END = '<!-- demo:phases:end -->';

/** `text` with the block between the markers replaced (the markers must be there, in order). */
export function replaceReadmeBlock(text: string, block: string): string {
  const a = text.indexOf(README_START);
  const b = text.indexOf(README_END);
  if (a < 0 || b < a) throw new Error(`the README has no ${README_START} … ${README_END} block`);
  return `${text.slice(0, a + README_START.length)}\n${block}\n${text.slice(b)}`;
}

/**
 * The demo's chart: the phases side by side on one time axis (a rule and a label at each start), in
 * four panels: requests per second (offered, 2xx, 429, 503); the governor's throttle factor; the
 * per-key quota (req/s, the key limiter's full quota times the factor its decisions carried); the
 * time requests waited in the guard's queue (mean and max per second, ms).
 */
export function demoChartSpec(demo: DemoReport): Record<string, unknown> {
  const rates: Record<string, unknown>[] = [];
  const factor: Record<string, unknown>[] = [];
  const quota: Record<string, unknown>[] = [];
  const queue: Record<string, unknown>[] = [];
  const starts: Record<string, unknown>[] = [];
  let offset = 0;
  for (const p of demo.phases) {
    starts.push({ t: offset, phase: p.phase.name });
    p.report.series.forEach((pt, i) => {
      const t = offset + pt.t;
      const phase = p.phase.name;
      rates.push({ t, phase, series: 'offered', value: pt.offered });
      rates.push({ t, phase, series: '2xx', value: pt.goodput });
      rates.push({ t, phase, series: '429', value: pt.limited });
      rates.push({ t, phase, series: '503', value: pt.shed });
      if (pt.factor !== null)
        factor.push({ t, phase: p.phase.name, series: 'throttle factor', value: pt.factor });
      const d = p.report.live.decisions[i];
      if (d && d.keyFactor !== null && p.keyRatePerSec !== null) {
        quota.push({ t, phase: p.phase.name, series: 'per-key quota', value: p.keyRatePerSec * d.keyFactor });
      }
      if (d && p.phase.mode === 'spillway') {
        queue.push({ t, phase: p.phase.name, series: 'queue time, mean', value: d.queueMeanMs });
        queue.push({ t, phase: p.phase.name, series: 'queue time, max', value: d.queueMaxMs });
      }
    });
    offset += p.report.series.length + 2;
  }
  const width = 900;
  const x = { field: 't', type: 'quantitative', title: 'time (s), phases one after another' };
  const phaseRules = (height: number) => ({
    data: { values: starts },
    mark: { type: 'rule', color: '#999999', strokeDash: [4, 3] },
    encoding: { x: { field: 't', type: 'quantitative' } },
    height,
  });
  const panel = (
    title: string,
    values: Record<string, unknown>[],
    yTitle: string,
    extra: Record<string, unknown> = {},
  ) => ({
    title,
    width,
    height: 140,
    layer: [
      phaseRules(140),
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 1.5, interpolate: 'step-after', point: values.length < 40 },
        encoding: {
          x,
          y: { field: 'value', type: 'quantitative', title: yTitle, ...extra },
          color: { field: 'series', type: 'nominal', title: null },
          detail: { field: 'phase', type: 'nominal' },
        },
      },
    ],
  });
  const labels = {
    data: { values: starts },
    mark: { type: 'text', align: 'left', dx: 4, dy: -4, baseline: 'bottom', fontSize: 11 },
    encoding: { x: { field: 't', type: 'quantitative', title: null, axis: null }, text: { field: 'phase' } },
    width,
    height: 14,
  };
  const cap = demo.capacityPerSec;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `${demo.scenario}: ${demo.phases.map((p) => p.phase.name).join(' · ')}`,
      subtitle: `capacity: CPU-bound ${cap.cpu === null ? '-' : Math.round(cap.cpu)} req/s, pool-bound ${cap.pool === null ? '-' : Math.round(cap.pool)} req/s; three tenants (heavy, light, lighter)`,
    },
    background: 'white',
    vconcat: [
      labels,
      panel('requests per second', rates, 'req/s'),
      panel('throttle factor (governor)', factor, 'factor', { scale: { domain: [0, 1] } }),
      panel('per-key quota (scaled by the factor)', quota, 'req/s per key'),
      panel('time waited in the guard queue', queue, 'ms'),
    ],
    resolve: { scale: { color: 'independent' } },
    config: { font: 'sans-serif', view: { stroke: null }, legend: { labelLimit: 300 } },
  };
}
