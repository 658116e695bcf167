/**
 * The token-bucket scripts: one round trip per decision, atomic on the server.
 *
 * `TOKEN_BUCKET_SCRIPT` decides a batch: KEYS[i] is the i-th decision's bucket key and
 * ARGV[5(i-1)+1..5i] its op ('t' take, 'p' peek, 'r' refund), cost, ratePerSec and burst at factor
 * 1, and the caller's factor, in order (two decisions on one key see each other). On a Cluster
 * every call holds one key. A call of one decision runs the script of its op instead
 * (`TOKEN_BUCKET_TAKE_SCRIPT`, `_PEEK_`, `_REFUND_`): no batch loop, no op to compare, and three
 * arguments, the cost, the refill rate per ms and the capacity at the caller's factor (computed by
 * the caller as the batch script does: ratePerSec / 1000 · factor, burst · factor, in that order,
 * sent as strings that parse back to the same doubles), and a fourth only when that rate is 0:
 * the ms a full refill takes at factor 1 (burst / (ratePerSec / 1000)), the key's lifetime then.
 *
 * State is one 40-byte string, five little-endian doubles (struct.pack '<ddddd'): the tokens, the
 * server time of the last write (ms), the refill rate per ms and the capacity in force since then
 * (the factor of the last caller applied), and the key's expiry deadline (server ms). Exact: one
 * GET per decision, and one write per admitted take or refund. The elapsed interval refills at the
 * rate that was in force during it; from this call on, the caller's factor applies (capacity clamps
 * at once). A refused take whose rate and capacity are those stored writes nothing: the stored
 * tokens and time already give the same bucket at every later time (one rounding fewer), and the
 * time it would be full has not moved. Under a changed factor it writes, so the new rate runs from
 * it. Time is the server's `TIME`, so app servers whose clocks drift agree, and it never moves
 * backwards: a failover to a replica whose clock is behind refills nothing until the clock passes
 * the stored time. State of 32 bytes (written before the deadline was stored) is read as well.
 *
 * Expiry (a missing key reads as a full bucket, so expiry loses nothing): with F the time the
 * bucket would be full after a write, the key expires no earlier than F and at most
 * EXPIRY_SLACK_MS + 2 ms after it. A write that sets it uses `SET ... PX` to F + EXPIRY_SLACK_MS
 * and stores the deadline (rounded down by 2 ms, so Redis never expires the key before it); a write
 * whose F lies in [deadline - EXPIRY_SLACK_MS, deadline] keeps it and overwrites the value in place
 * (`SETRANGE` keeps the TTL, on Redis 5 too): only the tokens and the time (16 bytes) when the
 * stored rate and capacity are the caller's, as they are on most calls.
 *
 * Arguments become numbers by arithmetic (`ARGV[1] + 0`): the same conversion as `tonumber`
 * (`strtod`), without a global lookup and a function call per argument.
 *
 * Replies carry the tokens left exactly, as `math.frexp` splits them (the mantissa times 2^53 and
 * the exponent), and whether the call was allowed. The batch script: three integers per decision,
 * flat (1 if allowed else 0, the mantissa, the exponent). A one-decision script: one integer,
 * tokens · 2 + allowed, when the tokens are a whole number under 2^51 (a full bucket of a whole
 * burst, whole costs); otherwise one string, "<mantissa> <exponent · 2 + allowed>". Neither is a
 * table: Redis turns a returned Lua table into a reply by probing it for `err`, `ok`, `double`...
 * and writes an array of deferred length, which cost ~1.3 µs a call here (docs/benchmarks.md).
 * (A Lua number in a reply is truncated to an integer, and integers cost the server less than
 * formatting a float.) The caller derives the waits (`retryAfterMs`, `resetMs`) from the tokens,
 * the cost, the rate and the capacity with the arithmetic of `bucketDecision`.
 * Needs Redis >= 5 or Valkey (scripts replicate their effects, so TIME before a write is allowed).
 */
import { createHash } from 'node:crypto';

/**
 * How long after its bucket would be full again a key may outlive it, in ms: a key expires no
 * earlier than its bucket is full and at most this (+ 2 ms of rounding) after. The slack lets a key
 * visited again within it keep its entry and its expiry (no PX rewrite, no delete and re-create of
 * a key that refills within milliseconds); it changes no decision (a missing key reads as a full
 * bucket) and costs the memory of keys whose bucket became full less than this ago.
 */
export const EXPIRY_SLACK_MS = 1000;

/**
 * Reads `key`'s bucket at the caller's `rate` and `cap` (the elapsed interval refilled at the
 * stored rate, clamped to both capacities); leaves `raw`, `now`, `tokens` and the stored `r`, `c`, `d`.
 */
const READ = `
  local now = server_now
  local raw = redis.call('GET', key)
  local tokens = cap
  local r, c, d
  if raw then
    local v, last
    if #raw == 40 then
      v, last, r, c, d = struct.unpack('<ddddd', raw)
    else
      v, last, r, c = struct.unpack('<dddd', raw)
    end
    if last > now then now = last end
    tokens = v + (now - last) * r
    if tokens > c then tokens = c end
    if tokens > cap then tokens = cap end
  end`;

/**
 * Writes `tokens` at `now` with `rate` and `cap`; `fillMs` is the Lua for the ms a full refill
 * takes at factor 1 (the key's lifetime when the rate is 0).
 */
const write = (fillMs: string): string => `
    local full
    if rate > 0 then full = now + (cap - tokens) / rate else full = now + ${fillMs} end
    if d and full <= d and d <= full + ${EXPIRY_SLACK_MS} then
      if r == rate and c == cap then
        redis.call('SETRANGE', key, 0, struct.pack('<dd', tokens, now))
      else
        redis.call('SETRANGE', key, 0, struct.pack('<ddddd', tokens, now, rate, cap, d))
      end
    else
      local px = math.ceil(full + ${EXPIRY_SLACK_MS} - server_now) + 1
      redis.call('SET', key, struct.pack('<ddddd', tokens, now, rate, cap, server_now + px - 2), 'PX', px)
    end`;

/** One decision of the batch on `key`, its arguments from ARGV[a + 1]; leaves `allowed` and `tokens`. */
const DECIDE = `
  local op = ARGV[a + 1]
  local cost = ARGV[a + 2] + 0
  local base_rate = ARGV[a + 3] / 1000
  local factor = ARGV[a + 5] + 0
  local rate = base_rate * factor
  local cap = ARGV[a + 4] * factor${READ}
  local allowed = 1
  if op == 'r' then
    tokens = tokens + cost
    if tokens > cap then tokens = cap end
  elseif tokens + 1e-9 < cost then
    allowed = 0
  elseif op == 't' then
    tokens = tokens - cost
    if tokens < 0 then tokens = 0 end
  end
  -- A refused take under the rate and capacity already stored changes nothing: skip the write.
  if (op == 't' and (allowed == 1 or (raw and (r ~= rate or c ~= cap)))) or (op == 'r' and raw) then
${write('ARGV[a + 4] / base_rate')}
  end`;

const CLOCK = `
local clock = redis.call('TIME')
local server_now = clock[1] * 1000 + clock[2] / 1000`;

export const TOKEN_BUCKET_SCRIPT = `${CLOCK}
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local a = (i - 1) * 5
${DECIDE}
  local m, e = math.frexp(tokens)
  out[3 * i - 2] = allowed
  out[3 * i - 1] = m * 9007199254740992
  out[3 * i] = e
end
return out
`;

/** The head of a one-decision script: KEYS[1], ARGV = cost, rate per ms, capacity [, fill ms]. */
const ONE = `${CLOCK}
local key = KEYS[1]
local cost = ARGV[1] + 0
local rate = ARGV[2] + 0
local cap = ARGV[3] + 0${READ}`;

/** The reply of a one-decision script: an integer when it can be (see the header), else a string. */
const REPLY = `
if tokens % 1 == 0 and tokens < 2251799813685248 then return tokens * 2 + allowed end
local m, e = math.frexp(tokens)
return string.format('%d %d', m * 9007199254740992, e * 2 + allowed)
`;

export const TOKEN_BUCKET_TAKE_SCRIPT = `${ONE}
local allowed = 1
if tokens + 1e-9 < cost then
  allowed = 0
else
  tokens = tokens - cost
  if tokens < 0 then tokens = 0 end
end
-- A refused take under the rate and capacity already stored changes nothing: skip the write.
if allowed == 1 or (raw and (r ~= rate or c ~= cap)) then
${write('ARGV[4] + 0')}
end
${REPLY}`;

export const TOKEN_BUCKET_PEEK_SCRIPT = `${ONE}
local allowed = 1
if tokens + 1e-9 < cost then allowed = 0 end
${REPLY}`;

export const TOKEN_BUCKET_REFUND_SCRIPT = `${ONE}
local allowed = 1
tokens = tokens + cost
if tokens > cap then tokens = cap end
if raw then
${write('ARGV[4] + 0')}
end
${REPLY}`;

const sha1 = (script: string): string => createHash('sha1').update(script).digest('hex');
export const TOKEN_BUCKET_SHA = sha1(TOKEN_BUCKET_SCRIPT);
export const TOKEN_BUCKET_TAKE_SHA = sha1(TOKEN_BUCKET_TAKE_SCRIPT);
export const TOKEN_BUCKET_PEEK_SHA = sha1(TOKEN_BUCKET_PEEK_SCRIPT);
export const TOKEN_BUCKET_REFUND_SHA = sha1(TOKEN_BUCKET_REFUND_SCRIPT);

export type ScriptOp = 't' | 'p' | 'r';
