import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import {
  describePolicy,
  isPolicyError,
  type PolicyError,
  PolicyRuntime,
  parsePolicy,
  watchPolicy,
} from '../../src/policy/index.js';
import { queueDepth } from '../../src/signals/queue-depth.js';
import type { Signal } from '../../src/signals/types.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), 'spillway-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  governor: { floor: 0.1 },
  limiters: {
    perUser: {
      ratePerSec: 10,
      burst: 20,
      tiers: { premium: { ratePerSec: 100, burst: 200, keys: ['vip'] } },
    },
  },
  routes: [{ path: '/api', limiter: 'perUser', priority: 'normal' }],
};

function problems(input: unknown, env: Record<string, string> = {}): PolicyError {
  try {
    parsePolicy(input, { env });
  } catch (err) {
    expect(isPolicyError(err)).toBe(true);
    expect(isConfigError(err)).toBe(true);
    return err as PolicyError;
  }
  throw new Error('expected a PolicyError');
}

describe('the policy schema', () => {
  it('accepts a full policy and applies defaults', () => {
    const p = parsePolicy(
      {
        signals: {
          eventLoopDelay: { targetMs: 40, limitMs: 200 },
          cpu: { target: 0.7, limit: 0.9 },
          memory: { kind: 'rss' },
        },
        ...base,
        pools: { pg: { maxConcurrent: 10, maxQueue: 50, queueTimeoutMs: 1000 } },
        stores: { shared: { kind: 'redis', url: 'redis://127.0.0.1:6379', prefix: 'app:' } },
      },
      { env: {} },
    );
    expect(p.limiters.perUser!.algorithm).toBe('token-bucket');
    expect(p.limiters.perUser!.followGovernor).toBe(true);
    expect(p.pools.pg!.maxQueue).toBe(50);
    expect(parsePolicy({}, { env: {} })).toEqual({ limiters: {}, routes: [], pools: {}, stores: {} });
  });

  // Every field, a bad value, and the words of what is allowed.
  const bad: [string, unknown, string, string][] = [
    [
      'signals.eventLoopDelay.targetMs',
      { signals: { eventLoopDelay: { targetMs: -1 } } },
      'signals.eventLoopDelay.targetMs',
      '> 0',
    ],
    [
      'signals.eventLoopDelay.percentile',
      { signals: { eventLoopDelay: { percentile: 101 } } },
      'signals.eventLoopDelay.percentile',
      'percentile',
    ],
    [
      'signals.eventLoopUtilization.limit',
      { signals: { eventLoopUtilization: { limit: 2 } } },
      'signals.eventLoopUtilization.limit',
      'from 0 to 1',
    ],
    ['signals.cpu.tree', { signals: { cpu: { tree: 'yes' } } }, 'signals.cpu.tree', 'true or false'],
    [
      'signals.memory.kind',
      { signals: { memory: { kind: 'swap' } } },
      'signals.memory.kind',
      '"heap", "rss"',
    ],
    [
      'signals target >= limit',
      { signals: { cpu: { target: 0.9, limit: 0.5 } } },
      'signals.cpu.target',
      'less than limit',
    ],
    ['governor.floor', { governor: { floor: 0 } }, 'governor.floor', 'greater than 0 and less than 1'],
    ['governor.mode', { governor: { mode: 'off' } }, 'governor.mode', '"enforce", "shadow"'],
    ['governor.intervalMs', { governor: { intervalMs: '250' } }, 'governor.intervalMs', '> 0'],
    [
      'governor releaseAt >= engageAt',
      { governor: { releaseAt: 0.6, engageAt: 0.5 } },
      'governor.releaseAt',
      'less than engageAt',
    ],
    ['unknown setting', { governor: { flor: 0.1 } }, 'governor.flor', 'only the settings intervalMs'],
    ['unknown section', { limits: {} }, 'limits', 'only the settings'],
    [
      'limiters.x.ratePerSec',
      { limiters: { x: { ratePerSec: 0, burst: 1 } } },
      'limiters.x.ratePerSec',
      '> 0',
    ],
    ['limiters.x.burst missing', { limiters: { x: { ratePerSec: 1 } } }, 'limiters.x.burst', '> 0'],
    [
      'limiters.x.algorithm',
      { limiters: { x: { ratePerSec: 1, burst: 1, algorithm: 'gcra' } } },
      'limiters.x.algorithm',
      '"token-bucket"',
    ],
    [
      'limiters.x.maxKeys',
      { limiters: { x: { ratePerSec: 1, burst: 1, maxKeys: 1.5 } } },
      'limiters.x.maxKeys',
      'an integer',
    ],
    [
      'limiters.x.tiers.t.burst',
      { limiters: { x: { ratePerSec: 1, burst: 1, tiers: { t: { ratePerSec: 1, burst: -2 } } } } },
      'limiters.x.tiers.t.burst',
      '> 0',
    ],
    [
      'limiters.x.store unknown',
      { limiters: { x: { ratePerSec: 1, burst: 1, store: 'nope' } } },
      'limiters.x.store',
      'stores',
    ],
    ['limiter name', { limiters: { '1x': { ratePerSec: 1, burst: 1 } } }, 'limiters.1x', 'a name of letters'],
    ['routes[0].path', { routes: [{ path: 'api' }] }, 'routes.0.path', 'starting with "/"'],
    [
      'routes[0].priority',
      { routes: [{ priority: 'urgent' }] },
      'routes.0.priority',
      '"critical", "normal", "sheddable"',
    ],
    ['routes[0].limiter unknown', { routes: [{ limiter: 'nope' }] }, 'routes.0.limiter', 'null'],
    ['routes[0].cost', { routes: [{ cost: 0 }] }, 'routes.0.cost', '> 0'],
    [
      'pools.pg.maxConcurrent',
      { pools: { pg: { maxConcurrent: 0 } } },
      'pools.pg.maxConcurrent',
      'an integer from 1',
    ],
    [
      'pools.pg.maxQueue',
      { pools: { pg: { maxConcurrent: 1, maxQueue: -1 } } },
      'pools.pg.maxQueue',
      'an integer from 0',
    ],
    ['stores.s.kind', { stores: { s: { kind: 'disk' } } }, 'stores.s.kind', '"memory" or "redis"'],
    ['stores.s.url', { stores: { s: { kind: 'redis', url: 'http://x' } } }, 'stores.s.url', 'redis://'],
  ];
  for (const [what, input, path, allowed] of bad) {
    it(`refuses ${what}, naming the path, the value and what is allowed`, () => {
      const err = problems(input);
      const issue = err.issues.find((i) => i.path === path);
      expect(issue, `${path} in ${err.message}`).toBeDefined();
      expect(issue!.allowed).toContain(allowed);
      expect(err.message).toContain(`${path}: expected`);
    });
  }

  it('reports every problem at once', () => {
    const err = problems({
      governor: { floor: 2, mode: 'x' },
      limiters: { a: { ratePerSec: -1, burst: 0 } },
    });
    expect(err.issues.map((i) => i.path).sort()).toEqual(
      ['governor.floor', 'governor.mode', 'limiters.a.burst', 'limiters.a.ratePerSec'].sort(),
    );
    expect(err.message).toContain('4 problems');
    expect(err.message).toContain('got `2` (number)');
  });

  it('reports malformed JSON as such', () => {
    const err = problems('{"governor": ');
    expect(err.issues[0]!.allowed).toMatch(/^JSON \(/);
  });
});

describe('SPILLWAY_* environment overrides', () => {
  it('override single values, matching settings case-insensitively and ignoring _', () => {
    const p = parsePolicy(base, {
      env: {
        SPILLWAY_GOVERNOR__FLOOR: '0.2',
        SPILLWAY_LIMITERS__PER_USER__RATE_PER_SEC: '50',
        SPILLWAY_GOVERNOR__MODE: 'shadow',
        SPILLWAY_ROUTES__0__COST: '3',
        SPILLWAY_REQUIRE_SERVICES: '1', // no "__": not an override
      },
    });
    expect(p.governor!.floor).toBe(0.2);
    expect(p.governor!.mode).toBe('shadow');
    expect(p.limiters.perUser!.ratePerSec).toBe(50);
    expect(p.limiters.perUser!.burst).toBe(20);
    expect(p.routes[0]!.cost).toBe(3);
  });

  it('names the variable when its value or its path is wrong', () => {
    const err = problems(base, { SPILLWAY_GOVERNOR__FLOOR: '7', SPILLWAY_LIMITERS__NOBODY__BURST: '3' });
    const floor = err.issues.find((i) => i.path === 'governor.floor')!;
    expect(floor.env).toBe('SPILLWAY_GOVERNOR__FLOOR');
    expect(err.message).toContain('(from SPILLWAY_GOVERNOR__FLOOR)');
    expect(err.issues.some((i) => i.env === 'SPILLWAY_LIMITERS__NOBODY__BURST')).toBe(true);
  });
});

const quietSignal = (): Signal => queueDepth('test', () => 0, { target: 5, limit: 50 });

describe('PolicyRuntime', () => {
  it('hot reload keeps every bucket, follows the new limits from then on, and refuses a bad policy', async () => {
    const clock = new ManualClock();
    const rt = new PolicyRuntime(parsePolicy(base, { env: {} }), { clock, signals: [quietSignal()] });
    const reloads: string[][] = [];
    const refusals: PolicyError[] = [];
    rt.on('reloaded', (r) => reloads.push([...r.changed]));
    rt.on('rejected', (e) => refusals.push(e));
    const perUser = rt.limiter('perUser');
    // Spend 15 of alice's 20 tokens; vip has the premium tier.
    for (let i = 0; i < 15; i++) expect((await perUser.take('alice')).allowed).toBe(true);
    expect((await perUser.take('vip', { cost: 150 })).allowed).toBe(true);

    rt.update(
      { ...base, limiters: { perUser: { ...base.limiters.perUser, ratePerSec: 1, burst: 100 } } },
      { env: {} },
    );
    expect(reloads).toEqual([['limiters.perUser']]);
    expect(perUser.burst).toBe(100);
    // Alice's bucket kept its 5 tokens (not reset to the new burst of 100)...
    expect((await perUser.peek('alice', { cost: 6 })).allowed).toBe(false);
    expect((await perUser.take('alice', { cost: 5 })).allowed).toBe(true);
    // ...and, from this call on, refills at the new rate: 1 token per second.
    clock.advance(1000);
    expect((await perUser.peek('alice', { cost: 1 })).allowed).toBe(true);
    expect((await perUser.peek('alice', { cost: 2 })).allowed).toBe(false);
    clock.advance(5000);

    // A bad policy: refused, reported, the old one keeps running.
    expect(() => rt.update({ limiters: { perUser: { ratePerSec: -5, burst: 1 } } }, { env: {} })).toThrow(
      /ratePerSec/,
    );
    expect(refusals).toHaveLength(1);
    expect(rt.policy.limiters.perUser!.burst).toBe(100);
    expect((await perUser.take('alice', { cost: 6 })).allowed).toBe(true);
    rt.stop();
  });

  it('routes match on segment boundaries, first match wins', () => {
    const rt = new PolicyRuntime(
      parsePolicy(
        { ...base, routes: [{ path: '/api', method: 'post', cost: 2 }, { path: '/' }] },
        { env: {} },
      ),
      {
        signals: [quietSignal()],
      },
    );
    expect(rt.route('POST', '/api/x')!.cost).toBe(2);
    expect(rt.route('GET', '/api/x')!.cost).toBeUndefined();
    expect(rt.route('POST', '/apix')!.cost).toBeUndefined();
    expect(() => rt.limiter('nope')).toThrow(/perUser/);
    rt.stop();
  });

  it('reloads from a real file through fs.watch; a bad edit is refused and the old policy kept', async () => {
    const file = join(dir, 'policy.json');
    writeFileSync(file, JSON.stringify(base));
    const rt = new PolicyRuntime(parsePolicy(base, { env: {} }), { signals: [quietSignal()] });
    const watcher = watchPolicy(file, rt, { debounceMs: 20, env: {} });
    const next = <T>(event: 'reloaded' | 'rejected') =>
      new Promise<T>((done, fail) => {
        const t = setTimeout(() => fail(new Error(`no ${event} within 5 s`)), 5000);
        rt.once(event, (x: unknown) => {
          clearTimeout(t);
          done(x as T);
        });
      });
    try {
      const reloaded = next<{ changed: string[] }>('reloaded');
      writeFileSync(file, JSON.stringify({ ...base, governor: { floor: 0.3 } }));
      expect((await reloaded).changed).toContain('governor');
      expect(rt.policy.governor!.floor).toBe(0.3);
      const rejected = next<PolicyError>('rejected');
      writeFileSync(file, '{"governor": {"floor": 5}}');
      expect((await rejected).message).toContain('governor.floor');
      expect(rt.policy.governor!.floor).toBe(0.3);
    } finally {
      watcher.close();
      rt.stop();
    }
  });

  it('describes the effective limits per tier and priority at factors 1, 0.5 and the floor', () => {
    const text = describePolicy(parsePolicy(base, { env: {} }));
    expect(text).toContain('factor 0.1');
    expect(text).toMatch(
      /\(default\)\s+normal\s+10\.0\/s burst 20\.0\s+5\.00\/s burst 10\.0\s+1\.00\/s burst 2\.00/,
    );
    expect(text).toMatch(/premium\s+critical\s+100\/s burst 200/);
  });
});

describe('spillway check', () => {
  const cli = join(root, 'dist/cli.js');
  const check = (file: string, env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [cli, 'check', file], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('prints what a good policy does, exit 0', () => {
    writeFileSync(join(dir, 'good.json'), JSON.stringify(base));
    const r = check('good.json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('good.json: valid');
    expect(r.stdout).toContain('limiter perUser');
  });

  it('lists every problem of a bad policy with the env overrides applied, exit 1', () => {
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({ ...base, governor: { floor: 3 }, routes: [{ path: 'x' }] }),
    );
    const r = check('bad.json', { SPILLWAY_LIMITERS__PER_USER__BURST: '-1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('bad.json');
    expect(r.stderr).toContain('governor.floor');
    expect(r.stderr).toContain('routes.0.path');
    expect(r.stderr).toContain('(from SPILLWAY_LIMITERS__PER_USER__BURST)');
  });

  it('says what is wrong with the command line, exit 2', () => {
    const r = spawnSync(process.execPath, [cli, 'check'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('Usage: spillway check');
  });
});
