-- One atomic rate-limit decision: token bucket with cost + monthly counter (same arithmetic as bucket.py).
-- KEYS[1]: bucket hash {tokens, ts}; KEYS[2]: month counter (cost units used this UTC month).
-- ARGV[1] cost; ARGV[2] capacity ('' = unlimited minute); ARGV[3] refill tokens/s; ARGV[4] per_month
-- ('' = unlimited month); ARGV[5] month counter TTL seconds; ARGV[6] now in epoch seconds ('' = Redis TIME).
-- Returns {allowed 0|1, bucket_short 0|1, month_short 0|1, tokens after ('' if unlimited), month used}.
-- A rejected request consumes nothing and writes nothing; cost 0 is always admitted and writes nothing.
local cost = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local per_month = tonumber(ARGV[4])
local now = tonumber(ARGV[6])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local tokens = nil
if capacity then
  tokens = capacity
  local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
  local held, stamp = tonumber(state[1]), tonumber(state[2])
  if held and stamp then
    local elapsed = now - stamp
    if elapsed < 0 then elapsed = 0 end
    tokens = math.min(capacity, held + elapsed * rate)
  end
end
local used = 0
if per_month then used = tonumber(redis.call('GET', KEYS[2]) or '0') end

local function fmt(x)
  if x == nil then return '' end
  return string.format('%.17g', x)
end

local bucket_short = (tokens ~= nil) and tokens < cost
local month_short = (per_month ~= nil) and used + cost > per_month
if cost <= 0 then return {1, 0, 0, fmt(tokens), fmt(used)} end
if bucket_short or month_short then
  return {0, bucket_short and 1 or 0, month_short and 1 or 0, fmt(tokens), fmt(used)}
end
if tokens ~= nil then
  tokens = tokens - cost
  redis.call('HSET', KEYS[1], 'tokens', fmt(tokens), 'ts', fmt(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
end
if per_month then
  used = used + cost
  redis.call('SET', KEYS[2], fmt(used), 'EX', tonumber(ARGV[5]))
end
return {1, 0, 0, fmt(tokens), fmt(used)}
