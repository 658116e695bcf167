/**
 * Starting the live server and the load generator as child processes, each on its own event loop
 * (and, on a machine with two cores or more, its own core), and talking to them over IPC.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadGeneratorOptions, LoadResult, LoadSecond } from './load-generator.js';
import type { LiveServerOptions, ServerSecond, ServerStats } from './server.js';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

export interface ServerProcess {
  readonly port: number;
  readonly pid: number;
  /** Wall-clock time (ms since the epoch) from which the protection is fully active. */
  readonly readyAtEpochMs: number;
  /** Stops the server and resolves with its statistics. */
  stop(): Promise<ServerStats>;
  /** Kills the process at once (for failures). */
  kill(): void;
}

/** Forks `server-worker.js` and resolves once it listens. */
export function spawnServer(
  options: LiveServerOptions,
  onSecond?: (second: ServerSecond) => void,
): Promise<ServerProcess> {
  const child = fork(here('./server-worker.js'), [JSON.stringify(options)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the live server exited early (code ${code})`));
    child.once('exit', onExit);
    child.on('message', (msg: ServerMessage) => {
      if (msg.type === 'second') onSecond?.(msg.second);
      else if (msg.type === 'error') reject(new Error(`the live server failed to start: ${msg.message}`));
      else if (msg.type === 'ready') {
        child.off('exit', onExit);
        resolve({
          port: msg.port,
          pid: child.pid ?? -1,
          readyAtEpochMs: msg.readyAtEpochMs,
          stop: () => stopServer(child),
          kill: () => child.kill('SIGKILL'),
        });
      }
    });
  });
}

type ServerMessage =
  | { type: 'ready'; port: number; readyAtEpochMs: number }
  | { type: 'second'; second: ServerSecond }
  | { type: 'stats'; stats: ServerStats }
  | { type: 'error'; message: string };

function stopServer(child: ChildProcess): Promise<ServerStats> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the live server did not stop within 10 s'));
    }, 10_000);
    child.on('message', (msg: ServerMessage) => {
      if (msg.type === 'stats') {
        clearTimeout(timer);
        resolve(msg.stats);
      }
    });
    child.once('exit', () => clearTimeout(timer));
    child.send({ type: 'stop' });
  });
}

/**
 * Runs one open-loop load in a forked `load-worker.js`. Rejects if it fails, or does not finish
 * within its own bound (`durationSec` + the longest client timeout + 30 s for warm-up and drain).
 */
export function runLoadProcess(
  options: Omit<LoadGeneratorOptions, 'onSecond'>,
  onSecond?: (second: LoadSecond) => void,
  boundMs?: number,
): Promise<LoadResult> {
  const child = fork(here('./load-worker.js'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const timeouts = Array.isArray(options.traffic)
    ? options.traffic.map((t) => t.timeoutMs)
    : [options.timeoutMs ?? 10_000];
  const bound = boundMs ?? options.durationSec * 1000 + Math.max(...timeouts) + 30_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the load generator did not finish within ${Math.round(bound / 1000)} s`));
    }, bound);
    let settled = false;
    child.on('message', (msg: LoadMessage) => {
      if (msg.type === 'second') onSecond?.(msg.second);
      else if (msg.type === 'done') {
        settled = true;
        clearTimeout(timer);
        resolve(msg.result);
      } else if (msg.type === 'error') {
        settled = true;
        clearTimeout(timer);
        reject(new Error(`the load generator failed: ${msg.message}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`the load generator exited early (code ${code})`));
    });
    child.send({ type: 'start', options });
  });
}

type LoadMessage =
  | { type: 'second'; second: LoadSecond }
  | { type: 'done'; result: LoadResult }
  | { type: 'error'; message: string };
