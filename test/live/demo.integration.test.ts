// `npm run demo` in a short mode through the built CLI (it forks simulations/dist/live/*-worker.js;
// `npm test` builds dist/ first): every phase runs against a real server on 127.0.0.1, capacities
// given (no measurement), about 4 s of load per phase. The chart and the report must hold the
// factor, the per-key quota and the queue time, and each phase's line must name what the run
// recorded as having acted.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { DemoReport } from '../../simulations/src/live/demo.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cli = join(root, 'simulations/dist/cli/main.js');

describe('npm run demo (short)', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs every phase and writes the chart, the report and the README lines', async () => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
    const { main } = (await import(cli)) as typeof import('../../simulations/src/cli/main.js');
    dir = await mkdtemp(join(tmpdir(), 'spillway-demo-'));
    const readme = join(dir, 'README.md');
    await writeFile(readme, 'before\n<!-- demo:phases:start -->\nold\n<!-- demo:phases:end -->\nafter\n');
    let stdout = '';
    let stderr = '';
    const io = {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      cwd: root,
    };
    const code = await main(
      [
        'demo',
        '--duration-scale',
        '0.2',
        '--capacity-cpu',
        '400',
        '--capacity-pool',
        '350',
        '--out',
        dir,
        '--readme',
        readme,
      ],
      io,
    );
    expect(code, stderr).toBe(0);

    const demo = JSON.parse(await readFile(join(dir, 'demo.json'), 'utf8')) as DemoReport & {
      chart: { vconcat: { title?: string; layer?: { data: { values: { series: string }[] } }[] }[] };
    };
    expect(demo.phases.map((p) => p.phase.name)).toEqual([
      'cpu-none',
      'cpu-spillway',
      'pool-none',
      'pool-spillway',
    ]);
    expect(demo.capacityPerSec).toEqual({ cpu: 400, pool: 350 });

    // The chart: a panel each for the factor, the per-key quota and the queue time, with data.
    const panels = new Map(
      demo.chart.vconcat
        .filter((p) => p.title !== undefined)
        .map((p) => [p.title!, p.layer![1]!.data.values]),
    );
    const seriesOf = (title: string) => new Set(panels.get(title)?.map((v) => v.series));
    expect(seriesOf('requests per second')).toEqual(new Set(['offered', '2xx', '429', '503']));
    expect(seriesOf('throttle factor (governor)')).toEqual(new Set(['throttle factor']));
    expect(seriesOf('per-key quota (scaled by the factor)')).toEqual(new Set(['per-key quota']));
    expect(seriesOf('time waited in the guard queue')).toEqual(
      new Set(['queue time, mean', 'queue time, max']),
    );
    const svg = await readFile(join(dir, 'demo.svg'), 'utf8');
    for (const s of [
      'throttle factor',
      'per-key quota',
      'queue time, mean',
      'cpu-spillway',
      'pool-spillway',
    ]) {
      expect(svg).toContain(s);
    }

    // Spillway phases recorded their decisions every second; unprotected phases none.
    for (const p of demo.phases) {
      const recorded = p.report.live.decisions.filter((d) => d !== null);
      if (p.phase.mode === 'none') expect(recorded).toHaveLength(0);
      else {
        expect(recorded.length).toBeGreaterThan(0);
        expect(recorded.some((d) => d!.keyFactor !== null)).toBe(true);
      }
    }

    // One line per phase, each naming what the run recorded: the lines are the mechanisms.
    const lines = (await readFile(join(dir, 'demo.md'), 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('- '));
    expect(lines).toHaveLength(4);
    const names: Record<string, string> = {
      'turn-budget': 'loop-turn budget',
      'key-limiter': 'key limiter',
      shedder: 'shedder',
      concurrency: 'concurrency stage',
      'governor-factor': 'governor factor',
    };
    demo.phases.forEach((p, i) => {
      expect(lines[i]).toBe(`- ${p.line}`);
      expect(lines[i]).toContain(p.phase.title);
      if (p.mechanisms.length === 0) expect(lines[i]).toMatch(/nothing refuses|no mechanism acted/);
      for (const m of p.mechanisms) expect(lines[i]).toContain(names[m.kind]);
    });
    // Without protection nothing refuses; under 2.25x overload behind Spillway something must act.
    expect(demo.phases[0]!.mechanisms).toEqual([]);
    expect(demo.phases[1]!.mechanisms.length).toBeGreaterThan(0);
    expect(demo.phases[3]!.mechanisms.length).toBeGreaterThan(0);

    const updated = await readFile(readme, 'utf8');
    expect(updated.startsWith('before\n<!-- demo:phases:start -->\n')).toBe(true);
    expect(updated.endsWith('<!-- demo:phases:end -->\nafter\n')).toBe(true);
    for (const l of lines) expect(updated).toContain(l);
    expect(updated).not.toContain('\nold\n');
  }, 120_000);
});
