import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  compare,
  formatSummaryTable,
  parseScenario,
  renderChart,
  seriesToCsv,
  simulate,
  tune,
  writeReport,
} from '../../simulations/src/index.js';

const sc = parseScenario(
  {
    name: 'short-step',
    durationSec: 40,
    server: { service: { kind: 'constant', ms: 2 } },
    traffic: [{ pattern: 'step', basePerSec: 200, peakPerSec: 1000, stepStartSec: 15, stepEndSec: 25 }],
    spillway: { governor: { warmupMs: 5000 } },
  },
  'short-step',
);

describe('report output', () => {
  it('compare runs every mode on the same traffic', () => {
    const reports = compare(sc);
    expect(reports.map((r) => r.summary.mode)).toEqual(['none', 'static', 'spillway']);
    // Same seed, no retries: the same arrivals in every mode.
    const offered = reports.map((r) => r.summary.offered);
    expect(new Set(offered).size).toBe(1);
    const table = formatSummaryTable(reports);
    expect(table).toMatch(/^short-step \(seed 1, 40 s\)/);
    expect(table).toMatch(/goodput \/ capacity\s+\S+%\s+\S+%\s+\S+%/);
    expect(table).toContain('episode 1 (s)');
  });

  it('CSV has a header and one row per second', () => {
    const r = simulate(sc, { mode: 'spillway' });
    const lines = seriesToCsv(r.series).trim().split('\n');
    expect(lines[0]).toBe(
      't,offered,offeredFirst,admitted,goodput,late,shed,limited,failed,p50Ms,p99Ms,factor,pressure,smoothedPressure,dominant,maxWaitMs,inFlight',
    );
    expect(lines).toHaveLength(41);
    expect(lines[20]!.split(',')).toHaveLength(17);
  });

  it('renders a vega chart to SVG and writes json, csv and svg files', async () => {
    const reports = compare(sc, { modes: ['none', 'spillway'] });
    const svg = await renderChart(reports);
    expect(svg.startsWith('<svg')).toBe(true);
    for (const text of [
      'requests per second',
      'throttle factor',
      'dominant signal',
      'goodput (spillway)',
      'event-loop-delay',
    ]) {
      expect(svg).toContain(text);
    }
    const dir = await mkdtemp(join(tmpdir(), 'spillway-report-'));
    const paths = await writeReport(reports, dir);
    expect(paths.map((p) => p.slice(dir.length + 1))).toEqual([
      'short-step-none.json',
      'short-step-none.csv',
      'short-step-none.svg',
      'short-step-spillway.json',
      'short-step-spillway.csv',
      'short-step-spillway.svg',
      'short-step-compare.svg',
    ]);
    const json = JSON.parse(await readFile(join(dir, 'short-step-spillway.json'), 'utf8'));
    expect(json.summary.mode).toBe('spillway');
    expect(json.series).toHaveLength(40);
  });
});

describe('tune', () => {
  it('reports progress, starts from the scenario settings and never returns worse than them', async () => {
    const progress: [number, number][] = [];
    const result = await tune(sc, { budget: 6, onProgress: (d, t) => progress.push([d, t]) });
    expect(progress).toEqual([
      [1, 6],
      [2, 6],
      [3, 6],
      [4, 6],
      [5, 6],
      [6, 6],
    ]);
    expect(result.trials).toHaveLength(6);
    expect(result.trials[0]).toBe(result.baseline);
    expect(result.baseline.params.smoothingMs).toBe(2000);
    expect(result.best.score).toBeGreaterThanOrEqual(result.baseline.score);
    for (const t of result.trials) expect(t.params.releaseAt).toBeLessThan(t.params.engageAt);
    // Seeded: the same search twice gives the same trials.
    const again = await tune(sc, { budget: 6 });
    expect(again.trials.map((t) => t.params)).toEqual(result.trials.map((t) => t.params));
  });

  it('searches the Shedder too when asked', async () => {
    const result = await tune(sc, { budget: 3, includeShedder: true });
    expect(result.baseline.params).toMatchObject({ learnWindowMs: 2000, probePerSec: 0.001 });
    for (const t of result.trials) {
      expect(t.params.learnWindowMs).toBeGreaterThanOrEqual(100);
      expect(t.params.probePerSec).toBeGreaterThan(0);
    }
    const plain = await tune(sc, { budget: 1 });
    expect(plain.baseline.params).not.toHaveProperty('learnWindowMs');
  });
});
