/**
 * The tuner: searches the governor's parameters (and optionally the Shedder's `learnWindowMs`,
 * `probePerSec` and `headroom`) on the simulator for the best objective, with a seeded random search followed by
 * local refinement around the best point found.
 *
 * Objective (higher is better):
 *   score = goodput / achievable − latencyPenalty − oscillationWeight · factorTurnsPerMin
 * where achievable = Σ over seconds of min(first-attempt demand, capacity), and
 * latencyPenalty = max(0, p99 / p99TargetMs − 1) (p99 of admitted requests over the run).
 */
import { GOVERNOR_DEFAULTS } from 'spillway';
import { SHEDDER_DEFAULTS } from 'spillway';
import { mulberry32, type Random } from './random.js';
import type { SimSummary } from './report.js';
import type { Scenario } from './scenario.js';
import { simulate } from './simulate.js';

/** The governor parameters the tuner searches. */
export interface GovernorParams {
  engageAt: number;
  releaseAt: number;
  smoothingMs: number;
  maxCutPerTick: number;
  recoverPerSec: number;
  cooldownMs: number;
  cutIntervalMs: number;
  /** Shedder options, searched only with `includeShedder`. */
  learnWindowMs?: number;
  probePerSec?: number;
  headroom?: number;
}

export interface TuneObjective {
  /** Latency target for the p99 of admitted requests, in ms. @default scenario.report.latencyTargetMs */
  p99TargetMs?: number;
  /** Score lost per factor direction change per minute. @default 0.005 */
  oscillationWeight?: number;
}

export interface TuneOptions {
  /** Simulations to run in all (the scenario's own settings are the first). An integer >= 1. @default 40 */
  budget?: number;
  objective?: TuneObjective;
  /** Seed of the search (the simulations use the scenario's seed). @default 1 */
  seed?: number;
  /** Also search the Shedder's `learnWindowMs`, `probePerSec` and `headroom`. @default false */
  includeShedder?: boolean;
  /** Called after each simulation, for a progress bar. */
  onProgress?: (done: number, total: number) => void;
}

export interface TuneTrial {
  readonly params: GovernorParams;
  readonly score: number;
  /** goodput / achievable, from 0 to 1. */
  readonly goodputRatio: number;
  readonly p99Ms: number | null;
  readonly factorTurnsPerMin: number;
  readonly summary: SimSummary;
}

export interface TuneResult {
  /** The scenario's own settings (the governor's defaults where it sets none). */
  readonly baseline: TuneTrial;
  readonly best: TuneTrial;
  /** Every trial in the order run. */
  readonly trials: readonly TuneTrial[];
}

interface Range {
  readonly min: number;
  readonly max: number;
  readonly log: boolean;
}

const SPACE: Readonly<Record<keyof GovernorParams, Range>> = {
  engageAt: { min: 0.2, max: 0.9, log: false },
  releaseAt: { min: 0, max: 0.8, log: false }, // kept below engageAt
  smoothingMs: { min: 100, max: 5000, log: true },
  maxCutPerTick: { min: 0.02, max: 0.5, log: true },
  recoverPerSec: { min: 0.01, max: 1, log: true },
  cooldownMs: { min: 0, max: 10_000, log: false },
  cutIntervalMs: { min: 0, max: 3000, log: false },
  headroom: { min: 0, max: 0.2, log: false },
  learnWindowMs: { min: 100, max: 5000, log: true },
  probePerSec: { min: 0.001, max: 0.3, log: true },
};
const GOVERNOR_KEYS: readonly (keyof GovernorParams)[] = [
  'engageAt',
  'releaseAt',
  'smoothingMs',
  'maxCutPerTick',
  'recoverPerSec',
  'cooldownMs',
  'cutIntervalMs',
];
const SHEDDER_KEYS: readonly (keyof GovernorParams)[] = ['learnWindowMs', 'probePerSec', 'headroom'];

function draw(range: Range, rnd: Random): number {
  const u = rnd();
  if (range.log) return Math.exp(Math.log(range.min) + u * (Math.log(range.max) - Math.log(range.min)));
  return range.min + u * (range.max - range.min);
}

function clampTo(range: Range, v: number): number {
  return Math.min(range.max, Math.max(range.min, v));
}

function legal(p: GovernorParams): GovernorParams {
  const q = { ...p };
  if (q.releaseAt >= q.engageAt) q.releaseAt = q.engageAt * 0.6;
  // Round for readable settings.
  q.engageAt = Math.round(q.engageAt * 100) / 100;
  q.releaseAt = Math.min(Math.round(q.releaseAt * 100) / 100, q.engageAt - 0.01);
  q.smoothingMs = Math.round(q.smoothingMs / 10) * 10;
  q.maxCutPerTick = Math.round(q.maxCutPerTick * 1000) / 1000;
  q.recoverPerSec = Math.round(q.recoverPerSec * 1000) / 1000;
  q.cooldownMs = Math.round(q.cooldownMs / 50) * 50;
  q.cutIntervalMs = Math.round(q.cutIntervalMs / 50) * 50;
  if (q.headroom !== undefined) q.headroom = Math.round(q.headroom * 1000) / 1000;
  if (q.learnWindowMs !== undefined) q.learnWindowMs = Math.round(q.learnWindowMs / 10) * 10;
  if (q.probePerSec !== undefined) q.probePerSec = Math.round(q.probePerSec * 10_000) / 10_000;
  return q;
}

/** The scenario's governor (and with `includeShedder`, Shedder) settings with the defaults filled in. */
export function baselineParams(scenario: Scenario, includeShedder = false): GovernorParams {
  const g = scenario.spillway.governor;
  const pick = (k: (typeof GOVERNOR_KEYS)[number] & keyof typeof GOVERNOR_DEFAULTS): number =>
    typeof g[k] === 'number' ? (g[k] as number) : (GOVERNOR_DEFAULTS[k] as number);
  const sh = scenario.spillway.shedder === false ? {} : scenario.spillway.shedder;
  const shedder = includeShedder
    ? {
        learnWindowMs: sh['learnWindowMs'] ?? SHEDDER_DEFAULTS.learnWindowMs,
        probePerSec: sh['probePerSec'] ?? SHEDDER_DEFAULTS.probePerSec,
        headroom: sh['headroom'] ?? SHEDDER_DEFAULTS.headroom,
      }
    : {};
  return {
    ...shedder,
    engageAt: pick('engageAt'),
    releaseAt: pick('releaseAt'),
    smoothingMs: pick('smoothingMs'),
    maxCutPerTick: pick('maxCutPerTick'),
    recoverPerSec: pick('recoverPerSec'),
    cooldownMs: pick('cooldownMs'),
    cutIntervalMs: pick('cutIntervalMs'),
  };
}

/** Scores one run of the scenario under `params`. */
export function evaluate(
  scenario: Scenario,
  params: GovernorParams,
  objective: TuneObjective = {},
): TuneTrial {
  const target = objective.p99TargetMs ?? scenario.report.latencyTargetMs;
  const weight = objective.oscillationWeight ?? 0.005;
  const { learnWindowMs, probePerSec, headroom, ...governor } = params;
  const shedder: Record<string, number> = {};
  if (headroom !== undefined) shedder['headroom'] = headroom;
  if (learnWindowMs !== undefined) shedder['learnWindowMs'] = learnWindowMs;
  if (probePerSec !== undefined) shedder['probePerSec'] = probePerSec;
  const report = simulate(scenario, { mode: 'spillway', governor, shedder });
  const s = report.summary;
  let achievable = 0;
  for (const p of report.series) achievable += Math.min(p.offeredFirst, s.capacityPerSec);
  const goodputRatio = achievable > 0 ? Math.min(1, s.goodput / achievable) : 1;
  const p99 = s.latencyMs.p99;
  const latencyPenalty = p99 === null ? 0 : Math.max(0, p99 / target - 1);
  const turns = s.factorDirectionChangesPerMin ?? 0;
  return {
    params,
    score: goodputRatio - latencyPenalty - weight * turns,
    goodputRatio,
    p99Ms: p99,
    factorTurnsPerMin: turns,
    summary: s,
  };
}

/**
 * Searches the governor's parameters for `scenario`. About 60% of the budget draws points at random
 * from the whole space (log-uniform for times and rates); the rest perturbs the best point so far,
 * one or two parameters at a time, by up to ±30% of their range (in log space for log ranges),
 * skipping points already run.
 * Yields to the event loop between simulations, so a progress bar can draw.
 */
export async function tune(scenario: Scenario, options: TuneOptions = {}): Promise<TuneResult> {
  const budget = options.budget ?? 40;
  if (!Number.isInteger(budget) || budget < 1) {
    throw new RangeError(`tune: budget must be an integer >= 1, got ${String(budget)}`);
  }
  const rnd = mulberry32(options.seed ?? 1);
  const objective = options.objective ?? {};
  const trials: TuneTrial[] = [];
  const run = async (params: GovernorParams): Promise<TuneTrial> => {
    const t = evaluate(scenario, params, objective);
    trials.push(t);
    options.onProgress?.(trials.length, budget);
    await new Promise<void>((resolve) => setImmediate(resolve));
    return t;
  };
  const keys = options.includeShedder ? [...GOVERNOR_KEYS, ...SHEDDER_KEYS] : GOVERNOR_KEYS;
  const baseline = await run(baselineParams(scenario, options.includeShedder));
  let best = baseline;
  const explore = Math.max(0, Math.round((budget - 1) * 0.6));
  for (let i = 0; i < explore; i++) {
    const p = {} as GovernorParams;
    for (const k of keys) p[k] = draw(SPACE[k], rnd);
    const t = await run(legal(p));
    if (t.score > best.score) best = t;
  }
  const seen = new Set(trials.map((t) => JSON.stringify(t.params)));
  while (trials.length < budget) {
    // A perturbation that rounds back to a point already run is drawn again (a few times at most).
    let p = { ...best.params };
    for (let attempt = 0; attempt < 8; attempt++) {
      p = legal(perturb(best.params, keys, rnd));
      if (!seen.has(JSON.stringify(p))) break;
    }
    seen.add(JSON.stringify(p));
    const t = await run(p);
    if (t.score > best.score) best = t;
  }
  return { baseline, best, trials };
}

function perturb(from: GovernorParams, keys: readonly (keyof GovernorParams)[], rnd: Random): GovernorParams {
  const p = { ...from };
  const n = rnd() < 0.5 ? 1 : 2;
  for (let j = 0; j < n; j++) {
    const k = keys[Math.floor(rnd() * keys.length)]!;
    const r = SPACE[k];
    const step = (rnd() * 2 - 1) * 0.3;
    const v = p[k]!;
    p[k] = r.log
      ? clampTo(r, Math.exp(Math.log(v) + step * (Math.log(r.max) - Math.log(r.min))))
      : clampTo(r, v + step * (r.max - r.min));
  }
  return p;
}
