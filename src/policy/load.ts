/**
 * Reading a policy: JSON text or an object, `SPILLWAY_*` environment overrides, one validation
 * that reports every problem at once (path, value, what is allowed).
 */
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { ConfigError, describe } from '../errors.js';
import { type Policy, policySchema } from './schema.js';

/** One problem in a policy: where, what was there, what is allowed. */
export interface PolicyIssue {
  /** The setting's path in the file, e.g. `limiters.perUser.ratePerSec` (`(root)` for the whole file). */
  readonly path: string;
  readonly value: unknown;
  readonly allowed: string;
  /** The environment variable the value came from, when it did. */
  readonly env?: string;
}

/** A policy that is not valid: every issue, one per line in the message. */
export class PolicyError extends ConfigError {
  readonly issues: readonly PolicyIssue[];
  constructor(issues: readonly PolicyIssue[], source?: string) {
    const first = issues[0]!;
    super(first.path, first.value, first.allowed);
    this.name = 'PolicyError';
    this.issues = issues;
    const lines = issues.map(
      (i) => `  ${i.path}: expected ${i.allowed}, got ${describe(i.value)}${i.env ? ` (from ${i.env})` : ''}`,
    );
    this.message = `${source ? `${source}: ` : ''}invalid policy (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
  }
}

/** Whether `err` is a PolicyError (works across package copies). */
export const isPolicyError = (err: unknown): err is PolicyError =>
  err instanceof Error && err.name === 'PolicyError' && Array.isArray((err as PolicyError).issues);

export interface ParsePolicyOptions {
  /**
   * Environment whose `SPILLWAY_<SECTION>__<KEY>…` variables override single values (segments joined
   * by `__`; each matched to a setting case-insensitively, ignoring `_`; values parsed as JSON when
   * they parse, else taken as strings). Pass `{}` to ignore the environment. @default process.env
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Named in error messages (a file path). */
  source?: string;
}

const ENV_PREFIX = 'SPILLWAY_';
const norm = (s: string) => s.replace(/[_-]/g, '').toLowerCase();

/** Every setting name the schema knows, normalised, for env segments naming a setting not in the file. */
const KNOWN_SETTINGS: ReadonlyMap<string, string> = (() => {
  const names = new Map<string, string>();
  const visit = (schema: unknown, depth: number) => {
    if (depth > 8 || schema === null || typeof schema !== 'object') return;
    const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (def === undefined) return;
    const shape = def['shape'] as Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(shape ?? {})) {
      names.set(norm(k), k);
      visit(v, depth + 1);
    }
    for (const key of ['innerType', 'in', 'out', 'valueType', 'element', 'left', 'right'])
      visit(def[key], depth + 1);
    for (const o of (def['options'] as unknown[] | undefined) ?? []) visit(o, depth + 1);
  };
  visit(policySchema, 0);
  return names;
})();

/**
 * Applies `SPILLWAY_*` overrides to a copy of `raw`. Variables without `__` (a path of one segment)
 * are not overrides and are left alone (e.g. `SPILLWAY_REQUIRE_SERVICES`).
 */
export function applyEnv(
  raw: unknown,
  env: Readonly<Record<string, string | undefined>>,
): { value: unknown; fromEnv: Map<string, string>; issues: PolicyIssue[] } {
  const value: unknown = structuredClone(raw ?? {});
  const fromEnv = new Map<string, string>();
  const issues: PolicyIssue[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith(ENV_PREFIX) || !name.includes('__')) continue;
    const text = env[name]!;
    const segments = name.slice(ENV_PREFIX.length).split('__');
    let node = value as Record<string, unknown>;
    const path: string[] = [];
    let failed = false;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i]!;
      const existing = Object.keys(node).find((k) => norm(k) === norm(seg));
      const key =
        existing ?? (Array.isArray(node) && /^\d+$/.test(seg) ? seg : KNOWN_SETTINGS.get(norm(seg)));
      if (key === undefined || seg === '') {
        issues.push({
          path: [...path, seg.toLowerCase()].join('.') || '(root)',
          value: text,
          allowed: `a setting of the policy${existing === undefined && path.length ? ` under ${path.join('.')} (in the file: ${Object.keys(node).join(', ') || 'none'})` : ''}`,
          env: name,
        });
        failed = true;
        break;
      }
      path.push(key);
      if (i === segments.length - 1) node[key] = parseEnvValue(text);
      else {
        const next = node[key];
        if (next === undefined || next === null || typeof next !== 'object') node[key] = {};
        node = node[key] as Record<string, unknown>;
      }
    }
    if (!failed) fromEnv.set(path.join('.'), name);
  }
  return { value, fromEnv, issues };
}

function parseEnvValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function at(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function toIssues(error: z.ZodError, input: unknown, fromEnv: Map<string, string>): PolicyIssue[] {
  return error.issues.map((issue) => {
    let path = issue.path.map(String);
    let value: unknown = at(input, issue.path);
    let allowed = issue.message;
    if (issue.code === 'unrecognized_keys') {
      // Name the unknown setting itself, so that each one is its own line.
      const key = issue.keys[0]!;
      value = at(input, [...issue.path, key]);
      path = [...path, key];
      if (issue.keys.length > 1) allowed = `${allowed} (also unknown: ${issue.keys.slice(1).join(', ')})`;
    }
    const p = path.join('.') || '(root)';
    const env = fromEnv.get(p);
    return env === undefined ? { path: p, value, allowed } : { path: p, value, allowed, env };
  });
}

/**
 * Validates a policy (an object, or JSON text) after applying the environment's overrides.
 * Throws a PolicyError listing every problem.
 */
export function parsePolicy(input: unknown, options: ParsePolicyOptions = {}): Policy {
  let raw = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch (err) {
      throw new PolicyError(
        [{ path: '(root)', value: input.slice(0, 80), allowed: `JSON (${(err as Error).message})` }],
        options.source,
      );
    }
  }
  const { value, fromEnv, issues } = applyEnv(raw, options.env ?? process.env);
  const result = policySchema.safeParse(value);
  const all = [...issues, ...(result.success ? [] : toIssues(result.error, value, fromEnv))];
  if (all.length > 0) throw new PolicyError(all, options.source);
  return result.data!;
}

/** Reads and validates a policy file (JSON). */
export async function loadPolicy(
  file: string,
  options: Omit<ParsePolicyOptions, 'source'> = {},
): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      'policy file',
      file,
      `a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return parsePolicy(text, { ...options, source: file });
}
