// A real Prometheus (Debian's `prometheus` package) scrapes a guarded server (the node:http guard,
// with a keyed limiter, a Redis-backed one whose Redis is gone, and a concurrency stage) under a
// short load;
// every PromQL expression of the Grafana dashboard and of the alert rules must return data, the
// rules must load healthy, and promtool must accept and pass the rules' unit tests.
// Without the binaries the tests skip with one line; under SPILLWAY_REQUIRE_SERVICES=1 they fail.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpGuard, type HttpGuard } from '../../src/adapters/http.js';
import { createGovernor } from '../../src/governor/index.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/index.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import {
  createMetrics,
  metricsHandler,
  type SpillwayMetrics,
} from '../../src/observability/prometheus/index.js';
import { createRedisStore } from '../../src/stores/redis/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const RULES = join(root, 'docs/prometheus/spillway-alerts.yml');
const RULE_TESTS = join(root, 'docs/prometheus/spillway-alerts.test.yml');
const DASHBOARD = join(root, 'docs/grafana/spillway-dashboard.json');
const REQUIRED = process.env['SPILLWAY_REQUIRE_SERVICES'] === '1';

function missing(): string | undefined {
  for (const bin of ['prometheus', 'promtool']) {
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    if (r.error !== undefined || r.status !== 0)
      return `${bin} is not installed (apt-get install prometheus)`;
  }
  return undefined;
}
const reason = missing();
if (reason !== undefined && REQUIRED) throw new Error(`SPILLWAY_REQUIRE_SERVICES=1 but ${reason}`);
if (reason !== undefined) console.warn(`skipping the Prometheus integration tests: ${reason}`);

/** Every `expr` in the dashboard, with its variables replaced by what Prometheus understands. */
function dashboardExpressions(): string[] {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: { targets?: { expr: string }[] }[];
  };
  return d.panels
    .flatMap((p) => p.targets ?? [])
    .map((t) =>
      t.expr
        .replaceAll('$__rate_interval', '30s')
        .replaceAll('$job', '.*')
        .replaceAll('$instance', '.*')
        .replaceAll('$name', '.*'),
    );
}

/** Every alert expression in the rules file (the `expr:` scalars, block or inline). */
function ruleExpressions(): string[] {
  const lines = readFileSync(RULES, 'utf8').split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!);
    if (m === null) continue;
    if (m[2] !== '|') {
      out.push(m[2]!);
      continue;
    }
    const block: string[] = [];
    const indent = m[1]!.length;
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > indent)) {
      block.push(lines[++i]!.trim());
    }
    out.push(block.join(' '));
  }
  return out;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(reason !== undefined)('a real Prometheus scraping Spillway', () => {
  let dir: string;
  let prometheus: ChildProcess | undefined;
  let promLog = '';
  let api: string;
  let app: Server;
  let metricsServer: Server;
  let metrics: SpillwayMetrics;
  let guard: HttpGuard | undefined;
  let redis: Redis | undefined;
  const governor = createGovernor({
    warmupMs: 0,
    intervalMs: 50,
    smoothingMs: 100,
    cutIntervalMs: 0,
    signals: [
      { name: 'load', unit: 'ratio', target: 0, limit: 1, sample: () => 0.95 },
      {
        name: 'broken',
        unit: 'ms',
        target: 10,
        limit: 20,
        sample: () => {
          throw new Error('no reading');
        },
      },
    ],
  });
  governor.on('signalError', () => {});

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spillway-prometheus-'));
    const registry = new Registry();
    metrics = createMetrics({ registry, maxRoutes: 4 });
    metrics.observeGovernor(governor, { name: 'api' });
    const limiter = createLimiter({ ratePerSec: 50, burst: 10, factor: governor });
    // The login route has a quota of its own, not scaled by the factor: its refusals are 'limited'.
    const login = createLimiter({ ratePerSec: 2, burst: 2 });
    // The search route's quota lives in a Redis that is not there (a closed port, no offline
    // queue): every call fails at once and the store decides by its 'open' policy, publishing
    // its errors and fallbacks on spillway:store as it would in production.
    redis = new Redis({
      host: '127.0.0.1',
      port: await freePort(),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 60_000,
    });
    redis.on('error', () => {});
    const search = createLimiter({
      ratePerSec: 1000,
      burst: 1000,
      store: createRedisStore({ client: redis, name: 'redis', onError: 'open', failureThreshold: 1e9 }),
    });
    // One slot for /pool, whose handler holds it 20 ms: a second /pool request waits (queued).
    const pool = new ConcurrencyLimiter({ limit: 1, maxWaitMs: 5000 });
    metrics.observeLimiter(limiter, { name: 'per-client' });
    metrics.observeLimiter(pool, { name: 'pool' });
    governor.start();

    // The app behind a real guard: its decisions and responses go out on the channels because the
    // guard publishes them, not the test.
    let n = 0;
    guard = createHttpGuard({
      name: 'api',
      governor,
      limiter,
      key: () => String(n % 5),
      priority: () => (n++ % 3 === 0 ? 'sheddable' : 'normal'),
      turnBudgetMs: false,
      routes: [
        { path: '/login', limiter: login },
        { path: '/search', limiter: search },
        { path: '/pool', limiter: null, concurrency: pool },
      ],
    });
    app = createServer(
      guard.wrap((req, res) => {
        if (req.url === '/pool') setTimeout(() => res.end('ok'), 20);
        else res.end('ok');
      }),
    );
    const appPort = await listen(app);
    metricsServer = createServer(metricsHandler(registry));
    const metricsPort = await listen(metricsServer);

    const promPort = await freePort();
    api = `http://127.0.0.1:${promPort}/api/v1`;
    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(RULES)}`,
        'scrape_configs:',
        '  - job_name: spillway',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${metricsPort}']`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.stdout!.on('data', (c) => (promLog += c));
    prometheus.stderr!.on('data', (c) => (promLog += c));

    // Start the load only once Prometheus scrapes the target (it starts slowly on a busy machine).
    const upBy = performance.now() + 30_000;
    for (;;) {
      const up = await fetch(`${api}/query?query=${encodeURIComponent('up{job="spillway"} == 1')}`)
        .then((r) => r.json() as Promise<{ data?: { result: unknown[] } }>)
        .catch(() => undefined);
      if ((up?.data?.result.length ?? 0) > 0) break;
      if (performance.now() > upBy) throw new Error(`Prometheus never scraped the target:\n${promLog}`);
      await sleep(200);
    }

    // A short, bounded load on the app while Prometheus scrapes: 6 s, 3 requests in flight.
    const agent = new Agent({ keepAlive: true, maxSockets: 3 });
    const get = (path: string) =>
      new Promise<void>((ok, fail) => {
        const r = request({ host: '127.0.0.1', port: appPort, path, agent }, (res) => {
          res.resume();
          res.on('end', () => ok());
        });
        r.on('error', fail);
        r.end();
      });
    const paths = ['/', '/search', '/login', '/pool', '/a', '/b', '/c'];
    const until = performance.now() + 6000;
    const worker = async (w: number) => {
      for (let i = w; performance.now() < until && i < 200_000; i += 2) {
        await get(paths[i % paths.length]!);
        if (i % 10 === 0) await sleep(5);
      }
    };
    const poolWorker = async () => {
      for (let i = 0; performance.now() < until && i < 100_000; i++) await get('/pool');
    };
    await Promise.all([worker(0), worker(1), poolWorker()]);
    agent.destroy();
    await sleep(2500); // scrapes after the load
  }, 90_000);

  afterAll(async () => {
    governor.stop();
    guard?.close();
    redis?.disconnect();
    metrics?.close();
    if (prometheus !== undefined && prometheus.exitCode === null) {
      const exited = new Promise((r) => prometheus!.once('exit', r));
      prometheus.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
    }
    await new Promise<void>((r) => (app ? app.close(() => r()) : r()));
    await new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const res = await fetch(`${api}/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data: { result: never[] } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    return body.data.result;
  }

  it('scrapes the Spillway target and stores its series', async () => {
    const up = await query('up{job="spillway"}');
    expect(
      up.map((r) => r.value[1]),
      promLog,
    ).toEqual(['1']);
    const factor = await query('spillway_factor{name="api"}');
    expect(factor).toHaveLength(1);
    expect(Number(factor[0]!.value[1])).toBeLessThan(0.5);
    const outcomes = await query('sum by (outcome) (spillway_decisions_total{name="api"})');
    expect(outcomes.map((r) => r.metric['outcome']).sort()).toEqual([
      'admitted',
      'limited',
      'queued',
      'shed',
    ]);
    const routes = await query('count by (route) (spillway_decisions_total{name="api"})');
    // The guard labels a decision with its route policy's path, and 'default' for the rest: a
    // bounded set by construction (the 'other' overflow of maxRoutes is tested in prometheus.test.ts).
    expect(routes.map((r) => r.metric['route']).sort()).toEqual(['/login', '/pool', '/search', 'default']);
  });

  it('returns data for every expression of the dashboard', async () => {
    const exprs = dashboardExpressions();
    expect(exprs.length).toBeGreaterThan(20);
    const empty: string[] = [];
    for (const expr of exprs) {
      const result = await query(expr);
      const values = result.map((r) => Number(r.value[1])).filter((v) => !Number.isNaN(v));
      if (values.length === 0) empty.push(expr);
    }
    expect(empty).toEqual([]);
  });

  it('returns data for every alert expression, loads the rules healthy, and has the throttling alert pending', async () => {
    const exprs = ruleExpressions();
    expect(exprs).toHaveLength(4);
    for (const expr of exprs) expect(await query(expr), expr).not.toEqual([]);
    const rules = (await (await fetch(`${api}/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; state: string }[] }[] };
    };
    const all = rules.data.groups.flatMap((g) => g.rules);
    expect(all.map((r) => [r.name, r.health])).toEqual([
      ['SpillwayThrottling', 'ok'],
      ['SpillwayShedShareHigh', 'ok'],
      ['SpillwayStoreFallingBack', 'ok'],
      ['SpillwaySignalFailing', 'ok'],
    ]);
    // Every condition holds now; each alert waits out its `for` as pending.
    expect(all.map((r) => r.state)).toEqual(['pending', 'pending', 'pending', 'pending']);
  });

  it('promtool accepts the rules and passes their unit tests', () => {
    const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/SUCCESS: 4 rules found/);
    const test = spawnSync('promtool', ['test', 'rules', RULE_TESTS], { encoding: 'utf8' });
    expect(test.status, test.stdout + test.stderr).toBe(0);
  });
});
