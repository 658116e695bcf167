// Real Redis for the store tests: the shared server on 127.0.0.1:6379, and servers (standalone or a
// three-master Cluster) that a test starts on free ports so it can kill and restart them.
// Under CI (SPILLWAY_REQUIRE_SERVICES=1) a missing Redis fails; elsewhere the tests skip with a reason.
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REQUIRED = process.env['SPILLWAY_REQUIRE_SERVICES'] === '1';

/** Answers PING on host:port within 500 ms. */
export function pings(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/**
 * Why the Redis tests cannot run here, or undefined when they can. Throws under CI instead, so a
 * missing service fails the run.
 */
export async function redisMissing(options: { server?: boolean } = {}): Promise<string | undefined> {
  let reason: string | undefined;
  if (options.server && spawnSync('redis-server', ['--version']).status !== 0) {
    reason = 'redis-server is not installed (apt-get install redis-server)';
  } else if (!(await pings(6379))) {
    reason = 'no Redis answers on 127.0.0.1:6379';
  }
  if (reason !== undefined && REQUIRED) throw new Error(`SPILLWAY_REQUIRE_SERVICES=1 but ${reason}`);
  if (reason !== undefined) console.warn(`skipping Redis tests: ${reason}`);
  return reason;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A free port whose cluster bus port (+10000) is free too. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await portFree(port)) && (await portFree(port + 10_000))) return port;
  }
  throw new Error('no free port');
}

export interface RedisServer {
  readonly port: number;
  /** SIGKILL: the server vanishes mid-run (no shutdown, connections reset). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty (no scripts cached, no keys). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Sends a signal to the running server (SIGSTOP: it hangs with its connections open). */
  signal(sig: NodeJS.Signals): void;
}

export async function waitFor(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A redis-server of the test's own on a free port, no persistence. */
export async function startRedisServer(extra: string[] = [], dir?: string): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      ...extra,
    ];
    child = spawn('redis-server', args, { stdio: 'ignore', cwd: dir });
    child.unref();
    await waitFor(`redis-server on ${port}`, () => pings(port));
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return { port, kill, start, stop: kill, signal: (sig) => child?.kill(sig) };
}

export interface RedisCluster {
  readonly ports: readonly number[];
  readonly servers: readonly RedisServer[];
  stop(): Promise<void>;
}

/** Three masters with --cluster-enabled, joined by `redis-cli --cluster create`, all slots covered. */
export async function startCluster(): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'spillway-cluster-'));
  const servers: RedisServer[] = [];
  for (let i = 0; i < 3; i++) {
    const nodeDir = mkdtempSync(join(dir, 'node-'));
    servers.push(
      await startRedisServer(
        ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'],
        nodeDir,
      ),
    );
  }
  const ports = servers.map((s) => s.port);
  await run('redis-cli', [
    '--cluster',
    'create',
    ...ports.map((p) => `127.0.0.1:${p}`),
    '--cluster-replicas',
    '0',
    '--cluster-yes',
  ]);
  for (const port of ports) {
    await waitFor(`cluster state ok on ${port}`, async () => {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
      return stdout.includes('cluster_state:ok');
    });
  }
  return {
    ports,
    servers,
    stop: async () => {
      for (const s of servers) await s.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
