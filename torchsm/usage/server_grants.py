"""Grants taken on the cluster's server: the last request of a shared account's window
goes to one host only.

Each host learns the others' grants by a sync, tens of milliseconds late: two hosts that
both see one request left both send it, and the provider refuses the later one. So when
a Nova's account is shared with live hosts, its grant (a Stop hook's continuation, a
session's start) is taken on the server first, by one Lua script (`TAKE`), atomic there:
1. it merges this host's own readings of the account's windows into the server's (as a
   sync does), so the server's windows hold at least what this host has heard;
2. it drops this Nova's earlier grants (a Nova sends one request at a time, and its
   answer is in the readings just merged: torchsm.usage.limits ends a grant in the
   transaction that stores its answer's reading) and the lapsed ones of any host;
3. it counts every host's grants left (`.grants`, published by the hosts' syncs, and
   `.taken`, taken here and not synced yet; one member per grant, HOST:NOVA@TOKEN);
4. it adds this grant when, in every live merged window, the reading plus those grants at
   this host's per-request estimate stays below `stop_utilization`: the rule of the local
   verdict (torchsm.usage.pacing: a request goes while `used + in_flight * cost` is below
   it; with no estimate, none goes past `slow_utilization` while others fly), now
   judged on what the server holds of all hosts. The host passes its estimates and
   thresholds, not a `left` it counted: a count made before the script runs would miss
   what another host added in between, which is the race itself.

Order against the syncer (torchsm.cluster.accounts): a taken grant is its own member in
`.taken`, which a sync's `replace_mine` of `.grants` never touches, so a sync whose
SQLite read came before this grant's row was committed cannot drop it; a sync that
publishes the row moves the member from `.taken` to `.grants` (account_scripts.SYNC),
and the sync after its answer drops it in the same script that merges the answer's
reading. A member lives `[cluster] lease_s` past its latest sync: a crashed host's lapse.
The take runs inside the SQLite transaction that then records the grant's row (the Stop
hook's, admission's): should that transaction fail, the member only over-counts until it
lapses, the safe side.

Server unreachable (or refusing the script): the local decision of today stands: a host
cut off obeys what it hears itself, and admission's cut-off rule stops new sessions of the
account after `lease_s`. Only the hook path's small RESP client is used here (the Stop
hook is hot: no redis-py), for the supervisor's starts too (one path), connected only
when the account has live peers.
"""

from __future__ import annotations

import json

from torchsm.usage import accounts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from torchsm.config import Config

TAKE_TIMEOUT_S = 0.25  # connect and answer: past it the host decides alone
TAKEN_WHY = "another host took the account's last request of the window"
KEY_PREFIX = "torch.cluster.account."


def account_key(account: str, part: str) -> str:
    return f"{KEY_PREFIX}{account}.{part}"


def news_channel(account: str) -> str:
    """Where a change of the account's merged state is told (the message: the host), so
    the other hosts sync at once instead of at their next turn."""
    return account_key(account, "news")


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
local function merge(key, first, last, now)
  local news = false
  for i = first, last do
    local new = cjson.decode(ARGV[i])
    local stored = redis.call('HGET', key, new.window)
    if wins(new, stored and cjson.decode(stored), now) then
      news = news or stored ~= ARGV[i]
      redis.call('HSET', key, new.window, ARGV[i])
    end
  end
  return news
end
"""

# KEYS: the account's windows, grants, taken. ARGV: the news channel, host, nova, token,
# lease_s, stop_utilization, slow_utilization, 1 when the Nova's own last answer is not
# read yet (it flies still) else 0, a JSON object window -> per-request estimate, the
# number n of window JSONs, n window JSONs. Returns {1 taken | 0 refused, the window that
# refused or '', the grants counted}.
TAKE = MERGE_HELPERS + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local mine = ARGV[2] .. ':' .. ARGV[3] .. '@'
local stop, slow = tonumber(ARGV[6]), tonumber(ARGV[7])
local costs, n = cjson.decode(ARGV[9]), tonumber(ARGV[10])
local news = merge(KEYS[1], 11, 10 + n, now)
local seen, flying = {}, tonumber(ARGV[8])
for k = 2, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now)
  for _, m in ipairs(redis.call('ZRANGE', KEYS[k], 0, -1)) do
    if string.sub(m, 1, #mine) == mine then redis.call('ZREM', KEYS[k], m)
    elseif not seen[m] then seen[m] = true; flying = flying + 1 end
  end
end
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  local w = cjson.decode(raw)
  local used, cost = used_of(w), tonumber(costs[w.window])
  if reset_of(w) > now and (w.status == 'rejected' or used >= stop
      or (cost and used + flying * cost >= stop)
      or (not cost and flying > 0 and used >= slow)) then
    if news then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
    return {0, w.window, flying}
  end
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), mine .. ARGV[4])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {1, '', flying}
"""


def window_json(row: accounts.WindowRow, host: str) -> str:
    """One window as published: who heard it is HOST:NOVA."""
    return json.dumps({"window": row.window, "status": row.status,
                       "utilization": row.utilization, "resets_at": row.resets_at,
                       "heard_at": row.updated_at, "source": row.source,
                       "by": f"{host}:{row.nova or '?'}"})


def shared_with_live_peers(peers: accounts.Peers | None, lease_s: float, now: float) -> bool:
    """Whether another host may grant on the account now: its sync answered within
    `lease_s` and it runs, flies or has started sessions of the account."""
    return peers is not None and peers.answered_at > now - lease_s and bool(
        peers.running or peers.in_flight or peers.last_start is not None)


def granted(conn, config: Config, nova, now: float) -> bool:
    """Take the grant `nova` is about to be given at `now` on the cluster's server, when
    its account is shared with live hosts. False only when the server refused (another
    host took the last request); True when taken, not shared, or the server did not
    answer (the local decision stands)."""
    from torchsm.config import in_cluster

    if not in_cluster(config):
        return True
    if not shared_with_live_peers(accounts.load_peers(conn, nova.account),
                                  config.cluster.lease_s, now):
        return True
    taken = take(config, nova.account, _args(conn, config, nova, now))
    return taken is not False


def _args(conn, config: Config, nova, now: float) -> list:
    from torchsm.config import cluster_host, usage_for

    host, cfg = cluster_host(config), usage_for(config, nova.account)
    windows = accounts.load_windows(conn, nova.account)
    mine = [window_json(w, host) for w in windows if accounts.heard_locally(w)]
    costs = {w.window: w.per_request for w in windows if w.per_request}
    pending = accounts.pending(conn, nova.id, now)
    return [news_channel(nova.account), host, nova.name, accounts.grant_token(now),
            config.cluster.lease_s, cfg.stop_utilization, cfg.slow_utilization,
            int(pending), json.dumps(costs), len(mine), *mine]


def take(config: Config, account: str, args: list) -> bool | None:
    """Run TAKE; None when the server did not answer or refused the script."""
    from torchsm.mirror import redis_wire

    keys = [account_key(account, part) for part in ("windows", "grants", "taken")]
    try:
        server = redis_wire.Connection.open(redis_wire.parse_url(config.redis_url),
                                            TAKE_TIMEOUT_S)
    except (redis_wire.Unreachable, redis_wire.BadUrl):
        return None
    try:
        reply = server.call("EVAL", TAKE, len(keys), *keys, *args)
    except (redis_wire.Unreachable, redis_wire.ReplyError):
        return None
    finally:
        server.close()
    return reply[0] == 1
