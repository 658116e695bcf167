// The README's examples are real files, run here, and quoted verbatim in the README.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

describe('README examples', () => {
  it('quotes examples/quick-start.mjs verbatim, and it runs', () => {
    const source = readFileSync(join(root, 'examples/quick-start.mjs'), 'utf8');
    expect(readme).toContain(source.trim());
    const out = execFileSync(process.execPath, [join(root, 'examples/quick-start.mjs')], {
      cwd: root,
      encoding: 'utf8',
      timeout: 10_000,
    });
    // 40 of the burst admitted at once, the rest refused by the user's own quota, with an exact wait:
    // one token at 20 per second is 50 ms, less the real time the loop itself took.
    const m = /admitted (\d+), refused (\d+): limited, retry after (\d+) ms/.exec(out);
    expect(m, out).not.toBeNull();
    const [admitted, refused, retryMs] = m!.slice(1).map(Number) as [number, number, number];
    expect(admitted + refused).toBe(100);
    expect(admitted).toBeGreaterThanOrEqual(40);
    expect(admitted).toBeLessThanOrEqual(41); // one token may refill if the loop took 50 ms
    expect(retryMs).toBeGreaterThan(0);
    expect(retryMs).toBeLessThanOrEqual(50);
  });

  it('shows only commands that exist in package.json', () => {
    const scripts = Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts);
    for (const m of readme.matchAll(/npm run ([\w:-]+)/g)) expect(scripts).toContain(m[1]);
    expect(readme).toContain('npm ci && npm test');
  });
});
