"""The Lua script of the cluster's shared accounts (torchsm.cluster.accounts): one round
trip per account and sync, atomic on the server, so a merge and what is read back after
it cannot be split by another host.

Keys of account A: `torch.cluster.account.A.windows` (hash: window -> the JSON of its
merged state), `.grants` (sorted set: HOST:NOVA@TOKEN, a request in flight, scored by
its expiry), `.running` (sorted set: HOST:NOVA:SESSION, scored by its expiry), `.starts`
(hash: host -> its latest session start), `.taken` (as `.grants`: taken on the server and
not synced yet, torchsm.usage.server_grants); `torch.cluster.accounts` (set) names the
shared accounts. Every time is the server's (`TIME`); every key is one of the script's KEYS.
"""

from torchsm.usage import server_grants

ACCOUNTS_KEY = "torch.cluster.accounts"
ACCOUNT_KEYS = ("windows", "grants", "running", "starts", "taken")


news_channel = server_grants.news_channel


def account_keys(account: str) -> list[str]:
    return [server_grants.account_key(account, part) for part in ACCOUNT_KEYS] + [ACCOUNTS_KEY]


# The windows' merge is torchsm.usage.server_grants' (a grant taken there merges too).
MERGE_HELPERS = server_grants.MERGE_HELPERS + """
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
local function others(keys, host, now)
  local prefix, seen, n = host .. ':', {}, 0
  for _, key in ipairs(keys) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
      if string.sub(m, 1, #prefix) ~= prefix and not seen[m] then seen[m] = true; n = n + 1 end
    end
  end
  return n
end
local function synced_now(grants, taken)
  for _, m in ipairs(redis.call('ZRANGE', taken, 0, -1)) do
    if redis.call('ZSCORE', grants, m) then redis.call('ZREM', taken, m) end
  end
end
"""

# KEYS: account_keys(A). ARGV: account, host, lease_s (how long what a host publishes
# lives without a new sync), its latest start ('' none), the number n of windows, n window
# JSONs, a JSON list of its grants in flight (NOVA@TOKEN), a JSON list of its running
# NOVA:SESSION, the account's news channel (news_channel(account)). A grant taken on the
# server (server_grants.TAKE) leaves `.taken` for `.grants` once a sync publishes it; until
# then no sync can drop it. A sync that changed a merged window or this host's members
# publishes its host on the news channel.
# Returns {server time, merged windows (field, JSON, ...), the others' requests in flight
# (synced or taken), the others' running sessions, the others' latest start or false}.
SYNC = MERGE_HELPERS + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local account, host, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = tonumber(ARGV[5])
redis.call('SADD', KEYS[6], account)
local news = merge(KEYS[1], 6, 5 + n, now)
news = replace_mine(KEYS[2], host, cjson.decode(ARGV[6 + n]), now + lease) or news
synced_now(KEYS[2], KEYS[5])
news = replace_mine(KEYS[3], host, cjson.decode(ARGV[7 + n]), now + lease) or news
if news then redis.call('PUBLISH', ARGV[8 + n], host) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], host, ARGV[4]) end
local latest = false
local starts = redis.call('HGETALL', KEYS[4])
for i = 1, #starts, 2 do
  if starts[i] ~= host and (not latest or tonumber(starts[i + 1]) > tonumber(latest)) then
    latest = starts[i + 1]
  end
end
return {string.format('%d.%06d', t[1], t[2]), redis.call('HGETALL', KEYS[1]),
        others({KEYS[2], KEYS[5]}, host, now), others({KEYS[3]}, host, now), latest}
"""
