import { createHash } from 'node:crypto';

/**
 * How long after its bucket would be full again a key may outlive it, in ms. A key's expiry is set
 * this much past the time its bucket would be full, and later writes keep it (`KEEPTTL`-like, by
 * `SETRANGE`) while the bucket would still be full before it and no more than this before it: so
 * a key expires no earlier than its bucket is full and at most `EXPIRY_SLACK_MS` (+ 2 ms of
 * rounding) after. A missing key reads as a full bucket, so the slack changes no decision; it costs
 * the memory of keys touched in the last second.
 */
export const EXPIRY_SLACK_MS = 1000;

/** One decision on `key`, its arguments from ARGV[a + 1]; leaves `allowed` and `tokens`. */
const DECIDE = `
  local op = ARGV[a + 1]
  local cost = tonumber(ARGV[a + 2])
  local base_rate = tonumber(ARGV[a + 3]) / 1000
  local factor = tonumber(ARGV[a + 5])
  local rate = base_rate * factor
  local cap = tonumber(ARGV[a + 4]) * factor
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
    local full
    if rate > 0 then full = now + (cap - tokens) / rate else full = now + tonumber(ARGV[a + 4]) / base_rate end
    if d and full <= d and d <= full + ${EXPIRY_SLACK_MS} then
      redis.call('SETRANGE', key, 0, struct.pack('<ddddd', tokens, now, rate, cap, d))
    else
      local px = math.ceil(full + ${EXPIRY_SLACK_MS} - server_now) + 1
      redis.call('SET', key, struct.pack('<ddddd', tokens, now, rate, cap, server_now + px - 2), 'PX', px)
    end
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

export const TOKEN_BUCKET_ONE_SCRIPT = `${CLOCK}
local key = KEYS[1]
local a = 0
${DECIDE}
local m, e = math.frexp(tokens)
return {allowed, m * 9007199254740992, e}
`;

export const TOKEN_BUCKET_SHA = createHash('sha1').update(TOKEN_BUCKET_SCRIPT).digest('hex');
export const TOKEN_BUCKET_ONE_SHA = createHash('sha1').update(TOKEN_BUCKET_ONE_SCRIPT).digest('hex');

export type ScriptOp = 't' | 'p' | 'r';
