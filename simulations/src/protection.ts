/**
 * The three ways the simulated server can be protected, each built from the real classes:
 * - `none`: everything is admitted.
 * - `static`: one TokenBucket at a fixed rate (a capacity somebody measured), no governor.
 * - `spillway`: the real Governor (fed the model's signals) driving the real Shedder, and
 *   optionally the real keyed limiter with a quota per tenant.
 *
 * In `none` and `static` a Governor runs in shadow mode: it acts on nothing, and the report can
 * still show the pressure and the dominant signal the process would have seen.
 */
import type { Clock, ManualClock } from 'spillway';
import { createGovernor } from 'spillway';
import type { Governor } from 'spillway';
import { createLimiter, type KeyedLimiter } from 'spillway';
import { Shedder } from 'spillway';
import { TokenBucket } from 'spillway';
import type { Decision, Priority } from 'spillway';
import type { Signal } from 'spillway';
import type { Mode, Scenario } from './scenario.js';
import { ADMITTED_UNLIMITED } from 'spillway/pipeline';

export interface AdmissionRequest {
  readonly tenant: string;
  readonly priority: Priority;
  readonly cost: number;
}

export interface Protection {
  readonly mode: Mode;
  /** The governor (enforcing in `spillway`, shadow otherwise). */
  readonly governor: Governor;
  decide(req: AdmissionRequest): Decision;
  /** The factor limiters apply now, or null when the mode has none. */
  factor(): number | null;
  stop(): void;
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
  clock: ManualClock,
  govClock: Clock,
  signals: readonly Signal[],
  governorOverrides?: Readonly<Record<string, number | string>>,
  shedderOverrides?: Readonly<Record<string, number>>,
): Protection {
  const gov = governorOptions(scenario, governorOverrides);
  const governor = createGovernor({
    ...gov,
    ...(mode === 'spillway' ? {} : { mode: 'shadow' as const }),
    signals,
    clock: govClock,
  });
  governor.start();

  if (mode === 'none') {
    return {
      mode,
      governor,
      decide: () => ADMITTED_UNLIMITED,
      factor: () => null,
      stop: () => governor.stop(),
    };
  }
  if (mode === 'static') {
    const bucket = new TokenBucket({
      ratePerSec: scenario.static.ratePerSec,
      burst: scenario.static.burst,
      clock,
    });
    return {
      mode,
      governor,
      decide: (req) => bucket.take(Math.min(req.cost, bucket.burst)),
      factor: () => null,
      stop: () => governor.stop(),
    };
  }

  const shedder = new Shedder({
    ...scenario.spillway.shedder,
    ...(shedderOverrides ?? {}),
    factor: governor,
    clock,
  });
  const pt = scenario.spillway.perTenant;
  const tenants: KeyedLimiter | undefined =
    pt === undefined ? undefined : createLimiter({ ratePerSec: pt.ratePerSec, burst: pt.burst, clock });
  return {
    mode,
    governor,
    decide(req) {
      if (tenants !== undefined) {
        const d = tenants.take(req.tenant, { cost: req.cost });
        if (!d.allowed) return d;
      }
      return shedder.admit({ priority: req.priority, cost: req.cost });
    },
    factor: () => governor.factor,
    stop() {
      shedder.close();
      tenants?.close();
      governor.stop();
    },
  };
}
