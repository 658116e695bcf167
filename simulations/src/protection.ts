/**
 * The three ways the simulated server can be protected, each built from the real classes and run
 * as a real admission `Pipeline` (spillway/pipeline):
 * - `none`: an empty pipeline: everything is admitted.
 * - `static`: one TokenBucket at a fixed rate (a capacity somebody measured), no governor.
 * - `spillway`: what the HTTP guard runs, built by the same function from the same options
 *   (`admissionPipeline`, `turnBudgetFor`): the keyed limiter with a quota per tenant (when the
 *   scenario sets one), the loop-turn budget on the model's turns and clock, the real Shedder driven
 *   by the real Governor (fed the model's signals), and the concurrency stage when the scenario sets
 *   one (fair between tenants when there is a per-tenant quota: the guard then has a key function,
 *   as the demo's does). Charging is all-or-nothing, and a request whose client left is refunded,
 *   as in the guard.
 *
 * In `none` and `static` a Governor runs in shadow mode: it acts on nothing, and the report can
 * still show the pressure and the dominant signal the process would have seen.
 */
import type { Clock, ManualClock } from 'spillway';
import { ConcurrencyLimiter, createGovernor } from 'spillway';
import type { Governor } from 'spillway';
import { createLimiter, type KeyedLimiter } from 'spillway';
import { Shedder } from 'spillway';
import { TokenBucket } from 'spillway';
import type { Signal } from 'spillway';
import {
  type AdmissionRequest,
  admissionPipeline,
  Pipeline,
  type PipelineParts,
  type TurnBudget,
  type TurnBudgetOptions,
  turnBudgetFor,
  type Verdict,
  GovernorFeed,
} from 'spillway/pipeline';
import type { Mode, Scenario } from './scenario.js';

/** One request as the simulated guard sees it (`key` is the tenant). */
export interface SimRequest extends AdmissionRequest {
  signal?: AbortSignal;
}

export interface Protection {
  readonly mode: Mode;
  /** The governor (enforcing in `spillway`, shadow otherwise). */
  readonly governor: Governor;
  /** What decides each request: run it, then `release` (done) or `refund` (its client left). */
  readonly pipeline: Pipeline<SimRequest>;
  /** The loop-turn budget, when on (`spillway` mode). */
  readonly turn: TurnBudget | undefined;
  /** The concurrency limiter, when the scenario sets one (`spillway` mode). */
  readonly concurrency: ConcurrencyLimiter | undefined;
  /** The factor limiters apply now, or null when the mode has none. */
  factor(): number | null;
  /** Counts a verdict toward the governor's feed (`spillway.feedGovernor`), as the guard does. */
  record(v: Verdict<SimRequest>): void;
  stop(): void;
}

/** Where the model's time and turns come from. */
export interface ProtectionEnv {
  /** The simulation's clock (limiters, the turn budget). */
  readonly clock: ManualClock;
  /** The governor's clock: virtual time whose timers wait for the model's loop. */
  readonly govClock: Clock;
  /** Runs a function when the model's current event-loop turn ends (EventLoop.defer). */
  readonly defer: (fn: () => void) => void;
}

/** What the simulator tunes on top of the scenario. */
export interface ProtectionOverrides {
  readonly governor?: Readonly<Record<string, number | string>> | undefined;
  readonly shedder?: Readonly<Record<string, number>> | undefined;
  /** TurnBudget options besides `budgetMs`, clock and defer (e.g. `refuseEarly`). */
  readonly turnBudget?: Pick<TurnBudgetOptions, 'refuseEarly' | 'retryAfterMs'> | undefined;
}

/** Governor options for the scenario, with `overrides` (the tuner's candidates) on top. */
export function governorOptions(
  scenario: Scenario,
  overrides: Readonly<Record<string, number | string>> | undefined,
): Record<string, number | string> {
  return { ...scenario.spillway.governor, ...(overrides ?? {}) };
}

export function createProtection(
  mode: Mode,
  scenario: Scenario,
  env: ProtectionEnv,
  signals: readonly Signal[],
  overrides: ProtectionOverrides = {},
): Protection {
  const { clock } = env;
  const governor = createGovernor({
    ...governorOptions(scenario, overrides.governor),
    ...(mode === 'spillway' ? {} : { mode: 'shadow' as const }),
    signals,
    clock: env.govClock,
  });
  governor.start();
  const base = { mode, governor, turn: undefined, concurrency: undefined, record: () => {} };

  if (mode === 'none') {
    return { ...base, pipeline: new Pipeline([]), factor: () => null, stop: () => governor.stop() };
  }
  if (mode === 'static') {
    const bucket = new TokenBucket({
      ratePerSec: scenario.static.ratePerSec,
      burst: scenario.static.burst,
      clock,
    });
    const pipeline = new Pipeline<SimRequest>([
      {
        name: 'shedder',
        waits: false,
        quota: false,
        admit: (req) => bucket.take(Math.min(req.cost, bucket.burst)),
      },
    ]);
    return { ...base, pipeline, factor: () => null, stop: () => governor.stop() };
  }

  const { parts, close } = spillwayParts(scenario, env, governor, overrides);
  const pipeline = admissionPipeline(parts) as Pipeline<SimRequest>;
  // The guard's feed, built by the same class from the same pipeline (see governor-feed.ts).
  const feed = new GovernorFeed();
  if (scenario.spillway.feedGovernor) {
    feed.connect(governor, 'default', [
      { pipeline } as unknown as Parameters<GovernorFeed['connect']>[2][number],
    ]);
  }
  return {
    ...base,
    pipeline,
    record: (v) => feed.record(v as Verdict),
    turn: parts.turn,
    concurrency: parts.concurrency,
    factor: () => governor.factor,
    stop() {
      feed.close();
      close();
      governor.stop();
    },
  };
}

/**
 * The parts of `spillway` mode, from the scenario's `spillway` section as the guard reads its
 * options: `perTenant` is the guard's `limiter` (following the governor when `scaled`), `shedder`
 * its `shedder` (`false`: none), `turnBudgetMs` its `turnBudgetMs` (the same default: on at 25 ms
 * when there is a shedder), `feedGovernor` its `feedGovernor`, `concurrency` its
 * concurrency limiter (following the governor when `scaled`).
 */
export function spillwayParts(
  scenario: Scenario,
  env: ProtectionEnv,
  governor: Governor,
  overrides: ProtectionOverrides = {},
): { parts: PipelineParts & { turn: TurnBudget | undefined }; close: () => void } {
  const { clock } = env;
  const sp = scenario.spillway;
  const shedder =
    sp.shedder === false
      ? undefined
      : new Shedder({ ...sp.shedder, ...(overrides.shedder ?? {}), factor: governor, clock });
  const pt = sp.perTenant;
  const limiter: KeyedLimiter | undefined =
    pt === undefined
      ? undefined
      : createLimiter({
          ratePerSec: pt.ratePerSec,
          burst: pt.burst,
          clock,
          ...(pt.scaled ? { factor: governor } : {}),
        });
  const turn = turnBudgetFor(sp.turnBudgetMs, shedder !== undefined, {
    ...overrides.turnBudget,
    clock,
    defer: env.defer,
  });
  let concurrency: ConcurrencyLimiter | undefined;
  if (sp.concurrency !== undefined) {
    const { scaled, ...options } = sp.concurrency;
    concurrency = new ConcurrencyLimiter({ ...options, ...(scaled ? { factor: governor } : {}), clock });
  }
  return {
    // The guard keys its requests by tenant through a key function exactly when it has a per-tenant
    // quota (the demo's server does), and then its concurrency stage is fair between keys.
    parts: { limiter, turn, shedder, concurrency, fairKeys: pt !== undefined },
    close() {
      concurrency?.close();
      shedder?.close();
      limiter?.close();
    },
  };
}
