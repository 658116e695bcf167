// The packages as a user gets them: `npm pack` both (spillway and spillway-sim), install the two
// tarballs into an empty directory with only their declared dependencies (plus the optional peers
// the subpath entries name, at the versions this repository tests with), and there:
// - import every subpath entry of both packages from ESM and require it from CommonJS;
// - compile a TypeScript file against every entry under `nodenext` and under `bundler`;
// - run every documented command of the `spillway` bin on a tiny scenario and a policy file.
// The entry list comes from the packages' `exports`, so entries added later are covered as they land.
// Slow (an npm install, from npm's cache when it can), bounded by the timeouts below.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const simRoot = join(root, 'simulations');

interface Manifest {
  name: string;
  version: string;
  exports: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  bin?: Record<string, string>;
}
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;
const core = readJson<Manifest>(join(root, 'package.json'));
const sim = readJson<Manifest>(join(simRoot, 'package.json'));

/** Every importable specifier of a package, from its exports map (not its package.json). */
const entries = (m: Manifest) =>
  Object.keys(m.exports)
    .filter((k) => k !== './package.json')
    .map((k) => (k === '.' ? m.name : `${m.name}/${k.slice(2)}`));
const specifiers = [...entries(core), ...entries(sim)];

/** The version installed here, so that the install can come from npm's cache. */
const installedVersion = (name: string) =>
  readJson<{ version: string }>(join(root, 'node_modules', name, 'package.json')).version;

const app = mkdtempSync(join(tmpdir(), 'spillway-install-'));
afterAll(() => rmSync(app, { recursive: true, force: true }), 120_000);

function sh(cmd: string, args: string[], cwd: string, timeout = 120_000): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
}

function npm(args: string[], cwd: string, timeout = 240_000): string {
  return sh(
    'npm',
    [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
    cwd,
    timeout,
  );
}

/**
 * Runs an installed bin in its own process group and kills the whole group (the live harness's
 * server and load workers included) if it has not finished in `timeoutMs`.
 */
function bin(name: string, args: string[], timeoutMs = 90_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(join(app, 'node_modules/.bin', name), args, { cwd: app, detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      process.kill(-child.pid!, 'SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

beforeAll(() => {
  // `npm test` has built dist/ and simulations/dist/ (pretest).
  for (const d of [join(root, 'dist'), join(simRoot, 'dist')])
    if (!existsSync(d)) throw new Error(`${d} is missing: run \`npm run build\` first`);
  const packed = (cwd: string) => {
    const out = JSON.parse(npm(['pack', '--json', '--pack-destination', app], cwd)) as { filename: string }[];
    return join(app, out[0]!.filename);
  };
  const tarballs = [packed(root), packed(simRoot)];
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // The optional peers (frameworks, clients, zod, @types/express) that the subpath entries load,
  // and what the TypeScript check needs. Nothing from this repository's devDependencies otherwise.
  const extra = [...Object.keys(core.peerDependencies ?? {}), '@types/node'].map(
    (n) => `${n}@${installedVersion(n)}`,
  );
  npm(['install', ...tarballs, ...extra], app);
}, 300_000);

describe('the packed packages, installed in an empty app', { timeout: 300_000 }, () => {
  it('ship what they declare: LICENSE, README, no source maps pointing at files left out', () => {
    for (const dir of ['spillway', 'spillway-sim']) {
      const pkg = join(app, 'node_modules', dir);
      expect(existsSync(join(pkg, 'LICENSE')), `${dir}/LICENSE`).toBe(true);
      expect(existsSync(join(pkg, 'README.md')), `${dir}/README.md`).toBe(true);
      const files = readdirSync(join(pkg, 'dist'), { recursive: true }) as string[];
      expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    }
    expect(existsSync(join(app, 'node_modules/spillway-sim/scenarios/step-3x.json'))).toBe(true);
  });

  it('imports every subpath entry from ESM', () => {
    const script = `for (const s of ${JSON.stringify(specifiers)}) { const m = await import(s); if (Object.keys(m).length === 0) throw new Error(s + ' exports nothing'); } console.log('ok');`;
    expect(sh(process.execPath, ['--input-type=module', '-e', script], app).trim()).toBe('ok');
  });

  it('requires every subpath entry from CommonJS', () => {
    const script = `for (const s of ${JSON.stringify(specifiers)}) { const m = require(s); if (Object.keys(m).length === 0) throw new Error(s + ' exports nothing'); } console.log('ok');`;
    const r = spawnSync(process.execPath, ['--input-type=commonjs', '--no-warnings', '-e', script], {
      cwd: app,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
  });

  for (const resolution of ['nodenext', 'bundler'] as const) {
    it(`type-checks a file importing every entry under moduleResolution ${resolution}`, () => {
      const dir = join(app, `ts-${resolution}`);
      const lines = specifiers.map((s, i) => `import * as m${i} from '${s}';`);
      lines.push(`export const all = [${specifiers.map((_, i) => `m${i}`).join(', ')}];`);
      lines.push("import { ManualClock } from 'spillway';");
      lines.push('const clock: { now(): number } = new ManualClock();');
      lines.push('export const t: number = clock.now();');
      sh('mkdir', ['-p', dir], app);
      writeFileSync(join(dir, 'index.ts'), `${lines.join('\n')}\n`);
      const compilerOptions =
        resolution === 'nodenext'
          ? { module: 'nodenext', moduleResolution: 'nodenext' }
          : { module: 'esnext', moduleResolution: 'bundler' };
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            ...compilerOptions,
            target: 'es2022',
            strict: true,
            noEmit: true,
            types: ['node'],
          },
          files: ['index.ts'],
        }),
      );
      const tsc = join(root, 'node_modules/typescript/bin/tsc');
      const r = spawnSync(process.execPath, [tsc, '-p', dir], {
        cwd: app,
        encoding: 'utf8',
        timeout: 280_000,
      });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('runs spillway --version and help', async () => {
    const v = await bin('spillway', ['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(core.version);
    const help = await bin('spillway', ['--help']);
    expect(help.code).toBe(0);
    for (const command of ['simulate', 'tune', 'live', 'check']) expect(help.stdout).toContain(command);
  });

  const scenario = {
    name: 'tiny',
    durationSec: 3,
    capacityPerSec: 300,
    server: { service: { kind: 'constant', ms: 1 } },
    traffic: [{ pattern: 'step', basePerSec: 100, peakPerSec: 600, stepStartSec: 1, stepEndSec: 2 }],
    report: { settleSec: 1 },
  };

  it('runs spillway simulate on a tiny scenario, writing the chart with the declared vega', async () => {
    writeFileSync(join(app, 'tiny.json'), JSON.stringify(scenario));
    const r = await bin('spillway', ['simulate', 'tiny.json', '--out', 'out']);
    expect(r.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^tiny \(seed \d+, 3 s\)/);
    expect(readFileSync(join(app, 'out/tiny-compare.svg'), 'utf8')).toContain('<svg');
    // The same command under the simulator's own name.
    expect(
      (await bin('spillway-sim', ['simulate', 'tiny.json', '--mode', 'spillway', '--out', 'out2'])).code,
    ).toBe(0);
  });

  it('runs spillway tune on a tiny scenario', async () => {
    writeFileSync(join(app, 'tiny.json'), JSON.stringify(scenario));
    const r = await bin('spillway', ['tune', 'tiny.json', '--budget', '2', '--out', 'out']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(app, 'out/tiny-tune.json'))).toBe(true);
  });

  it('runs spillway live on a tiny scenario against a real server', async () => {
    writeFileSync(join(app, 'tiny.json'), JSON.stringify(scenario));
    const r = await bin('spillway', [
      'live',
      'tiny.json',
      '--mode',
      'spillway',
      '--capacity',
      '300',
      '--out',
      'live',
    ]);
    expect(r.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND/);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/goodput/);
    expect(readdirSync(join(app, 'live')).some((f) => f.endsWith('.svg'))).toBe(true);
  });

  it('runs spillway check on a good and a bad policy file', async () => {
    writeFileSync(
      join(app, 'policy.json'),
      JSON.stringify({
        limiters: { perUser: { ratePerSec: 20, burst: 40 } },
        routes: [{ path: '/api', limiter: 'perUser' }],
      }),
    );
    const good = await bin('spillway', ['check', 'policy.json']);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toContain('limiter perUser');
    writeFileSync(join(app, 'bad.json'), JSON.stringify({ governor: { floor: 2 } }));
    const bad = await bin('spillway', ['check', 'bad.json']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('governor.floor');
  });
});
