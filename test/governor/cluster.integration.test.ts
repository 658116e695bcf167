/**
 * The fleet-factor plumbing over a real IPC channel: this process plays the cluster primary and
 * forks one real Node worker (node:child_process.fork). The worker cannot run TypeScript, so the
 * sources it loads are transpiled (no type check) into node_modules/.cache first. Bounded: every wait
 * times out after 10 s, and the worker is killed in afterAll whatever happened.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { FLEET_FACTOR_MESSAGE, shareFleetFactor } from '../../src/governor/cluster.js';
import { scripted } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(root, 'node_modules', '.cache', `spillway-governor-it-${process.pid}`);

/** Transpiles `file` (a path under src/) and every module it imports by a relative path. */
function transpileClosure(file: string, done = new Set<string>()): void {
  if (done.has(file)) return;
  done.add(file);
  const source = readFileSync(file, 'utf8');
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const target = join(out, relative(join(root, 'src'), file)).replace(/\.ts$/, '.js');
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, js);
  for (const m of source.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) {
    transpileClosure(join(dirname(file), `${m[1]}.ts`), done);
  }
}

const WORKER = `
import { fleetFactor } from './governor/cluster.js';
const fleet = fleetFactor();
fleet.subscribe((factor) => process.send({ type: 'seen', factor }));
process.on('message', (m) => {
  if (m === 'exit') { fleet.close(); process.disconnect(); }
});
process.send({ type: 'ready' });
`;

let child: ChildProcess | undefined;

function next(
  predicate: (m: { type: string; factor?: number }) => boolean,
): Promise<{ type: string; factor?: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message from the worker within 10 s')), 10_000);
    const on = (m: { type: string; factor?: number }) => {
      if (!predicate(m)) return;
      clearTimeout(timer);
      child!.off('message', on);
      resolve(m);
    };
    child!.on('message', on);
  });
}

beforeAll(() => {
  // Only what the worker loads: the whole tree takes tens of seconds on a busy machine.
  transpileClosure(join(root, 'src/governor/cluster.ts'));
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
  writeFileSync(join(out, 'worker.js'), WORKER);
});

afterAll(() => {
  child?.kill();
  rmSync(out, { recursive: true, force: true });
});

describe('fleet factor over real IPC', () => {
  it('a forked worker receives the primary governor factor, and 1 when the primary stops', async () => {
    child = fork(join(out, 'worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await next((m) => m.type === 'ready');

    const clock = new ManualClock();
    const cluster = Object.assign(new EventEmitter(), { workers: { 1: child } });
    let load = 0;
    const sharer = shareFleetFactor({
      cluster,
      clock,
      signals: [scripted('cpu-tree', () => load, { target: 0.75, limit: 0.95 })],
      governor: { warmupMs: 0 },
    });
    sharer.start();
    load = 1;
    clock.advance(2000); // the first cut happens at 1.5 s
    const sent = sharer.governor.factor;
    expect(sent).toBeLessThan(1);
    // The worker reports every change it sees; wait for the one that matches the primary's factor.
    const seen = await next((m) => m.type === 'seen' && m.factor === sent);
    expect(seen.factor).toBe(sent);

    sharer.stop();
    const released = await next((m) => m.type === 'seen' && m.factor === 1);
    expect(released.factor).toBe(1);

    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.send('exit');
    expect(await exited).toBe(0);
    expect(FLEET_FACTOR_MESSAGE).toBe('spillway:fleet-factor');
  });
});
