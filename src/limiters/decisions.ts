import type { Decision } from './types.js';

/** The decision of a stage that imposes no limit on this request: admitted, nothing counted. */
export const ADMITTED_UNLIMITED: Decision = Object.freeze({
  allowed: true,
  reason: 'ok',
  remaining: Infinity,
  limit: Infinity,
  retryAfterMs: 0,
  resetMs: 0,
  factor: 1,
});
