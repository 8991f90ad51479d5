/**
 * Applies one decided batch atomically, if and only if the stream is still
 * at the incarnation and version the batch was decided against.
 *
 * KEYS: meta hash, log stream, expiry zset.
 * ARGV: kind, expected inc, expected version, new inc, new version, meta
 * JSON, expiresAt ('' = none), path, channel, notice, record count, then per
 * record: entry id, offset, message count, data.
 * Returns 1 when applied, 0 on a conflict (the caller decides again).
 */
export const COMMIT_SCRIPT = `
local cur = redis.call('HMGET', KEYS[1], 'inc', 'ver')
if (cur[1] or '') ~= ARGV[2] or (cur[2] or '') ~= ARGV[3] then return 0 end
local kind = ARGV[1]
if kind == 'delete' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[8])
else
  if kind == 'create' then redis.call('DEL', KEYS[2]) end
  local n = tonumber(ARGV[11])
  for i = 0, n - 1 do
    local b = 12 + i * 4
    redis.call('XADD', KEYS[2], ARGV[b], 'o', ARGV[b + 1], 'c', ARGV[b + 2], 'd', ARGV[b + 3])
  end
  redis.call('HSET', KEYS[1], 'meta', ARGV[6], 'inc', ARGV[4], 'ver', ARGV[5])
  if ARGV[7] == '' then redis.call('ZREM', KEYS[3], ARGV[8]) else redis.call('ZADD', KEYS[3], ARGV[7], ARGV[8]) end
end
redis.call('PUBLISH', ARGV[9], ARGV[10])
return 1
`
