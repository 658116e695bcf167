/**
 * The keyed limiter's hot path stays small enough for V8 to inline (docs/benchmarks.md › Keyed
 * limiter). `takeOne` is inlined into a caller's loop only while its bytecode is at most
 * `--max-inlined-bytecode-size` (460 in Node 20's V8); past it every decision is a call and a
 * decision object the caller never reads, and nothing else says so: the benchmark only drifts.
 * This reads the real bytecode of the built package (`npm test` builds it first) in a child node.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = fileURLToPath(new URL('../../../dist/index.js', import.meta.url));

/** The default of a V8 integer flag, as this node reports it. */
function v8Default(flag: string): number {
  const text = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
  const m = new RegExp(`default: --${flag}=(\\d+)`).exec(text);
  if (m === null) throw new Error(`node --v8-options does not list --${flag}`);
  return Number(m[1]);
}

/** The bytecode length of `fn` once a hot loop has compiled it, in a fresh node on dist/. */
function bytecodeLength(fn: string): number {
  const script = [
    `const { createLimiter } = await import(${JSON.stringify(dist)});`,
    'const l = createLimiter({ ratePerSec: 1e6, burst: 1e6 });',
    'let n = 0;',
    "for (let i = 0; i < 200; i++) if (l.take('k').allowed) n++;",
    'if (n === 0) throw new Error("nothing admitted");',
  ].join('\n');
  const out = execFileSync(
    process.execPath,
    ['--print-bytecode', `--print-bytecode-filter=${fn}`, '--input-type=module', '-e', script],
    { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
  );
  const lengths = [...out.matchAll(/Bytecode length: (\d+)/g)].map((m) => Number(m[1]));
  if (lengths.length === 0) throw new Error(`no bytecode printed for ${fn}`);
  return Math.max(...lengths);
}

describe('the keyed hot path fits V8’s inlining budget', () => {
  it('takeOne is at most --max-inlined-bytecode-size bytes of bytecode', () => {
    if (!existsSync(dist)) throw new Error(`${dist} is missing: run \`npm run build\` (npm test does)`);
    const budget = v8Default('max-inlined-bytecode-size');
    const length = bytecodeLength('takeOne');
    // Measured: 446 of 460 (Node 20.20).
    expect(length).toBeLessThanOrEqual(budget);
  });
});
