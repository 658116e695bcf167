/**
 * The token-bucket script: one round trip per decision, atomic on the server.
 *
 * Decides a batch: KEYS[i] is the i-th decision's bucket key and ARGV[5(i-1)+1..5i] its op ('t'
 * take, 'p' peek, 'r' refund), cost, ratePerSec and burst at factor 1, and the caller's factor,
 * in order (two decisions on one key see each other). One decision is a batch of one; on a
 * Cluster every call holds one key.
 *
 * State is one 32-byte string, four little-endian doubles (struct.pack '<dddd'): the tokens, the
 * server time of the last write (ms), and the refill rate per ms and the capacity in force since
 * then (the factor of the last caller applied). Exact: one GET per decision, and one SET PX per
 * admitted take or refund. The elapsed interval refills at the rate that was in force during it;
 * from this call on, the caller's factor applies (capacity clamps at once). A refused take whose
 * rate and capacity are those stored writes nothing: the stored tokens and time already give the
 * same bucket at every later time (one rounding fewer), and the key's expiry, the time the bucket
 * would be full, has not moved. Under a changed factor it writes, so the new rate runs from it. Time is the server's `TIME`, so app servers
 * whose clocks drift agree, and it never moves backwards: a failover to a replica whose clock is
 * behind refills nothing until the clock passes the stored time. The key expires when the bucket
 * would be full again (a missing key reads as a full bucket, so expiry loses nothing).
 *
 * Replies: three integers per decision, flat: 1 if allowed else 0, then the tokens left, exactly,
 * as `math.frexp` splits them: the mantissa times 2^53 and the exponent (a Lua number in a reply is
 * truncated to an integer, and integers cost the server less than formatting a float). The caller
 * derives the waits (`retryAfterMs`, `resetMs`) from the tokens, the cost, the rate and the
 * capacity with the arithmetic of `bucketDecision`: it sent those numbers, as strings that parse
 * back to the same doubles.
 * Needs Redis >= 5 or Valkey (scripts replicate their effects, so TIME before a write is allowed).
 */
import { createHash } from 'node:crypto';

export const TOKEN_BUCKET_SCRIPT = `
local clock = redis.call('TIME')
local server_now = clock[1] * 1000 + clock[2] / 1000
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local a = (i - 1) * 5
  local op = ARGV[a + 1]
  local cost = tonumber(ARGV[a + 2])
  local base_rate = tonumber(ARGV[a + 3]) / 1000
  local factor = tonumber(ARGV[a + 5])
  local rate = base_rate * factor
  local cap = tonumber(ARGV[a + 4]) * factor
  local now = server_now
  local raw = redis.call('GET', key)
  local tokens = cap
  local r, c
  if raw then
    local v, last
    v, last, r, c = struct.unpack('<dddd', raw)
    if last > now then now = last end
    tokens = v + (now - last) * r
    if tokens > c then tokens = c end
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
  -- A refused take under the rate and capacity already stored changes nothing: skip the write.
  if (op == 't' and (allowed == 1 or (raw and (r ~= rate or c ~= cap)))) or (op == 'r' and raw) then
    local ttl
    if rate > 0 then ttl = (cap - tokens) / rate else ttl = tonumber(ARGV[a + 4]) / base_rate end
    redis.call('SET', key, struct.pack('<dddd', tokens, now, rate, cap), 'PX', math.max(1, math.ceil(ttl) + 1))
  end
  local m, e = math.frexp(tokens)
  out[3 * i - 2] = allowed
  out[3 * i - 1] = m * 9007199254740992
  out[3 * i] = e
end
return out
`;

export const TOKEN_BUCKET_SHA = createHash('sha1').update(TOKEN_BUCKET_SCRIPT).digest('hex');

export type ScriptOp = 't' | 'p' | 'r';
