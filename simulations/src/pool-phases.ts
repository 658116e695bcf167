/**
 * Issue 9's benchmark phases in the simulator, measured as bench/live-pool.mjs measures them live,
 * so the pool-bound scenario's figures can be set beside a live run's and checked against a stated
 * tolerance (docs/pool.md › Simulator and live run).
 *
 * Phases (lengths × `timeScale`, rates in multiples of the model's capacity, evenly spaced arrivals
 * as the live load generator sends them):
 *   overload  3× for 20 s (then 1 s without traffic, where the live run drains)
 *   step      0.5× for 10 s → 3× for 10 s → 0.5× for 10 s
 *   below     0.8× for 20 s
 */
import type { Mode, Scenario } from './scenario.js';
import { parseScenario } from './scenario.js';
import { simulateAsync } from './simulate.js';

/** The figures bench/live-pool.mjs reports per phase, for one mode. */
export interface PoolPhaseFigures {
  /** 2xx during the 3× seconds, as a share of capacity (overload and step). */
  readonly goodputShare?: number;
  /** p99 of the 2xx answered during the 3× seconds, in ms (overload and step). */
  readonly overloadP99Ms?: number | null;
  /** On/off switches of "any request refused" in 100 ms slices over the phase. */
  readonly switches: number;
  /** The end of the last 100 ms slice with a refusal after the load fell, in ms (step). */
  readonly lastRefusalAfterFallMs?: number | null;
  /** Requests refused (429/503) in the phase. */
  readonly refused: number;
  /** Requests offered in the phase. */
  readonly offered: number;
}

export interface PoolPhases {
  readonly overload: PoolPhaseFigures;
  readonly step: PoolPhaseFigures;
  readonly below: PoolPhaseFigures;
}

/** The scenario of one phase, from a pool-bound scenario (its server and spillway settings). */
export function poolPhaseScenario(
  base: Scenario,
  phase: keyof PoolPhases,
  options: { timeScale?: number; concurrency?: Readonly<Record<string, unknown>> } = {},
): Scenario {
  const k = options.timeScale ?? 1;
  const cap = base.capacityPerSec;
  const traffic = {
    name: 'clients',
    arrivals: 'uniform',
    timeoutMs: base.traffic[0]?.timeoutMs ?? 10_000,
  };
  let durationSec: number;
  let pattern: Record<string, unknown>;
  switch (phase) {
    case 'overload':
      durationSec = 20 * k + 1;
      pattern = { pattern: 'step', basePerSec: 0, peakPerSec: 3 * cap, stepStartSec: 0, stepEndSec: 20 * k };
      break;
    case 'step':
      durationSec = 30 * k;
      pattern = {
        pattern: 'step',
        basePerSec: 0.5 * cap,
        peakPerSec: 3 * cap,
        stepStartSec: 10 * k,
        stepEndSec: 20 * k,
      };
      break;
    case 'below':
      durationSec = 20 * k;
      pattern = { pattern: 'steady', ratePerSec: 0.8 * cap };
      break;
  }
  const d = base.server.downstream;
  return parseScenario(
    {
      name: `${base.name}-${phase}`,
      description: `${base.name}, issue 9's ${phase} phase (time scale ${k})`,
      durationSec,
      seed: base.seed,
      capacityPerSec: cap,
      server: {
        service: base.server.service,
        ...(d === undefined
          ? {}
          : {
              downstream: {
                concurrency: d.concurrency,
                service: d.service,
                maxQueue: d.maxQueue,
                share: d.share,
                callbackCostMs: d.callbackCostMs,
              },
            }),
      },
      traffic: [{ ...traffic, ...pattern }],
      // The scenario's own guard (governor, shedder, feed, turn budget), with the phase's concurrency.
      spillway: {
        ...Object.fromEntries(Object.entries(base.spillway).filter(([, v]) => v !== undefined)),
        concurrency: options.concurrency ?? base.spillway.concurrency ?? {},
      },
      modes: ['none', 'spillway'],
      report: { settleSec: 10 * k },
    },
    `${base.name} (${phase} phase)`,
  );
}

/** Runs the three phases in the simulator and measures them as the live benchmark does. */
export async function simulatePoolPhases(
  base: Scenario,
  options: { timeScale?: number; concurrency?: Readonly<Record<string, unknown>>; mode?: Mode } = {},
): Promise<PoolPhases> {
  const mode = options.mode ?? 'spillway';
  const run = async (phase: keyof PoolPhases) => {
    const r = await simulateAsync(poolPhaseScenario(base, phase, options), { mode });
    const s = r.summary;
    const refused = s.shed + s.limited;
    const ep = s.episodes[0];
    return {
      ...(ep === undefined ? {} : { goodputShare: ep.goodputShare, overloadP99Ms: ep.p99AllMs ?? null }),
      switches: s.switches100Ms ?? 0,
      ...(phase === 'step' ? { lastRefusalAfterFallMs: ep?.lastRefusalAfterEndMs ?? null } : {}),
      refused,
      offered: s.offered,
    };
  };
  return { overload: await run('overload'), step: await run('step'), below: await run('below') };
}

/**
 * How far the simulated figures may be from a live run's (docs/pool.md › Simulator and live run):
 * absolute differences. The model has no network, no kernel, no timer lateness and no load
 * generator; the p99 tolerance is wide for that reason.
 */
export const POOL_SIM_TOLERANCE = Object.freeze({
  /** Goodput during the 3×, as a share of capacity (0.03: 3 percentage points). */
  goodputShare: 0.03,
  /** p99 of the 2xx during the 3×, in ms. */
  overloadP99Ms: 100,
  /** On/off switches in 100 ms slices over a phase. */
  switches: 2,
  /** The last refusal after the load fell, in ms. */
  lastRefusalAfterFallMs: 200,
  /** Refused at 0.8×, as a share of the requests offered (0.005: half a percentage point). */
  belowRefusedShare: 0.005,
});

export interface PoolComparison {
  readonly phase: keyof PoolPhases;
  readonly figure: string;
  readonly sim: number | null;
  readonly live: number | null;
  readonly tolerance: number;
  readonly within: boolean;
}

/** Sets simulated figures beside live ones, figure by figure, each with its tolerance. */
export function comparePoolPhases(
  sim: PoolPhases,
  live: PoolPhases,
  tolerance: typeof POOL_SIM_TOLERANCE = POOL_SIM_TOLERANCE,
): PoolComparison[] {
  const out: PoolComparison[] = [];
  const add = (phase: keyof PoolPhases, figure: string, s: number | null, l: number | null, tol: number) => {
    const within = s === null || l === null ? s === l : Math.abs(s - l) <= tol + 1e-9;
    out.push({ phase, figure, sim: s, live: l, tolerance: tol, within });
  };
  for (const phase of ['overload', 'step'] as const) {
    add(
      phase,
      'goodputShare',
      sim[phase].goodputShare ?? null,
      live[phase].goodputShare ?? null,
      tolerance.goodputShare,
    );
    add(
      phase,
      'overloadP99Ms',
      sim[phase].overloadP99Ms ?? null,
      live[phase].overloadP99Ms ?? null,
      tolerance.overloadP99Ms,
    );
    add(phase, 'switches', sim[phase].switches, live[phase].switches, tolerance.switches);
  }
  // "No refusal after the fall" is 0 ms after it.
  add(
    'step',
    'lastRefusalAfterFallMs',
    sim.step.lastRefusalAfterFallMs ?? 0,
    live.step.lastRefusalAfterFallMs ?? 0,
    tolerance.lastRefusalAfterFallMs,
  );
  add('below', 'switches', sim.below.switches, live.below.switches, tolerance.switches);
  const share = (f: PoolPhaseFigures) => (f.offered > 0 ? f.refused / f.offered : 0);
  add('below', 'refusedShare', share(sim.below), share(live.below), tolerance.belowRefusedShare);
  return out;
}
