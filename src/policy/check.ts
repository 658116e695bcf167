/**
 * What a policy would do, in words and numbers: `spillway check` prints it. For each limiter, the
 * effective rate and burst per tier and priority at factors 1, 0.5 and the governor's floor.
 */
import { GOVERNOR_DEFAULTS } from '../governor/governor.js';
import { CONCURRENCY_DEFAULTS } from '../limiters/concurrency/options.js';
import { effectiveFactor } from '../limiters/priority.js';
import type { Priority } from '../limiters/types.js';
import type { Policy } from './schema.js';

const PRIORITIES: readonly Priority[] = ['critical', 'normal', 'sheddable'];
const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

/** A plain-text summary of a validated policy. */
export function describePolicy(policy: Policy): string {
  const floor = policy.governor?.floor ?? GOVERNOR_DEFAULTS.floor;
  const factors = [1, 0.5, floor];
  const out: string[] = [];
  const signalNames = Object.keys(policy.signals ?? {});
  out.push(
    `signals: ${signalNames.length ? signalNames.join(', ') : 'the defaults (event-loop delay, memory)'}`,
  );
  const g = { ...GOVERNOR_DEFAULTS, ...policy.governor };
  out.push(
    `governor: ${g.mode}, engage at pressure ${g.engageAt}, release at ${g.releaseAt}, floor ${floor}, sample every ${g.intervalMs} ms`,
  );
  for (const [name, l] of Object.entries(policy.limiters)) {
    out.push(
      '',
      `limiter ${name} (${l.algorithm}, ${l.followGovernor ? 'follows the governor' : 'fixed'}, store ${l.store ?? 'memory'}):`,
    );
    out.push(
      `  ${'tier'.padEnd(12)} ${'priority'.padEnd(10)} ${factors.map((f) => `factor ${f}`.padStart(20)).join('')}`,
    );
    const tiers: [string, { ratePerSec: number; burst: number }][] = [
      ['(default)', l],
      ...Object.entries(l.tiers ?? {}),
    ];
    for (const [tier, limits] of tiers) {
      for (const p of PRIORITIES) {
        const cells = factors.map((f) => {
          const e = l.followGovernor ? effectiveFactor(f, p) : 1;
          return `${fmt(limits.ratePerSec * e)}/s burst ${fmt(limits.burst * e)}`.padStart(20);
        });
        out.push(`  ${tier.padEnd(12)} ${String(p).padEnd(10)} ${cells.join('')}`);
      }
    }
    if (l.global) out.push(`  global: ${l.global.ratePerSec}/s, burst ${l.global.burst} at factor 1`);
  }
  if (policy.routes.length) {
    out.push('', 'routes (first match wins):');
    for (const r of policy.routes) {
      const m = r.method === undefined ? 'any' : [r.method].flat().join(',');
      const what = r.bypass
        ? 'bypass'
        : `limiter ${r.limiter === null ? 'none' : (r.limiter ?? "the guard's")}, priority ${r.priority ?? 'normal'}, cost ${r.cost ?? 1}${r.maxWaitMs ? `, waits up to ${r.maxWaitMs} ms` : ''}`;
      out.push(`  ${m.padEnd(8)} ${(r.path ?? '/').padEnd(20)} ${what}`);
    }
  }
  for (const [name, p] of Object.entries(policy.pools)) {
    const c = CONCURRENCY_DEFAULTS;
    out.push(
      '',
      `pool ${name}: limit ${p.limit} in flight, queue ${p.maxQueue ?? c.maxQueue} waiters, wait ${p.maxWaitMs ?? c.maxWaitMs} ms at most`,
    );
  }
  for (const [name, s] of Object.entries(policy.stores))
    out.push(
      '',
      `store ${name}: ${s.kind === 'redis' ? `redis ${s.url}` : `memory${s.maxKeys ? `, ${s.maxKeys} keys` : ''}`}`,
    );
  return `${out.join('\n')}\n`;
}
