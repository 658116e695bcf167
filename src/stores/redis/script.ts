/**
 * The token-bucket script: one round trip per decision, atomic on the server.
 *
 * KEYS[1] the bucket's key. ARGV: op ('t' take, 'p' peek, 'r' refund), cost, ratePerSec and burst
 * at factor 1, the caller's factor.
 *
 * State is a small hash: `v` tokens, `t` the server time of the last write (ms), `r` and `c` the
 * refill rate per ms and the capacity in force since then (the factor of the last caller applied).
 * The elapsed interval refills at the rate that was in force during it; from this call on, the
 * caller's factor applies (capacity clamps at once). Time is the server's `TIME`, so app servers
 * whose clocks drift agree, and it never moves backwards: a failover to a replica whose clock is
 * behind refills nothing until the clock passes the stored time. The key expires when the bucket
 * would be full again (a missing key reads as a full bucket, so expiry loses nothing).
 *
 * Replies: { allowed (0|1), remaining, retryAfterMs, resetMs } with numbers as strings (Lua numbers
 * would be truncated to integers) and -1 meaning "never" (Infinity).
 */
import { createHash } from 'node:crypto';

export const TOKEN_BUCKET_SCRIPT = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local key = KEYS[1]
local op = ARGV[1]
local cost = tonumber(ARGV[2])
local base_rate = tonumber(ARGV[3]) / 1000
local factor = tonumber(ARGV[5])
local rate = base_rate * factor
local cap = tonumber(ARGV[4]) * factor
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local s = redis.call('HMGET', key, 'v', 't', 'r', 'c')
local tokens = cap
local exists = s[1] ~= false
if exists then
  local last = tonumber(s[2])
  if last > now then now = last end
  tokens = tonumber(s[1]) + (now - last) * tonumber(s[3])
  local prev_cap = tonumber(s[4])
  if tokens > prev_cap then tokens = prev_cap end
  if tokens > cap then tokens = cap end
end
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
if op == 't' or (op == 'r' and exists) then
  local fmt = '%.17g'
  redis.call('HSET', key, 'v', string.format(fmt, tokens), 't', string.format(fmt, now),
    'r', string.format(fmt, rate), 'c', string.format(fmt, cap))
  local ttl
  if rate > 0 then ttl = (cap - tokens) / rate else ttl = tonumber(ARGV[4]) / base_rate end
  redis.call('PEXPIRE', key, math.max(1, math.ceil(ttl) + 1))
end
local retry = 0
if allowed == 0 then
  if rate <= 0 or cost > cap then retry = -1 else retry = (cost - tokens) / rate end
end
local reset
if rate > 0 then reset = (cap - tokens) / rate elseif tokens >= cap then reset = 0 else reset = -1 end
return { allowed, string.format('%.17g', tokens), string.format('%.17g', retry), string.format('%.17g', reset) }
`;

export const TOKEN_BUCKET_SHA = createHash('sha1').update(TOKEN_BUCKET_SCRIPT).digest('hex');

export type ScriptOp = 't' | 'p' | 'r';
