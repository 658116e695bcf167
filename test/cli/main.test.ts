// The built `spillway` command, spawned as users run it (it delegates simulate, tune and live to
// spillway-sim). `npm test` builds dist/ and simulations/dist/ first (pretest).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cli = join(root, 'dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'spillway-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]) {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function scenarioFile(name: string, body: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body));
  return p;
}

describe('spillway', () => {
  it('starts with a shebang', () => {
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('prints the version of the package, exit 0', () => {
    const r = run('--version');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  });

  it('prints help for the command and each subcommand, exit 0', () => {
    const main = run('--help');
    expect(main.code).toBe(0);
    expect(main.stdout).toMatch(/Usage: spillway <command>/);
    for (const sub of ['simulate', 'tune', 'live']) {
      const r = run(sub, '--help');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: spillway ${sub} <scenario.json>`);
    }
    const demo = run('demo', '--help');
    expect(demo.code).toBe(0);
    expect(demo.stdout).toContain('Usage: spillway demo [scenario.json]');
  });

  it('exits 2 on usage errors, with the usage', () => {
    expect(run().code).toBe(2);
    const unknown = run('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    const option = run('simulate', 'x.json', '--bogus');
    expect(option.code).toBe(2);
    expect(option.stderr).toContain("unknown option '--bogus'\n");
    const negative = run('simulate', 'x.json', '--seed', '-1');
    expect(negative.code).toBe(2);
    expect(negative.stderr).toContain(
      '--seed needs a value; for a value starting with "-", write --seed=<value>',
    );
    expect(negative.stderr).not.toContain('ambiguous');
    const below = run('simulate', 'x.json', '--seed=-1');
    expect(below.code).toBe(2);
    expect(below.stderr).toContain('--seed must be an integer >= 0, got "-1"');
    expect(option.stderr).toContain('Usage: spillway simulate');
    const mode = run('simulate', 'x.json', '--mode', 'fast');
    expect(mode.code).toBe(2);
    expect(mode.stderr).toContain('--mode must be one of');
    expect(run('simulate').stderr).toContain('missing the scenario file');
  });

  it('names the path of a missing scenario file, exit 1', () => {
    const r = run('simulate', 'no-such-scenario.json');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(dir, 'no-such-scenario.json'));
    expect(r.stderr).toContain('not found');
  });

  it('names the file and the field of a malformed scenario, exit 1', () => {
    const p = scenarioFile('bad.json', {
      name: 'bad',
      durationSec: 5,
      traffic: [{ pattern: 'steady', ratePerSec: -3 }],
    });
    const r = run('simulate', p);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(p);
    expect(r.stderr).toContain('traffic[0].ratePerSec');
    const notJson = run('simulate', scenarioFile('broken.json', '{"name": '));
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toContain('broken.json');
    expect(notJson.stderr).toMatch(/broken\.json: the file is not valid JSON( at line 1, column \d+)?: /);
    expect(notJson.stderr).not.toContain('must be');
  });

  it('refuses, at once and naming the field, a scenario past the bounds or nested 100,000 deep, exit 1', () => {
    const cases: ReadonlyArray<[string, string, RegExp]> = [
      [
        'huge.json',
        JSON.stringify({ name: 'huge', durationSec: 60, traffic: [{ pattern: 'steady', ratePerSec: 1e6 }] }),
        /huge\.json: traffic\[0\] must be a source that keeps the run within 5,000,000 requests/,
      ],
      [
        'tenants.json',
        JSON.stringify({
          name: 't',
          durationSec: 60,
          traffic: [{ pattern: 'steady', ratePerSec: 1, tenants: 1e8 }],
        }),
        /tenants\.json: traffic\[0\]\.tenants must be at most 10,000 tenants/,
      ],
      [
        'deep.json',
        `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
        /deep\.json: \[0\]\[0\].* must be nested at most 32 levels deep/,
      ],
      [
        'deep-field.json',
        `{"name":"d","durationSec":10,"traffic":[{"pattern":"steady","ratePerSec":1,"retry":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}]}`,
        /deep-field\.json: traffic\[0\]\.retry\.a\.a.* must be nested at most 32 levels deep/,
      ],
    ];
    for (const [name, body, message] of cases) {
      const r = run('simulate', scenarioFile(name, body));
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(message);
      expect(r.stderr, name).not.toContain('RangeError');
      expect(r.stderr.length, name).toBeLessThan(600);
    }
  });

  it('simulates a short scenario: a table on stdout, JSON, CSV and SVG in --out', () => {
    const p = scenarioFile('short.json', {
      name: 'short',
      durationSec: 20,
      server: { service: { kind: 'constant', ms: 2 } },
      traffic: [{ pattern: 'step', basePerSec: 200, peakPerSec: 1200, stepStartSec: 5, stepEndSec: 12 }],
    });
    const out = join(dir, 'out');
    const r = run('simulate', p, '--mode', 'all', '--seed', '3', '--out', out);
    // Progress goes to stderr, never into the table.
    expect(r.stdout).not.toContain('simulating');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^short \(seed 3, 20 s\)/);
    expect(r.stdout).toMatch(/goodput \/ capacity\s+\S+%\s+\S+%\s+\S+%/);
    for (const mode of ['none', 'static', 'spillway']) {
      for (const ext of ['json', 'csv', 'svg']) {
        const f = join(out, `short-${mode}.${ext}`);
        expect(existsSync(f)).toBe(true);
        expect(r.stdout).toContain(f);
      }
    }
    const report = JSON.parse(readFileSync(join(out, 'short-spillway.json'), 'utf8'));
    expect(report.summary.seed).toBe(3);
    expect(report.series).toHaveLength(20);
    expect(readFileSync(join(out, 'short-compare.svg'), 'utf8')).toContain('<svg');
    expect(r.stdout).toContain(`Chart: ${join(out, 'short-compare.svg')}`);
  });
});
