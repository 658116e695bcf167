// `npm run bench`: every benchmark, one after another (never in parallel: they measure time).
// Each writes its own JSON under bench/results/. Pass --quick for a short smoke run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const extra = process.argv.slice(2);
const only = extra.filter((a) => !a.startsWith('--'));
const flags = extra.filter((a) => a.startsWith('--'));

// Each entry: the file, then its own arguments (the pool benchmark runs twice: its FIFO pool, and
// real PostgreSQL).
const benches = [
  ['limiter.mjs'],
  ['governor-cost.mjs'],
  ['http-overhead.mjs'],
  ['adapter-cost.mjs'],
  ['live-overload.mjs'],
  ['live-tenants.mjs'],
  ['live-pool.mjs'],
  ['live-pool.mjs', '--backend', 'pg'],
  ['redis.mjs'],
  ['metrics-overhead.mjs'],
];
let failed = 0;
for (const [file, ...args] of benches) {
  if (only.length > 0 && !only.some((o) => file.startsWith(o))) continue;
  const path = join(here, file);
  if (!existsSync(path)) continue;
  console.log(`\n### ${[file, ...args].join(' ')}`);
  const r = spawnSync(process.execPath, ['--expose-gc', path, ...args, ...flags], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`${file} exited with ${r.status ?? r.signal}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
