// What the live benchmarks (live-overload.mjs, live-pool.mjs, live-tenants.mjs) share: medians, the commit
// under test, writing the results, number formatting, on/off switches in 100 ms slices, and how the peers are named in tables.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';

/** The median of the finite numbers in `xs`, or null when there are none. */
export function median(xs) {
  const v = xs.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** The short commit of the working tree at `root` (dist/ is built from it), or null. */
export function gitHead(root) {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/**
 * Writes a run's results to `<benchDir>/results/<file>`: the date, the commit, Node and the CPU
 * count, then `fields`, as indented JSON.
 */
export async function writeResults(benchDir, file, commit, fields) {
  const record = {
    date: new Date().toISOString(),
    commit,
    node: process.version,
    cpus: cpus().length,
    ...fields,
  };
  await mkdir(join(benchDir, 'results'), { recursive: true });
  await writeFile(join(benchDir, 'results', file), `${JSON.stringify(record, null, 2)}\n`);
}

/** A number for a markdown table: `-` when missing. */
export const fmt = (v, d = 0) => (v === null || v === undefined ? '-' : Number(v).toFixed(d));

/** Rounds to `d` decimals; null when not a finite number. */
export const round = (x, d = 1) =>
  x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** d) / 10 ** d;

/** On/off transitions of a series of "refused anything in this slice" flags that starts off. */
export function sliceSwitches(on) {
  let n = 0;
  let prev = false;
  for (const x of on) {
    if (x !== prev) n++;
    prev = x;
  }
  return n;
}

/** How the peers (the live harness's modes) are named in the tables. */
export const PEER_LABELS = Object.freeze({
  none: 'no protection',
  'under-pressure': '@fastify/under-pressure',
  toobusy: 'toobusy-js',
  'overload-protection': 'overload-protection',
});
