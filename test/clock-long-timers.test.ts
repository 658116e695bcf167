/**
 * Delays beyond one Node timer (2^31 − 1 ms) are chained, never shortened; waits that a caller
 * awaits keep the process alive. The chaining is tested on a fake timer host that behaves like
 * Node (a delay above 2^31 − 1 fires after 1 ms), driven by virtual time.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { createSystemClock, MAX_TIMER_MS, ManualClock, type TimerHost } from '../src/clock.js';
import { LeakyBucket } from '../src/limiters/leaky-bucket.js';
import { TokenBucket } from '../src/limiters/token-bucket.js';

const flush = () => new Promise<void>((r) => setImmediate(r));

/** A timer host on virtual time that, like Node, turns a delay above 2^31 − 1 ms into 1 ms. */
function nodeLikeHost() {
  const clock = new ManualClock();
  const armed: number[] = [];
  let unrefs = 0;
  const host: TimerHost<{ cancel(): void }> = {
    now: () => clock.now(),
    setTimeout: (fn, ms) => {
      armed.push(ms);
      return clock.setTimeout(fn, ms > MAX_TIMER_MS ? 1 : ms);
    },
    clearTimeout: (h) => h.cancel(),
    unref: () => {
      unrefs++;
    },
  };
  return { clock, host, armed, unrefs: () => unrefs };
}

describe('createSystemClock: long delays are chained', () => {
  it('fires a 10^12 ms timer exactly at its due time, from timers no longer than 2^31 − 1 ms', () => {
    const { clock, host, armed } = nodeLikeHost();
    const sys = createSystemClock(host);
    let firedAt: number | undefined;
    sys.setTimeout(() => {
      firedAt = clock.now();
    }, 1e12);
    clock.advance(1e12 - 1);
    expect(firedAt).toBeUndefined();
    clock.advance(1);
    expect(firedAt).toBe(1e12);
    expect(armed.every((ms) => ms <= MAX_TIMER_MS)).toBe(true);
    // ceil(10^12 / (2^31 − 1)) = 466 timers, not one per millisecond.
    expect(armed.length).toBe(Math.ceil(1e12 / MAX_TIMER_MS));
  });
  it('a delay of exactly 2^31 − 1 is one timer; cancel stops a chain midway; Infinity never fires', () => {
    const { clock, host, armed } = nodeLikeHost();
    const sys = createSystemClock(host);
    let fired = 0;
    sys.setTimeout(() => fired++, MAX_TIMER_MS);
    expect(armed).toEqual([MAX_TIMER_MS]);
    const t = sys.setTimeout(() => fired++, 3 * MAX_TIMER_MS);
    sys.setTimeout(() => fired++, Infinity);
    clock.advance(MAX_TIMER_MS + 5);
    expect(fired).toBe(1);
    t.cancel();
    clock.advance(10 * MAX_TIMER_MS);
    expect(fired).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });
  it('unrefs every link of a chain unless keepAlive', () => {
    const a = nodeLikeHost();
    createSystemClock(a.host).setTimeout(() => {}, 2.5 * MAX_TIMER_MS);
    a.clock.advance(3 * MAX_TIMER_MS);
    expect(a.unrefs()).toBe(a.armed.length);
    const b = nodeLikeHost();
    createSystemClock(b.host).setTimeout(() => {}, 2.5 * MAX_TIMER_MS, { keepAlive: true });
    b.clock.advance(3 * MAX_TIMER_MS);
    expect(b.armed.length).toBe(3);
    expect(b.unrefs()).toBe(0);
  });
});

describe('limiters on a Node-like real clock with very slow rates', () => {
  it('a TokenBucket at 1e-9 tokens/s does not spin 1 ms timers while a caller waits', () => {
    const { clock, host, armed } = nodeLikeHost();
    const bucket = new TokenBucket({ ratePerSec: 1e-9, burst: 1, clock: createSystemClock(host) });
    expect(bucket.take().allowed).toBe(true);
    let settled = false;
    void bucket.acquire(1).then(() => {
      settled = true;
    });
    clock.advance(3_600_000); // an hour of virtual time
    // One timer armed (a 2^31 − 1 ms link), not 3.6 million 1 ms timers.
    expect(armed.length).toBeLessThanOrEqual(2);
    expect(settled).toBe(false);
  });
  it('queued acquires at 1/86400 tokens/s are admitted one a day, not early', async () => {
    const { clock, host } = nodeLikeHost();
    const bucket = new TokenBucket({ ratePerSec: 1 / 86_400, burst: 1, clock: createSystemClock(host) });
    const admittedAt: number[] = [];
    const all = [1, 2, 3].map(() => bucket.acquire(1).then(() => admittedAt.push(clock.now())));
    await Promise.resolve();
    expect(admittedAt).toEqual([0]);
    clock.advance(86_400_000 - 1);
    await Promise.resolve();
    expect(admittedAt).toEqual([0]);
    clock.advance(1);
    await flush();
    expect(admittedAt).toEqual([0, 86_400_000]);
    clock.advance(86_400_000);
    await Promise.all(all);
    expect(admittedAt).toEqual([0, 86_400_000, 172_800_000]);
  });
  it('on ManualClock too: a wait of 10^12 ms is one timer and settles at its time, and a deadline refuses at once', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSec: 1e-9, burst: 1, clock });
    bucket.take();
    const refused = await bucket.acquire(1, { maxWaitMs: 86_400_000 });
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeCloseTo(1e12, -3);
    let at: number | undefined;
    void bucket.acquire(1).then(() => {
      at = clock.now();
    });
    expect(clock.pendingTimers).toBe(1);
    clock.advance(1e12 - 1);
    await flush();
    expect(at).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(at).toBe(1e12);
  });
  it('a LeakyBucket at 1e-9/s releases its second request after 10^12 ms, from few timers', async () => {
    const { clock, host, armed } = nodeLikeHost();
    const shaper = new LeakyBucket({ ratePerSec: 1e-9, capacity: 2, clock: createSystemClock(host) });
    await shaper.schedule(1);
    let done = false;
    void shaper.schedule(1).then(() => {
      done = true;
    });
    clock.advance(3_600_000);
    await Promise.resolve();
    expect(done).toBe(false);
    expect(armed.length).toBeLessThanOrEqual(2);
  });
});

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'node_modules', '.cache', `spillway-keepalive-${process.pid}`);
afterAll(() => rmSync(out, { recursive: true, force: true }));

function transpile(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) transpile(path);
    else if (name.endsWith('.ts')) {
      const js = ts.transpileModule(readFileSync(path, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      }).outputText;
      const target = join(out, relative(join(root, 'src'), path)).replace(/\.ts$/, '.js');
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, js);
    }
  }
}

describe('a pending acquire keeps the process alive', () => {
  it('a script awaiting five acquires completes all five and exits 0', () => {
    transpile(join(root, 'src', 'limiters'));
    for (const f of ['clock.ts', 'errors.ts', 'validate.ts']) {
      const js = ts.transpileModule(readFileSync(join(root, 'src', f), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      }).outputText;
      writeFileSync(join(out, f.replace(/\.ts$/, '.js')), js);
    }
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');
    writeFileSync(
      join(out, 'script.js'),
      `import { TokenBucket } from './limiters/token-bucket.js';
import { LeakyBucket } from './limiters/leaky-bucket.js';
const bucket = new TokenBucket({ ratePerSec: 50, burst: 1 });
const shaper = new LeakyBucket({ ratePerSec: 50, capacity: 10 });
(async () => {
  for (let i = 1; i <= 5; i++) {
    const d = await bucket.acquire(1);
    console.log('acquired', i, d.allowed);
  }
  for (let i = 1; i <= 3; i++) void shaper.schedule(1).then((d) => console.log('left', d.allowed));
})();
`,
    );
    const stdout = execFileSync(process.execPath, [join(out, 'script.js')], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(stdout.trim().split('\n')).toEqual([
      'acquired 1 true',
      'acquired 2 true',
      'acquired 3 true',
      'acquired 4 true',
      'acquired 5 true',
      'left true',
      'left true',
      'left true',
    ]);
  });
});
