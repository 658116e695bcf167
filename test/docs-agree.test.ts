/** Docs and JSDoc that state defaults or option names must agree with the code. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GOVERNOR_DEFAULTS } from '../src/governor/governor.js';
import { EVENT_LOOP_DELAY_DEFAULTS } from '../src/signals/event-loop-delay.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (p: string) => readFileSync(join(root, p), 'utf8');

/** `@default N` of each numeric option in an interface, by name. */
function jsdocDefaults(source: string, iface: string): Map<string, number> {
  const body = source.slice(source.indexOf(`export interface ${iface}`));
  const end = body.indexOf('\n}');
  const out = new Map<string, number>();
  const re = /@default (-?[\d.]+)\s*\*\/\s*\n\s*(\w+)\?:/g;
  for (const m of body.slice(0, end).matchAll(re)) out.set(m[2]!, Number(m[1]));
  return out;
}

describe('docs agree with the code', () => {
  it('every numeric @default in GovernorOptions is the value in GOVERNOR_DEFAULTS', () => {
    const defaults = jsdocDefaults(read('src/governor/governor.ts'), 'GovernorOptions');
    expect(defaults.size).toBeGreaterThanOrEqual(8);
    for (const [name, value] of defaults) {
      expect(value, name).toBe((GOVERNOR_DEFAULTS as Record<string, unknown>)[name]);
    }
  });
  it('every numeric @default in EventLoopDelayOptions is the value in EVENT_LOOP_DELAY_DEFAULTS', () => {
    const defaults = jsdocDefaults(read('src/signals/event-loop-delay.ts'), 'EventLoopDelayOptions');
    for (const name of ['targetMs', 'limitMs', 'resolutionMs'] as const) {
      expect(defaults.get(name), name).toBe(EVENT_LOOP_DELAY_DEFAULTS[name]);
    }
  });
  it('governor.md passes the governor to createLimiter as `factor`, and its reasons show the default cool-down', () => {
    const doc = read('docs/governor.md');
    expect(doc).not.toMatch(/createLimiter\(\{[^}]*[,{]\s*governor \}\)/);
    const cooldownSec = GOVERNOR_DEFAULTS.cooldownMs / 1000;
    for (const m of doc.matchAll(/cool-down [\d.]+ s of ([\d.]+) s/g)) expect(Number(m[1])).toBe(cooldownSec);
    for (const m of doc.matchAll(/below release [\d.]+ for ([\d.]+) s; factor/g)) {
      expect(Number(m[1])).toBeGreaterThanOrEqual(cooldownSec);
    }
  });
});
