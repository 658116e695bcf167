/**
 * A token-bucket decision once the tokens left are known, shared by the Redis script's replies and
 * the `'local'` fallback so both answer with the same arithmetic (the script's, in Lua, before
 * replies carried only the tokens).
 */
import type { StoreDecision } from '../types.js';

/**
 * The waits of a decision. `ratePerMs` and `capacity` are at the caller's factor (the rate per
 * second / 1000 · factor, the burst · factor, computed in that order, as the script does).
 */
export function bucketDecision(
  allowed: boolean,
  tokens: number,
  cost: number,
  ratePerMs: number,
  capacity: number,
): StoreDecision {
  const retryAfterMs = allowed
    ? 0
    : ratePerMs <= 0 || cost > capacity
      ? Infinity
      : (cost - tokens) / ratePerMs;
  const resetMs = ratePerMs > 0 ? (capacity - tokens) / ratePerMs : tokens >= capacity ? 0 : Infinity;
  return { allowed, remaining: tokens, retryAfterMs, resetMs };
}

/**
 * The tokens from the script's two integers, `math.frexp`'s mantissa · 2^53 and its exponent: the
 * same double, for every count from 2^-1022 up (a subnormal count may round).
 */
export function tokensFromReply(mantissa: number, exponent: number): number {
  return mantissa * 2 ** (exponent - 53);
}
