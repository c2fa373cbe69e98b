-- The floor of the feature engine (python -m bench features --floor): the engine's protocol
-- (ARGV head, one 'A' operation per transaction over its record, card and terminal keys, the
-- same reply layout) and the least Redis work any engine on this data model does per
-- transaction, with no feature computed:
--   GET the card's state, write one 24-byte record into it (SETRANGE over its newest record, so
--   the state keeps its size from run to run), the same for the terminal (16 bytes), and the
--   record's SET NX GET with a value of the engine's size (ids and both markers), record TTL.
-- That is five Redis calls per transaction; engine.lua makes nine (the card's sums are a
-- second key, read by three GETRANGEs) and computes the windows. The markers carry the
-- transaction's own fields and neutral counts, so the client's decoding runs as usual.

local RTTL = ARGV[9]
local MARK_C = '<B' .. string.rep('d', 15) .. 'B' .. string.rep('I4', 11)
local MARK_T = '<BdI4I4I4I4I4I4'
local unpack, pack = struct.unpack, struct.pack
local CARD_REC, TERM_REC = string.rep('\0', 24), string.rep('\0', 16)

-- read an entity's state and write one record of its size back over the newest one
local function touch(key, rec)
  local s = redis.call('GET', key)
  if s and #s >= #rec then
    redis.call('SETRANGE', key, #s - #rec, rec)
  else
    redis.call('SET', key, rec)
  end
end

local out, ki = {}, 1
for k = 10, #ARGV do
  local a = ARGV[k]
  local t, amount, _, lat, lon, term = unpack('<dddddd', a, 2)
  local kX, kC = KEYS[ki], KEYS[ki + 1]
  local kT = term ~= 0 and KEYS[ki + 2] or nil
  ki = ki + (kT and 3 or 2)
  touch(kC, CARD_REC)
  local tm = ''
  if kT then
    touch(kT, TERM_REC)
    tm = pack(MARK_T, 0, t, 0, 0, 0, 0, 0, 0)
  end
  local cm = pack(MARK_C, 0, t, amount, lat, lon, term, 0, 0, 0, 0, -1, 999, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0)
  local ids = a:sub(50)
  redis.call('SET', kX, pack('<H', #ids) .. ids .. cm .. tm, 'NX', 'GET', 'PX', RTTL)
  out[#out + 1] = '\0' .. cm
  if kT then out[#out + 1] = '\0' .. tm end
end
return table.concat(out)
