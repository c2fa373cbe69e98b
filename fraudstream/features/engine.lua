-- fraudstream feature engine: one call scores / labels a batch of operations (see redis_store.py).
-- KEYS[k] is the base key of operation k (card, terminal or record; one hash tag each).
-- ARGV[1..9] = lateness, horizon, label delay, exact cap, coarse max, fold bucket, terminals cap,
-- entity ttl, record ttl (ms); then per operation an opcode and its arguments:
--   C txid t amount cnp lat lon term  -> card raw vector (28 doubles), 'R' appended on replay
--   T txid t                          -> terminal raw vector (8 doubles), 'R' appended on replay
--   X card term                       -> 1 if the record was new, else 0
--   c|t txid is_fraud                 -> 0 unknown, 1 applied, 2 duplicate
-- Window math mirrors fraudstream/features/window.py (CumLog): cumulative records, two binary
-- searches per window, prune behind the horizon keeping one base record, fold past the cap.

local L, H, D = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local CAP, COARSE, B = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local TCAP, ETTL, RTTL = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local MIN, HOUR, DAY = 60000, 3600000, 86400000
local PRUNE_MIN, NOLOC, TERM_TIMES = 16, 999, 4
local CARD_BYTES, TERM_BYTES = 28 * 8, 8 * 8
local DEG = math.pi / 180
local unpack, pack, floor = struct.unpack, struct.pack, math.floor

-- time of record i (1-based) of a 16-byte (time, cum) log
local function tim(s, i) return (unpack('<d', s, 16 * i - 15)) end
local function cum(s, i) if i == 0 then return 0 end return (unpack('<d', s, 16 * i - 7)) end

-- number of records with time <= e among records 1..hi (binary search, O(log n) unpacks)
local function find(s, e, hi)
  local lo = 0
  while lo < hi do
    local mid = floor((lo + hi + 1) / 2)
    if tim(s, mid) <= e then lo = mid else hi = mid - 1 end
  end
  return lo
end

-- fold: thin records 1..m-1 to the last one per bucket (window.py CumLog.fold); stride-aligned
local function fold(key, rkey, n)
  if n <= CAP + COARSE then return end
  local s = redis.call('GET', key)
  local m = n - floor(CAP / 2)
  local keep = {}
  for i = 1, m - 1 do
    if floor(tim(s, i) / B) ~= floor(tim(s, i + 1) / B) then keep[#keep + 1] = i end
  end
  for i = m, n do keep[#keep + 1] = i end
  local parts = {}
  for j, i in ipairs(keep) do parts[j] = s:sub(16 * i - 15, 16 * i) end
  redis.call('SET', key, table.concat(parts))
  if rkey then
    local r = redis.call('GET', rkey)
    for j, i in ipairs(keep) do parts[j] = r:sub(80 * i - 79, 80 * i) end
    redis.call('SET', rkey, table.concat(parts))
  end
end

-- insert (t, +d) into a (time, cum) log after equal times; prune; fold. Returns new length.
-- Appends in order (the common case) are one APPEND; a late event rewrites only the tail.
local function tinsert(key, s, n, t, d, rkey, rrec)
  local pos = find(s, t, n)
  local rec = pack('<dd', t, cum(s, pos) + d)
  if pos == n then
    redis.call('APPEND', key, rec)
  else
    local parts = { rec }
    for i = pos + 1, n do
      local ti, ci = unpack('<dd', s, 16 * i - 15)
      parts[#parts + 1] = pack('<dd', ti, ci + d)
    end
    redis.call('SETRANGE', key, 16 * pos, table.concat(parts))
  end
  if rkey then rrec(pos, n) end
  local wm = t
  if n > 0 and tim(s, n) > t then wm = tim(s, n) end
  local edge = wm - H
  local stale = find(s, edge, n) - 1
  if t <= edge then stale = stale + 1 end
  n = n + 1
  if stale >= PRUNE_MIN then
    -- keep the newest stale record as the base later windows subtract from
    redis.call('SET', key, redis.call('GETRANGE', key, 16 * stale, -1))
    if rkey then redis.call('SET', rkey, redis.call('GETRANGE', rkey, 80 * stale, -1)) end
    n = n - stale
  end
  fold(key, rkey, n)
  return n
end

local function fwindow(f, nf, lo, hi)
  return cum(f, find(f, hi, nf)) - cum(f, find(f, lo, nf))
end

local function card_op(base, txid, t, amount, cnp, lat, lon, tf)
  local km = base .. ':x:' .. txid
  local old = redis.call('GET', km)
  if old then return old:sub(1, CARD_BYTES) .. 'R' end -- redelivery: first answer, no change
  local kT, kR = base .. ':T', base .. ':R'
  local s = redis.call('GET', kT) or ''
  local n = #s / 16
  local late = n > 0 and t < tim(s, n) - L
  local it = find(s, t, n)
  local i10m = find(s, t - 10 * MIN, it)
  local i1h = find(s, t - HOUR, i10m)
  local i1d = find(s, t - DAY, i1h)
  local i7d = find(s, t - 7 * DAY, i1d)
  local i30d = find(s, t - 30 * DAY, i7d)
  local idh = find(s, t - D, it)
  local idl = find(s, t - D - 30 * DAY, idh)
  local nt = cum(s, it)
  -- one GETRANGE for records i1d..it: the 1-day edge, the 1-day window, the previous record
  local a = i1d > 0 and i1d or 1
  local rng = it >= a and redis.call('GETRANGE', kR, 80 * (a - 1), 80 * it - 1) or ''
  local function rrec(i)
    if i == 0 then return 0, 0, 0, 0, 0, 0, 0, NOLOC, 0, 0 end
    if i >= a and i <= it then return unpack('<dddddddddd', rng, 80 * (i - a) + 1) end
    return unpack('<dddddddddd', redis.call('GETRANGE', kR, 80 * (i - 1), 80 * i - 1))
  end
  local tA, tA2, tC, tLn, tX, tY, tZ, pLat, pLon = rrec(it)
  local dA = rrec(i1d)
  local wA, _, wC = rrec(i7d)
  local mA, mA2, _, mLn, mX, mY, mZ = rrec(i30d)
  local seen_terms, distinct = {}, 0
  if tf ~= '0' then seen_terms[tonumber(tf)] = true; distinct = 1 end
  for i = i1d + 1, it do
    local term = unpack('<d', rng, 80 * (i - a) + 73)
    if term ~= 0 and not seen_terms[term] then seen_terms[term] = true; distinct = distinct + 1 end
  end
  local seen30, uses = 0, nil
  if tf ~= '0' then
    uses = redis.call('HGET', base .. ':S', tf) or ''
    for j = 1, #uses / 8 do
      local u = unpack('<d', uses, 8 * j - 7)
      if u > t - 30 * DAY and u <= t then seen30 = 1 end
    end
  end
  local f = redis.call('GET', base .. ':F') or ''
  local nf = #f / 16
  local prev_t = it > 0 and tim(s, it) or -1
  if it == 0 then pLat, pLon = NOLOC, 0 end
  local blob = pack('<' .. string.rep('d', 28), late and 1 or 0, t, amount, cnp, lat, lon,
    tonumber(tf), nt - cum(s, i10m), nt - cum(s, i1h), nt - cum(s, i1d), nt - cum(s, i7d),
    nt - cum(s, i30d), tA - dA, tA - wA, tA - mA, tA2 - mA2, tC - wC, distinct, seen30,
    prev_t, pLat, pLon, tLn - mLn, tX - mX, tY - mY, tZ - mZ,
    cum(s, idh) - cum(s, idl), fwindow(f, nf, t - D - 30 * DAY, t - D))
  if not late then
    local has = lat ~= NOLOC
    local x, y, z = 0, 0, 0
    if has then
      local phi, lam = lat * DEG, lon * DEG
      x, y, z = math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)
    end
    local d = { 1, amount, amount * amount, cnp, has and 1 or 0, x, y, z }
    local function rinsert(pos, nold)
      local c = { rrec(pos) }
      local rec = pack('<dddddddddd', c[1] + d[2], c[2] + d[3], c[3] + d[4], c[4] + d[5],
        c[5] + d[6], c[6] + d[7], c[7] + d[8], lat, lon, tonumber(tf))
      if pos == nold then
        redis.call('APPEND', kR, rec)
      else
        local tail = redis.call('GETRANGE', kR, 80 * pos, -1)
        local parts = { rec }
        for i = 1, nold - pos do
          local r = { unpack('<dddddddddd', tail, 80 * i - 79) }
          parts[#parts + 1] = pack('<dddddddddd', r[1] + d[2], r[2] + d[3], r[3] + d[4],
            r[4] + d[5], r[5] + d[6], r[6] + d[7], r[7] + d[8], r[8], r[9], r[10])
        end
        redis.call('SETRANGE', kR, 80 * pos, table.concat(parts))
      end
    end
    tinsert(kT, s, n, t, 1, kR, rinsert)
    redis.call('PEXPIRE', kT, ETTL)
    redis.call('PEXPIRE', kR, ETTL)
    if tf ~= '0' then
      local times = {}
      for j = 1, #uses / 8 do times[j] = unpack('<d', uses, 8 * j - 7) end
      times[#times + 1] = t
      table.sort(times)
      local first = math.max(1, #times - TERM_TIMES + 1)
      local parts = {}
      for j = first, #times do parts[#parts + 1] = pack('<d', times[j]) end
      local kS = base .. ':S'
      redis.call('HSET', kS, tf, table.concat(parts))
      if redis.call('HLEN', kS) > TCAP then
        -- keep the half most recently used terminals (ties by field) - window.py mirrors it
        local all, ranked = redis.call('HGETALL', kS), {}
        for j = 1, #all, 2 do
          local v = all[j + 1]
          ranked[#ranked + 1] = { f = all[j], m = unpack('<d', v, #v - 7) }
        end
        table.sort(ranked, function(p, q) return p.m > q.m or (p.m == q.m and p.f > q.f) end)
        for j = floor(TCAP / 2) + 1, #ranked do redis.call('HDEL', kS, ranked[j].f) end
      end
      redis.call('PEXPIRE', kS, ETTL)
    end
  end
  redis.call('SET', km, blob, 'PX', RTTL)
  return blob
end

local function term_op(base, txid, t)
  local km = base .. ':x:' .. txid
  local old = redis.call('GET', km)
  if old then return old:sub(1, TERM_BYTES) .. 'R' end
  local kT = base .. ':T'
  local s = redis.call('GET', kT) or ''
  local n = #s / 16
  local late = n > 0 and t < tim(s, n) - L
  local hi = t - D
  local i0 = find(s, hi, n)
  local i1 = find(s, hi - DAY, i0)
  local i7 = find(s, hi - 7 * DAY, i1)
  local i30 = find(s, hi - 30 * DAY, i7)
  local c0 = cum(s, i0)
  local f = redis.call('GET', base .. ':F') or ''
  local nf = #f / 16
  local blob = pack('<dddddddd', late and 1 or 0, t, c0 - cum(s, i1), c0 - cum(s, i7),
    c0 - cum(s, i30), fwindow(f, nf, hi - DAY, hi), fwindow(f, nf, hi - 7 * DAY, hi),
    fwindow(f, nf, hi - 30 * DAY, hi))
  if not late then
    tinsert(kT, s, n, t, 1)
    redis.call('PEXPIRE', kT, ETTL)
  end
  redis.call('SET', km, blob, 'PX', RTTL)
  return blob
end

local function label_op(base, txid, fraud, size)
  local km = base .. ':x:' .. txid
  local m = redis.call('GET', km)
  if not m then return 0 end
  if #m > size then return 2 end -- already labelled: the first label wins
  redis.call('APPEND', km, fraud == '1' and 'F' or 'L')
  local late, t = unpack('<dd', m)
  if fraud == '1' and late == 0 then
    local kF = base .. ':F'
    local f = redis.call('GET', kF) or ''
    tinsert(kF, f, #f / 16, t, 1)
    redis.call('PEXPIRE', kF, ETTL)
  end
  return 1
end

local out, ai = {}, 10
for k = 1, #KEYS do
  local op = ARGV[ai]
  if op == 'C' then
    out[k] = card_op(KEYS[k], ARGV[ai + 1], tonumber(ARGV[ai + 2]), tonumber(ARGV[ai + 3]),
      tonumber(ARGV[ai + 4]), tonumber(ARGV[ai + 5]), tonumber(ARGV[ai + 6]), ARGV[ai + 7])
    ai = ai + 8
  elseif op == 'T' then
    out[k] = term_op(KEYS[k], ARGV[ai + 1], tonumber(ARGV[ai + 2]))
    ai = ai + 3
  elseif op == 'X' then
    out[k] = redis.call('SET', KEYS[k], ARGV[ai + 1] .. '\n' .. ARGV[ai + 2], 'NX', 'PX', RTTL)
      and 1 or 0
    ai = ai + 3
  else
    out[k] = label_op(KEYS[k], ARGV[ai + 1], ARGV[ai + 2], op == 'c' and CARD_BYTES or TERM_BYTES)
    ai = ai + 3
  end
end
return out
