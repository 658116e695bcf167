// A short live run through the built harness (it forks simulations/dist/live/*-worker.js; `npm test`
// builds dist/ first). Bounded: about 4 s of load plus process start-up.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { LiveReport } from '../../simulations/src/live/live.js';
import type { SimReport } from '../../simulations/src/report.js';
import { formatSummaryTable, seriesToCsv } from '../../simulations/src/report.js';
import { parseScenario } from '../../simulations/src/scenario.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const built = join(root, 'simulations/dist/live/live.js');

async function live(): Promise<typeof import('../../simulations/src/live/live.js')> {
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first`);
  return import(built);
}

describe('runLive', () => {
  it('runs a few seconds against a real server and reports in the simulator format', async () => {
    const { runLive } = await live();
    const scenario = parseScenario(
      {
        name: 'live-short',
        durationSec: 4,
        capacityPerSec: 500,
        server: { service: { kind: 'constant', ms: 1 } },
        traffic: [
          {
            name: 'clients',
            pattern: 'step',
            basePerSec: 100,
            peakPerSec: 1000,
            stepStartSec: 1,
            stepEndSec: 3,
            arrivals: 'uniform',
          },
        ],
        report: { settleSec: 1 },
      },
      'live-short.json',
    );
    // Capacity given (no autocannon run): 200 req/s of a 1 ms handler, so the step is 2× that.
    const report: LiveReport = await runLive(scenario, { mode: 'none', cpuMs: 1, capacityPerSec: 200 });
    const { summary, series } = report;
    expect(summary.scenario).toBe('live-short');
    expect(summary.mode).toBe('none');
    expect(summary.capacityPerSec).toBe(200);
    expect(series).toHaveLength(4);
    expect(series.map((p) => p.t)).toEqual([0, 1, 2, 3]);
    // The schedule, scaled to the capacity: 40, 400, 400, 40 requests.
    expect(series.map((p) => p.offered)).toEqual([40, 400, 400, 40]);
    expect(summary.offered).toBe(880);
    const answered = summary.goodput + summary.shed + summary.limited + summary.failed + summary.late;
    expect(answered).toBe(880);
    expect(summary.goodput).toBeGreaterThan(0);
    expect(summary.latencyMs.p99).not.toBeNull();
    expect(summary.episodes).toHaveLength(1);
    expect(summary.episodes[0]).toMatchObject({ startSec: 1, endSec: 3 });
    expect(report.live.refusedSlices).toHaveLength(40);
    // The simulator's table and CSV take it as they are.
    const asSim: SimReport = report;
    expect(formatSummaryTable([asSim])).toMatch(/goodput \/ capacity/);
    expect(seriesToCsv(asSim.series).split('\n')).toHaveLength(6);
  });

  it('compares the simulator with the live run at the measured capacity', async () => {
    const { compareSimToLive } = await live();
    const scenario = parseScenario({
      name: 'live-compare',
      durationSec: 3,
      server: { service: { kind: 'constant', ms: 2 } },
      traffic: [{ pattern: 'steady', ratePerSec: 250, arrivals: 'uniform' }],
    });
    // 250 req/s for a 500 req/s model; live at a given 100 req/s: 50 req/s, well under capacity.
    const {
      sim,
      live: report,
      differences,
    } = await compareSimToLive(scenario, {
      mode: 'none',
      cpuMs: 2,
      capacityPerSec: 100,
    });
    expect(sim.summary.capacityPerSec).toBeCloseTo(100, 6);
    expect(report.summary.capacityPerSec).toBe(100);
    expect(report.summary.offered).toBe(150);
    // No overload: both serve all of it, at a share of capacity of 50%.
    expect(sim.summary.goodputShareOfCapacity).toBeCloseTo(0.5, 1);
    expect(report.summary.goodputShareOfCapacity).toBeCloseTo(0.5, 1);
    expect(Math.abs(differences.goodputShareOfCapacity)).toBeLessThan(0.05);
    expect(differences.engageMs).toBeNull();
  });
});
