/*
 * rooms_redis_lua.h - the three Lua scripts of the Redis room store. Each
 * runs atomically in Redis, so a pairing is decided once for all instances
 * in one round trip. Every key of one call shares the room's hash tag
 * ({room}), so a script touches one slot.
 *
 * Keys (P is the prefix, "hp:" by default):
 *   P{room}:w       string: the id of the member waiting in the room (PX ttl)
 *   P{room}:m:<id>  hash (PX ttl), a member: i instance, t token, s state
 *                   ("w" waiting, "p" paired), p payload while waiting; once
 *                   paired as "a" also r role, pi/pn/pp the peer's id,
 *                   instance and payload, k the session (so that a lost
 *                   notification is recovered by the next refresh)
 *   channel P inst:<instance>: "token peer_id session peer_instance payload"
 */
#ifndef HP_ROOMS_REDIS_LUA_H
#define HP_ROOMS_REDIS_LUA_H

/* KEYS: waiting key, member key. ARGV: id, instance, token, payload, ttl_ms,
 * session, member key prefix of the room, channel prefix.
 * Returns {"dup"}, {"waiting"} or {"paired", peer id, peer payload,
 * session, peer instance, peer token}. */
static const char lua_join[] =
    "local ttl = tonumber(ARGV[5])\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return {'dup'} end\n"
    "local w = redis.call('GET', KEYS[1])\n"
    "if w then\n"
    "  local wk = ARGV[7] .. w\n"
    "  local a = redis.call('HMGET', wk, 'i', 't', 'p', 's')\n"
    "  if a[1] and a[4] == 'w' then\n"
    "    redis.call('DEL', KEYS[1])\n"
    "    redis.call('HSET', wk, 's', 'p', 'r', 'a', 'pi', ARGV[1], 'pn', ARGV[2], 'pp', ARGV[4],"
    " 'k', ARGV[6])\n"
    "    redis.call('HDEL', wk, 'p')\n"
    "    redis.call('HSET', KEYS[2], 'i', ARGV[2], 't', ARGV[3], 's', 'p')\n"
    "    redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "    redis.call('PUBLISH', ARGV[8] .. a[1], a[2] .. ' ' .. ARGV[1] .. ' ' .. ARGV[6] .. ' ' .."
    " ARGV[2] .. ' ' .. ARGV[4])\n"
    "    return {'paired', w, a[3] or '', ARGV[6], a[1], a[2]}\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'i', ARGV[2], 't', ARGV[3], 's', 'w', 'p', ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)\n"
    "return {'waiting'}\n";

/* KEYS: waiting key, member key. ARGV: id, instance, token. Deletes the
 * member only if it is still this one (a later member may have the id). */
static const char lua_leave[] =
    "local a = redis.call('HMGET', KEYS[2], 'i', 't')\n"
    "if a[1] == ARGV[2] and a[2] == ARGV[3] then\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* KEYS: waiting key and member key of each member. ARGV: ttl_ms, instance,
 * then id, token, known state ("w"/"p") of each member. Renews the leases
 * and returns the exceptions only: {j, "gone"} (the member is not in Redis
 * any more) or {j, "paired", role, peer id, peer instance, peer payload,
 * session} (a member known as waiting was paired: its notification was
 * lost). */
static const char lua_refresh[] =
    "local ttl = tonumber(ARGV[1])\n"
    "local out = {}\n"
    "for j = 1, #KEYS / 2 do\n"
    "  local wk, mk = KEYS[2 * j - 1], KEYS[2 * j]\n"
    "  local id, tok, known = ARGV[3 * j], ARGV[3 * j + 1], ARGV[3 * j + 2]\n"
    "  local a = redis.call('HMGET', mk, 'i', 't', 's')\n"
    "  if a[1] ~= ARGV[2] or a[2] ~= tok then\n"
    "    out[#out + 1] = {j, 'gone'}\n"
    "  else\n"
    "    redis.call('PEXPIRE', mk, ttl)\n"
    "    if a[3] == 'w' then\n"
    "      local w = redis.call('GET', wk)\n"
    "      if w == id then\n"
    "        redis.call('PEXPIRE', wk, ttl)\n"
    "      elseif not w then\n"
    "        redis.call('SET', wk, id, 'PX', ttl)\n"
    "      else\n"
    "        redis.call('DEL', mk)\n"
    "        out[#out + 1] = {j, 'gone'}\n"
    "      end\n"
    "    elseif known == 'w' then\n"
    "      local b = redis.call('HMGET', mk, 'r', 'pi', 'pn', 'pp', 'k')\n"
    "      out[#out + 1] = {j, 'paired', b[1] or 'a', b[2] or '', b[3] or '', b[4] or '',"
    " b[5] or ''}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

#endif
