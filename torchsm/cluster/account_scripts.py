"""The Lua script of the cluster's shared accounts (torchsm.cluster.accounts): one round
trip per account and sync, atomic on the server, so a merge and what is read back after
it cannot be split by another host.

Keys of account A: `torch.cluster.account.A.windows` (hash: window -> the JSON of its
merged state), `.grants` (sorted set: HOST:NOVA with a request in flight, scored by its
expiry), `.running` (sorted set: HOST:NOVA:SESSION, scored by its expiry), `.starts`
(hash: host -> its latest session start); `torch.cluster.accounts` (set) names the shared
accounts. Every time is the server's (`TIME`); every key is one of the script's KEYS.
"""

ACCOUNTS_KEY = "torch.cluster.accounts"
ACCOUNT_KEYS = ("windows", "grants", "running", "starts")


def account_keys(account: str) -> list[str]:
    return [f"torch.cluster.account.{account}.{part}" for part in ACCOUNT_KEYS] + [ACCOUNTS_KEY]


def news_channel(account: str) -> str:
    """Where a sync that changed the account's merged state says so (the message: the
    host that synced), so the other hosts sync at once instead of at their next turn."""
    return f"torch.cluster.account.{account}.news"


# The merge: a report replaces the stored window when the stored reset is already past
# (that window has reset: any word of the new one is news), when its reset is later, or,
# at an equal reset, when its utilization is higher (at an equal one, when it is rejected
# and the stored one is not). A window with no reset counts as one that reset at 0.
MERGE_HELPERS = """
local function reset_of(w) return tonumber(w.resets_at) or 0 end
local function used_of(w) return tonumber(w.utilization) or 0 end
local function wins(new, old, now)
  if not old then return true end
  if reset_of(old) <= now then return true end
  if reset_of(new) ~= reset_of(old) then return reset_of(new) > reset_of(old) end
  if used_of(new) ~= used_of(old) then return used_of(new) > used_of(old) end
  return new.status == 'rejected' and old.status ~= 'rejected'
end
local function replace_mine(key, host, members, expiry)
  local prefix, before, after = host .. ':', {}, 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if string.sub(m, 1, #prefix) == prefix then
      before[m] = true
      redis.call('ZREM', key, m)
    end
  end
  local changed = false
  for _, m in ipairs(members) do
    redis.call('ZADD', key, expiry, prefix .. m)
    changed = changed or not before[prefix .. m]
    after = after + 1
  end
  for _ in pairs(before) do after = after - 1 end
  return changed or after ~= 0
end
local function others(key, host, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local prefix, n = host .. ':', 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if string.sub(m, 1, #prefix) ~= prefix then n = n + 1 end
  end
  return n
end
"""

# KEYS: account_keys(A). ARGV: account, host, lease_s (how long what a host publishes
# lives without a new sync), its latest start ('' none), the number n of windows, n window
# JSONs, a JSON list of its Novas with a request in flight, a JSON list of its running
# NOVA:SESSION. A sync that changed a merged window or this host's members publishes its
# host on news_channel(account). Returns {server time, merged windows (field, JSON, ...),
# the others' requests in flight, the others' running sessions, the others' latest start
# or false}.
SYNC = MERGE_HELPERS + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local account, host, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = tonumber(ARGV[5])
redis.call('SADD', KEYS[5], account)
local news = false
for i = 6, 5 + n do
  local new = cjson.decode(ARGV[i])
  local stored = redis.call('HGET', KEYS[1], new.window)
  if wins(new, stored and cjson.decode(stored), now) then
    news = news or stored ~= ARGV[i]
    redis.call('HSET', KEYS[1], new.window, ARGV[i])
  end
end
news = replace_mine(KEYS[2], host, cjson.decode(ARGV[6 + n]), now + lease) or news
news = replace_mine(KEYS[3], host, cjson.decode(ARGV[7 + n]), now + lease) or news
if news then redis.call('PUBLISH', 'torch.cluster.account.' .. account .. '.news', host) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], host, ARGV[4]) end
local latest = false
local starts = redis.call('HGETALL', KEYS[4])
for i = 1, #starts, 2 do
  if starts[i] ~= host and (not latest or tonumber(starts[i + 1]) > tonumber(latest)) then
    latest = starts[i + 1]
  end
end
return {string.format('%d.%06d', t[1], t[2]), redis.call('HGETALL', KEYS[1]),
        others(KEYS[2], host, now), others(KEYS[3], host, now), latest}
"""
