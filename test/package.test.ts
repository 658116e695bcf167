// The built package as users load it: CommonJS require(), ES import, the exports map, and a core
// that pulls in no framework, database or metrics client. `npm test` builds dist/ first (pretest).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>;
  engines: { node: string };
  dependencies: Record<string, string>;
};

function run(file: string): { exports: string[]; allowed: boolean } {
  const out = execFileSync(process.execPath, [join(root, 'test/fixtures', file)], {
    cwd: root,
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('the built package', () => {
  it('is required from CommonJS and imported from ESM, with the same exports', () => {
    const cjs = run('require-spillway.cjs');
    const esm = run('import-spillway.mjs');
    expect(cjs.allowed).toBe(true);
    expect(esm.allowed).toBe(true);
    expect(cjs.exports).toEqual(esm.exports);
    expect(esm.exports).toContain('TokenBucket');
    // One spelling per concept: signal factories live under `signals.*` only, and the removals
    // listed in CHANGELOG.md stay removed.
    for (const removed of [
      'refusalShare',
      'cpu',
      'custom',
      'eventLoopDelay',
      'eventLoopUtilization',
      'heapMemory',
      'memory',
      'queueDepth',
      'queueTime',
      'rssMemory',
      'Governor',
      'KeyedLimiter',
      'StoreLimiter',
      'MinFactor',
      'FleetFactor',
      'sampleTreeCpu',
      'memoryLimitBytes',
      'FLEET_FACTOR_MESSAGE',
      'isFleetFactorMessage',
      'WindowAlgorithm',
      'RejectedError',
      'isRejectedError',
    ]) {
      expect(esm.exports, removed).not.toContain(removed);
    }
    expect(esm.exports).toContain('signals');
    expect(pkg.engines.node).toBe('>=20.19');
  });

  it('has an exports map whose every entry points at a built file with types', () => {
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') {
        expect(existsSync(join(root, target)), `${subpath} -> ${target}`).toBe(true);
        continue;
      }
      expect(existsSync(join(root, target.default)), `${subpath} -> ${target.default}`).toBe(true);
      expect(existsSync(join(root, target.types)), `${subpath} types -> ${target.types}`).toBe(true);
    }
  });

  it('loads no optional peer library from the core entry point', () => {
    // Walk the static import graph of dist/index.js and collect every bare specifier.
    const seen = new Set<string>();
    const bare = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const src = readFileSync(file, 'utf8');
      for (const m of src.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
        else bare.add(spec);
      }
    };
    visit(join(root, 'dist/index.js'));
    const allowed = new Set(Object.keys(pkg.dependencies));
    for (const spec of bare) {
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      expect(spec.startsWith('node:') || allowed.has(name), `core imports ${spec}`).toBe(true);
    }
    expect(seen.size).toBeGreaterThan(3);
  });
});
