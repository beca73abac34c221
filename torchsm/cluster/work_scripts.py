"""The Lua scripts of the cluster's work (torchsm.cluster.work): each runs atomically on
the server, so a check and the write that depends on it cannot be split by another host.

Only commands Dragonfly lists as supported (XADD, XREADGROUP, XACK, XPENDING, XCLAIM,
XRANGE, XDEL, XGROUP, XINFO GROUPS, TIME), XPENDING never filtered by consumer (a Redis 6.2 option
Dragonfly lacks: a page of the PEL is read and filtered here), no exclusive `(` ranges,
and every key a script touches is one of its KEYS (Dragonfly refuses undeclared keys).
"""

# Shared by the scripts: the first id after `id`, to page through a PEL; and the first
# pending entry (XPENDING's extended form: id, consumer, idle, deliveries) of consumer
# `who`, found through the summary's per-consumer counts before any page is read.
PENDING_HELPERS = """
local function after(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. '-' .. (tonumber(seq) + 1)
end
local function pending_pages(stream, group, visit)
  local start = '-'
  while true do
    local page = redis.pcall('XPENDING', stream, group, start, '+', 100)
    if type(page) ~= 'table' or page.err or #page == 0 then return nil end
    for _, p in ipairs(page) do
      local found = visit(p)
      if found then return found end
    end
    start = after(page[#page][1])
  end
end
local function first_pending_of(stream, group, who)
  local summary = redis.call('XPENDING', stream, group)
  local holds = false
  for _, c in ipairs(summary[4] or {}) do
    if c[1] == who then holds = true end
  end
  if not holds then return nil end
  return pending_pages(stream, group, function(p) if p[2] == who then return p end end)
end
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
end
"""

# KEYS: item id key, stream. ARGV: group, id ttl (s), then the entry's field/value pairs.
# Returns {1, stream, entry id} when added, {0, stream, entry id} when the id was known.
ADD = """
local unpack = unpack or table.unpack
local known = redis.call('GET', KEYS[1])
if known then
  local stream, id = string.match(known, '^(.*) ([^ ]+)$')
  return {0, stream, id}
end
redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[1], '0', 'MKSTREAM')
local t = redis.call('TIME')
local at = string.format('%d.%06d', t[1], t[2])
local id = redis.call('XADD', KEYS[2], '*', 'added_at', at, unpack(ARGV, 3))
redis.call('SET', KEYS[1], KEYS[2] .. ' ' .. id, 'EX', ARGV[2])
return {1, KEYS[2], id}
"""

# KEYS: the work streams, most urgent first. ARGV: group, consumer, pool consumer.
# Returns {stream, entry id, fields, deliveries} or false: first what the consumer holds
# already (a retried claim gets the same item), then per tier a taken-over entry from the
# pool (XCLAIM counts one more delivery), then a new one.
CLAIM = PENDING_HELPERS + """
local group, me, pool = ARGV[1], ARGV[2], ARGV[3]
for _, s in ipairs(KEYS) do
  redis.pcall('XGROUP', 'CREATE', s, group, '0', 'MKSTREAM')
end
for _, s in ipairs(KEYS) do
  local p = first_pending_of(s, group, me)
  if p then
    local e = redis.call('XRANGE', s, p[1], p[1])
    if #e == 1 then return {s, p[1], e[1][2], p[4]} end
    redis.call('XACK', s, group, p[1])  -- deleted behind the group's back: nothing to do
  end
end
for _, s in ipairs(KEYS) do
  local p = first_pending_of(s, group, pool)
  if p then
    local e = redis.call('XCLAIM', s, group, me, 0, p[1])
    if e[1] then return {s, p[1], e[1][2], p[4] + 1} end
  end
  local r = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', 1, 'STREAMS', s, '>')
  if r then return {s, r[1][2][1][1], r[1][2][1][2], 1} end
end
return false
"""

# KEYS: the work streams to look at. ARGV: group, consumer, pool consumer.
# Read-only: 1 when CLAIM would find an entry on one of them (one the consumer holds, one
# in the pool, or one the group has not delivered yet: an entry after the group's
# last-delivered-id), else 0. Creates nothing: a stream with no group yet is all new.
WAITING = PENDING_HELPERS + """
local group, me, pool = ARGV[1], ARGV[2], ARGV[3]
local function last_delivered(s)
  local groups = redis.pcall('XINFO', 'GROUPS', s)
  if type(groups) ~= 'table' or groups.err then return nil end
  for _, g in ipairs(groups) do
    if field(g, 'name') == group then return field(g, 'last-delivered-id') end
  end
end
local function held(s)
  local summary = redis.pcall('XPENDING', s, group)
  if type(summary) ~= 'table' or summary.err then return false end
  for _, c in ipairs(summary[4] or {}) do
    if c[1] == me or c[1] == pool then return true end
  end
  return false
end
for _, s in ipairs(KEYS) do
  if held(s) then return 1 end
  local seen = last_delivered(s)
  local start = seen and after(seen) or '-'
  if #redis.call('XRANGE', s, start, '+', 'COUNT', 1) > 0 then return 1 end
end
return 0
"""

# KEYS: stream, done marker. ARGV: group, entry id, consumer, marker ttl (s).
# 1: done now; 0: this consumer's done, already counted; -1: the consumer does not hold
# the entry (never did, or lost it to a takeover): its done does not count.
DONE = """
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) == 'table' and not p.err and #p == 1 and p[1][2] == ARGV[3] then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
  return 1
end
if redis.call('GET', KEYS[2]) == ARGV[3] then return 0 end
return -1
"""

# KEYS: the work streams, then the hosts set, then the dead-letter stream.
# ARGV: group, pool consumer, now (server time), lease (s), max attempts, the server's
# start (server time). Entries held by a consumer HOST:NOVA whose host's last beat, and
# the server's start (a restore's grace: torchsm.cluster.hosts), are older than the lease
# go to the pool, or, once delivered max attempts times, to the
# dead-letter stream. Returns {pooled item ids, dead item ids}.
# `dead` is the Lua twin of torchsm.cluster.hosts.is_alive.
RECLAIM = PENDING_HELPERS + """
local unpack = unpack or table.unpack
local n = #KEYS
local hosts, dead_stream = KEYS[n - 1], KEYS[n]
local group, pool = ARGV[1], ARGV[2]
local now, lease, max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local up_since = tonumber(ARGV[6])
local pooled, buried, known = {}, {}, {}
local function dead(host)
  if known[host] == nil then
    local beat = tonumber(redis.call('ZSCORE', hosts, host)) or up_since
    known[host] = now - math.max(beat, up_since) > lease
  end
  return known[host]
end
local function take_over(s, p)
  local id, owner, deliveries = p[1], p[2], p[4]
  local host = string.match(owner, '^([^:]+):')
  if not host or not dead(host) then return end
  local e = redis.call('XRANGE', s, id, id)
  if #e == 0 then redis.call('XACK', s, group, id) return end
  local fields = e[1][2]
  if deliveries >= max then
    redis.call('XADD', dead_stream, '*', 'stream', s, 'entry_id', id, 'owner', owner,
               'deliveries', deliveries, 'dead_at', ARGV[3], unpack(fields))
    redis.call('XACK', s, group, id)
    redis.call('XDEL', s, id)
    table.insert(buried, field(fields, 'item_id'))
  else
    redis.call('XCLAIM', s, group, pool, 0, id, 'JUSTID')
    table.insert(pooled, field(fields, 'item_id'))
  end
end
for i = 1, n - 2 do
  pending_pages(KEYS[i], group, function(p) take_over(KEYS[i], p) end)
end
return {pooled, buried}
"""

# KEYS: stream, dead-letter stream. ARGV: group, entry id, consumer, pool consumer,
# max attempts, counted (1/0), error. Fenced like DONE: only the consumer that holds the
# entry may give it back. Counted: the attempt stays counted (its delivery), and past max
# attempts the entry goes to the dead-letter stream (2); else it goes to the pool for the
# next claim (1). Not counted (a release: the session never ran): back to the pool with
# the delivery given back (RETRYCOUNT), so the next claim is the same attempt again.
# -1: the consumer does not hold it.
FAIL = """
local unpack = unpack or table.unpack
local group, id, me, pool = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
if type(p) ~= 'table' or p.err or #p ~= 1 or p[1][2] ~= me then return -1 end
local deliveries = p[1][4]
if ARGV[6] == '0' then
  redis.call('XCLAIM', KEYS[1], group, pool, 0, id, 'RETRYCOUNT', math.max(deliveries - 1, 0),
             'JUSTID')
  return 1
end
local e = redis.call('XRANGE', KEYS[1], id, id)
if #e == 1 and deliveries < tonumber(ARGV[5]) then
  redis.call('XCLAIM', KEYS[1], group, pool, 0, id, 'JUSTID')
  return 1
end
if #e == 1 then
  local t = redis.call('TIME')
  redis.call('XADD', KEYS[2], '*', 'stream', KEYS[1], 'entry_id', id, 'owner', me,
             'deliveries', deliveries, 'dead_at', string.format('%d.%06d', t[1], t[2]),
             'error', ARGV[7], unpack(e[1][2]))
end
redis.call('XACK', KEYS[1], group, id)
redis.call('XDEL', KEYS[1], id)
return 2
"""
