-- fraudstream feature engine: one call scores / labels a batch of operations (see redis_store.py).
-- ARGV[1..9] = lateness, horizon, label delay, exact cap, coarse max, fold bucket, (unused),
-- entity ttl, record ttl (ms); ARGV[10..] one packed string per operation (first byte = opcode),
-- each taking its keys from KEYS in order. The reply is the operations' replies concatenated.
-- Single Redis (one record key per transaction):
--   A  keys record card [terminal]; <6d: t amount cnp lat lon term> ids
--        -> 0|1 (1 = replay) .. card marker (MARK_C) [.. 0|1 .. terminal marker (MARK_T)]
--   l  keys record card [terminal]; fraud('0'|'1') has-terminal(0|1 byte) -> status byte
-- Redis Cluster (each operation in one slot; per-entity markers make each idempotent):
--   C  key card; as A's argument, with the tx id instead of ids -> 0|1 .. MARK_C
--   T  key terminal; <d: t> txid -> 0|1 .. MARK_T
--   X  key record; card '\n' term -> nothing (the record labels find entities by)
--   c|t key card|terminal; fraud('0'|'1') txid -> status byte
-- Label status: 0 unknown, 1 applied, 2 duplicate.
--
-- Layout (keys.py): base = '<dI4' (wall ms of the last TTL refresh, nf), nf fraud records
-- (t, cum frauds) of 16 B, then the log records: (t, cum count) 16 B for a terminal, (t, cum
-- count, own terminal) 24 B for a card; a card also has base:R, 72 B per log record (cum
-- amount amount^2 cnp located x y z, own lat lon). The card's terminal uses (first use,
-- distinct terminals) are read from its log, so a transaction touches no per-terminal hash.
-- Cost model (Redis 7.0 Lua, measured): Redis' Lua hashes every byte of every string it
-- creates (~1.2 ns/B), the first touch of a key costs ~1-2 us (cache misses in a big keyspace),
-- each redis.call ~1 us more (arguments and reply converted), and PEXPIRE ~1.5 us. So: a
-- transaction touches 4 keys (record, card log, card R, terminal) with ~9 calls; the small
-- base string is read whole (binary searches and the first-use search run in Lua),
-- the wide records are read by GETRANGE and written by APPEND (the common in-order case), the
-- replay check and the marker write are one SET NX GET, and an entity's TTLs are refreshed only
-- when they could otherwise fall below the horizon (see refresh below).
-- Window math mirrors fraudstream/features/window.py (CumLog).

local L, H, D = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local CAP, COARSE, B = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ETTL, RTTL = ARGV[8], ARGV[9] -- TTLs stay strings: no reformat; ARGV[7] is unused
local SLACK = tonumber(ETTL) - H
local MIN, HOUR, DAY = 60000, 3600000, 86400000
local PRUNE_MIN, NOLOC, HB = 16, 999, 12
local CW, TW, FW, RW = 24, 16, 16, 72 -- record widths: card log, terminal log, frauds, card R
local DEG = math.pi / 180
local tunpack = unpack -- Lua's table unpack, before the name is taken by struct's
local unpack, pack, floor, concat = struct.unpack, struct.pack, math.floor, table.concat
-- Markers (the transaction's snapshot): flags (1 late, 2 labelled), then card: t amount lat
-- lon term, sums a1d a7d a30d a2_30d, prev t lat lon, centroid x y z; cnp; 11 integer counts.
local MARK_C = '<B' .. string.rep('d', 15) .. 'B' .. string.rep('I4', 11)
local MARK_T = '<BdI4I4I4I4I4I4'
local MARK_C_LEN = struct.size(MARK_C)
local REC = '<ddddddddd'
local touched = {} -- base key -> its last TTL refresh (wall ms), for entities written here

-- ---------------------------------------------------------------- (time, cum) logs
-- A log is w-byte records (t, cum[, own]) from byte o + 1 of s; i is 1-based. Hot: unpack
-- is inlined.
local function tim(s, o, w, i) return (unpack('<d', s, o + w * i - w + 1)) end
local function cum(s, o, w, i)
  if i == 0 then return 0 end
  return (unpack('<d', s, o + w * i - w + 9))
end

-- The number of records with time <= e among records 1..hi, and the cum of the last of them (0
-- for none). Each probe reads (t, cum) in one unpack. The first probe is hi (chained from the
-- previous window's answer, the short windows of an in-order event end there); then, with gap
-- (the log's mean ms between records, nil if unknown), a guess from the time distance, as the
-- records are spread roughly evenly; from there the search gallops (doubling steps) towards the
-- answer and bisects. The guess only saves probes: the answer is exact either way.
local function back(s, o, w, e, hi, gap)
  if hi == 0 then return 0, 0 end
  local t, c = unpack('<dd', s, o + w * hi - w + 1)
  if t <= e then return hi, c end
  local lo, lc, up = 0, 0, hi -- record lo has time <= e (0: none), record up has time > e
  local g = hi - 1
  if gap then
    g = hi - 1 - floor((t - e) / gap)
    if g < 1 then g = 1 end
  end
  if g >= 1 then
    local step, j = 1, g
    t, c = unpack('<dd', s, o + w * g - w + 1)
    if t <= e then
      lo, lc, j = g, c, g + 1
      while j < up do
        t, c = unpack('<dd', s, o + w * j - w + 1)
        if t > e then up = j break end
        lo, lc, step = j, c, step + step
        j = g + step
      end
    else
      up, j = g, g - 1
      while j > 0 do
        t, c = unpack('<dd', s, o + w * j - w + 1)
        if t <= e then lo, lc = j, c break end
        up, step = j, step + step
        j = g - step
      end
    end
  end
  while up - lo > 1 do
    local mid = floor((lo + up) / 2)
    t, c = unpack('<dd', s, o + w * mid - w + 1)
    if t <= e then lo, lc = mid, c else up = mid end
  end
  return lo, lc
end

-- a log's mean ms between records, given the newest time tn (nil with fewer than two, or all
-- at one time)
local function spacing(s, o, w, n, tn)
  if n < 2 then return nil end
  local gap = (tn - tim(s, o, w, 1)) / (n - 1)
  return gap > 0 and gap or nil
end

-- number of records with time <= e among records lo..hi (plain binary search)
local function find(s, o, w, e, lo, hi)
  while lo < hi do
    local mid = floor((lo + hi + 1) / 2)
    if tim(s, o, w, mid) <= e then lo = mid else hi = mid - 1 end
  end
  return lo
end

-- the log with (t, +1, own) inserted after equal times at pos, as a string (out-of-order
-- events); later records keep their own fields
local function inserted(s, o, w, n, t, pos, own)
  local parts = { s:sub(o + 1, o + w * pos), pack('<dd', t, cum(s, o, w, pos) + 1), own }
  for i = pos + 1, n do
    local at = o + w * i - w
    local ti, ci = unpack('<dd', s, at + 1)
    parts[#parts + 1] = pack('<dd', ti, ci + 1)
    if w > 16 then parts[#parts + 1] = s:sub(at + 17, at + w) end
  end
  return concat(parts)
end

-- Which records of a log to keep once an event at t joins its n records (window.py CumLog
-- prune then fold), computed on the log before the insert; nil when all stay. Pruning keeps
-- the newest stale record as the base later windows subtract from.
local function trim_plan(s, o, w, n, t)
  local newest = n > 0 and math.max(tim(s, o, w, n), t) or t
  local edge = newest - H
  local adj = t <= edge and 1 or 0 -- the new event itself is stale
  local first = 0
  -- cheap test first: fewer than PRUNE_MIN stale records needs one look at record k
  local k = PRUNE_MIN + 1 - adj
  if n >= k and tim(s, o, w, k) <= edge then first = find(s, o, w, edge, k, n) + adj - 1 end
  local m = n + 1 - first
  if m <= CAP + COARSE then return first > 0 and { first = first } or nil end
  return { first = first, fold = true }
end

-- apply a plan to a string of n fixed-size records (size w, from byte o + 1), times from log
-- (records of lw bytes)
local function trimmed(s, o, w, n, plan, log, lw)
  if not plan.fold then return s:sub(o + w * plan.first + 1, o + w * n) end
  local parts, last = {}, n - floor(CAP / 2)
  for i = plan.first + 1, last - 1 do
    if floor(tim(log, 0, lw, i) / B) ~= floor(tim(log, 0, lw, i + 1) / B) then
      parts[#parts + 1] = s:sub(o + w * i - w + 1, o + w * i)
    end
  end
  parts[#parts + 1] = s:sub(o + w * (last - 1) + 1, o + w * n)
  return concat(parts)
end

-- ---------------------------------------------------------------- entity base strings
-- the base string (or an empty one), its fraud-log count, the log's byte offset and count
-- (log records of w bytes)
local function base_state(key, w)
  local s = redis.call('GET', key)
  if not s then return pack('<dI4', 0, 0), 0, HB, 0, true end
  local _, nf = unpack('<dI4', s)
  local o = HB + FW * nf
  return s, nf, o, (#s - o) / w, false
end

-- TTLs: every key of an entity gets entity_ttl_ms when it is refreshed, and a refresh happens
-- once the last one is more than entity_ttl_ms - horizon_ms old (wall clock). So after any
-- write the state lives at least the horizon (what the windows need) and at most the TTL,
-- without a PEXPIRE per transaction.
local function refresh_all()
  local now
  for base, last in pairs(touched) do
    if not now then
      local tm = redis.call('TIME')
      now = tonumber(tm[1]) * 1000 + floor(tonumber(tm[2]) / 1000)
    end
    if now - last > SLACK then
      redis.call('PEXPIRE', base, ETTL)
      redis.call('PEXPIRE', base .. ':R', ETTL)
      redis.call('SETRANGE', base, 0, pack('<d', now))
    end
  end
end

local function touch(base, s)
  if not touched[base] then touched[base] = (unpack('<d', s)) end
end

-- ---------------------------------------------------------------- operations
-- R record i + an event's deltas d (amount, amount^2, cnp, located, x, y, z), own fields kept
local function shifted(r, off, d)
  local c1, c2, c3, c4, c5, c6, c7, o1, o2 = unpack(REC, r, off)
  return pack(REC, c1 + d[1], c2 + d[2], c3 + d[3], c4 + d[4], c5 + d[5], c6 + d[6], c7 + d[7],
    o1, o2)
end

-- insert the event at t (after equal times) into the base string's log (records of w bytes,
-- own: the event's own fields after (t, cum)) at pos, prune/fold; R (cards) gets rec, later R
-- records absorb the deltas d, and the same plan applies. s, o, n: the base before the insert.
local function log_insert(base, s, o, w, n, t, pos, fresh, own, kR, rec, d)
  local plan = trim_plan(s, o, w, n, t)
  local nt = cum(s, o, w, pos)
  if pos == n and not plan then -- in order, nothing to trim: append (the common case)
    redis.call('APPEND', base, (fresh and s or '') .. pack('<dd', t, nt + 1) .. own)
    if kR then redis.call('APPEND', kR, rec) end
    return
  end
  local log = inserted(s, o, w, n, t, pos, own)
  local r
  if kR then
    local tail, parts = redis.call('GETRANGE', kR, RW * pos, -1), { rec }
    for i = 1, n - pos do parts[#parts + 1] = shifted(tail, RW * i - RW + 1, d) end
    r = concat(parts)
  end
  if not plan then -- out of order, within the lateness: later records absorb the delta
    redis.call('SETRANGE', base, o + w * pos, log:sub(w * pos + 1))
    if kR then redis.call('SETRANGE', kR, RW * pos, r) end
    return
  end
  redis.call('SET', base, s:sub(1, o) .. trimmed(log, 0, w, n + 1, plan, log, w), 'KEEPTTL')
  if kR then
    local full = pos > 0 and redis.call('GETRANGE', kR, 0, RW * pos - 1) .. r or r
    redis.call('SET', kR, trimmed(full, 0, RW, n + 1, plan, log, w), 'KEEPTTL')
  end
end

-- record i of a card's R log: from rng (records a1..) when there, else one GETRANGE
local function rrec(kR, rng, a1, i)
  if i == 0 then return 0, 0, 0, 0, 0, 0, 0, NOLOC, 0 end
  if i >= a1 then return unpack(REC, rng, RW * (i - a1) + 1) end
  return unpack(REC, redis.call('GETRANGE', kR, RW * (i - 1), RW * i - 1))
end

-- The card's view of an event: its marker (MARK_C), whether it is late, what card_commit
-- needs (one table, no closures: allocation is what the Lua GC charges for), and the rest of
-- the argument string (tx id or ids). Reads only.
local function card_view(base, a)
  local t, amount, cnp, lat, lon, tf = unpack('<dddddd', a, 2)
  local s, nf, o, n, fresh = base_state(base, CW)
  local kR = base .. ':R'
  local tn = n > 0 and tim(s, o, CW, n) or 0
  local late = n > 0 and t < tn - L
  local gap = spacing(s, o, CW, n, tn)
  local it, nt = back(s, o, CW, t, n, gap)
  local i10m, c10m = back(s, o, CW, t - 10 * MIN, it, gap)
  local i1h, c1h = back(s, o, CW, t - HOUR, i10m, gap)
  local i1d, c1d = back(s, o, CW, t - DAY, i1h, gap)
  local i7d, c7d = back(s, o, CW, t - 7 * DAY, i1d, gap)
  local i30d, c30d = back(s, o, CW, t - 30 * DAY, i7d, gap)
  -- the delayed window (t-D-30d, t-D]: start each search from the nearest answer above it
  local hd = it
  if D >= 30 * DAY then hd = i30d
  elseif D >= 7 * DAY then hd = i7d
  elseif D >= DAY then hd = i1d
  elseif D >= HOUR then hd = i1h
  elseif D >= 10 * MIN then hd = i10m end
  local idh, cdh = back(s, o, CW, t - D, hd, gap)
  local _, cdl = back(s, o, CW, t - D - 30 * DAY, math.min(idh, i30d), gap)
  local fdh, gdh = back(s, HB, FW, t - D, nf)
  local _, gdl = back(s, HB, FW, t - D - 30 * DAY, fdh)
  -- one GETRANGE for the R records i1d..it (the 1-day edge, the 1-day window, the newest
  -- earlier record); the 7- and 30-day edge records are one GETRANGE each
  local a1 = i1d > 0 and i1d or 1
  local rng = it >= a1 and redis.call('GETRANGE', kR, RW * (a1 - 1), RW * it - 1) or ''
  local tA, tA2, tC, tLn, tX, tY, tZ, pLat, pLon = rrec(kR, rng, a1, it)
  local dA = rrec(kR, rng, a1, i1d)
  local wA, _, wC = rrec(kR, rng, a1, i7d)
  local mA, mA2, _, mLn, mX, mY, mZ = rrec(kR, rng, a1, i30d)
  -- distinct terminals in (t-1d, t]: this one and those of the few log records in the window
  local t1, t2, t3, distinct = tf, nil, nil, tf ~= 0 and 1 or 0
  local more = nil
  for i = i1d + 1, it do
    local term = unpack('<d', s, o + CW * i - 7)
    if term ~= 0 and term ~= t1 and term ~= t2 and term ~= t3 and not (more and more[term]) then
      distinct = distinct + 1
      if not t2 then t2 = term elseif not t3 then t3 = term else
        more = more or {}
        more[term] = true
      end
    end
  end
  -- first use: does a log record in (t-30d, t] carry this terminal? A plain (C) substring
  -- search for its bytes, accepted only where they sit in a record's terminal field. The
  -- double's low bytes are zero (a 40-bit integer), as in every time and count: the needle
  -- starts at its first nonzero byte k, or memchr stops at nearly every record (~10x slower).
  local seen30 = 0
  if tf ~= 0 then
    local k = 1
    while a:byte(41 + k) == 0 do k = k + 1 end -- tf ~= 0: some byte is nonzero
    local needle, at, last = a:sub(41 + k, 49), o + CW * i30d + 16 + k, o + CW * it - 8 + k
    while at <= last do
      at = s:find(needle, at, true)
      if not at or at > last then break end
      if (at - o - 16 - k) % CW == 0 then
        seen30 = 1
        break
      end
      at = at + 1
    end
  end
  local prev_t = it == 0 and -1 or it == n and tn or tim(s, o, CW, it)
  local mark = pack(MARK_C, late and 1 or 0, t, amount, lat, lon, tf, tA - dA, tA - wA, tA - mA,
    tA2 - mA2, prev_t, pLat, pLon, tX - mX, tY - mY, tZ - mZ, cnp,
    nt - c10m, nt - c1h, nt - c1d, nt - c7d, nt - c30d, tC - wC, distinct, seen30, tLn - mLn,
    cdh - cdl, gdh - gdl)
  -- an array (exact-size allocation), unpacked by card_commit in this order
  local v = { base, s, o, n, fresh, kR, it, t, amount, cnp, lat, lon, a:sub(42, 49),
    tA, tA2, tC, tLn, tX, tY, tZ }
  return mark, late, v, a:sub(50)
end

-- add the event of a card view to the card's state (log with its terminal, R)
local function card_commit(v)
  local base, s, o, n, fresh, kR, it, t, amount, cnp, lat, lon, term,
    tA, tA2, tC, tLn, tX, tY, tZ = tunpack(v, 1, 20)
  local has = lat ~= NOLOC
  local x, y, z = 0, 0, 0
  if has then
    local phi, lam = lat * DEG, lon * DEG
    x, y, z = math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)
  end
  local hv, a2 = has and 1 or 0, amount * amount
  if fresh then redis.call('DEL', kR) end -- never append to a stray log (e.g. evicted base)
  log_insert(base, s, o, CW, n, t, it, fresh, term, kR,
    pack(REC, tA + amount, tA2 + a2, tC + cnp, tLn + hv, tX + x, tY + y, tZ + z, lat, lon),
    it < n and { amount, a2, cnp, hv, x, y, z } or nil) -- deltas: out of order only
  touch(base, s)
end

-- The terminal's view of an event at t: marker (MARK_T), late, and its insert. Reads only.
local function term_view(base, t)
  local s, nf, o, n, fresh = base_state(base, TW)
  local tn = n > 0 and tim(s, o, TW, n) or 0
  local late = n > 0 and t < tn - L
  local hi, gap = t - D, spacing(s, o, TW, n, tn)
  local i0, c0 = back(s, o, TW, hi, n, gap)
  local i1, c1 = back(s, o, TW, hi - DAY, i0, gap)
  local i7, c7 = back(s, o, TW, hi - 7 * DAY, i1, gap)
  local _, c30 = back(s, o, TW, hi - 30 * DAY, i7, gap)
  local f0, g0 = back(s, HB, FW, hi, nf)
  local f1, g1 = back(s, HB, FW, hi - DAY, f0)
  local f7, g7 = back(s, HB, FW, hi - 7 * DAY, f1)
  local _, g30 = back(s, HB, FW, hi - 30 * DAY, f7)
  local mark = pack(MARK_T, late and 1 or 0, t, c0 - c1, c0 - c7, c0 - c30, g0 - g1, g0 - g7,
    g0 - g30)
  return mark, late, { base, s, o, n, fresh, t }
end

local function term_commit(v)
  local base, s, o, n, fresh, t = tunpack(v, 1, 6)
  log_insert(base, s, o, TW, n, t, back(s, o, TW, t, n), fresh, '')
  touch(base, s)
end

-- a labelled fraud at t enters an entity's fraud log (kept sorted, pruned and folded)
local function add_fraud(base, t)
  local s, nf, o = base_state(base, 1) -- the log's width does not matter here
  local pos = back(s, HB, FW, t, nf)
  local plan = trim_plan(s, HB, FW, nf, t)
  local f = inserted(s, HB, FW, nf, t, pos, '')
  if plan then f = trimmed(f, 0, FW, nf + 1, plan, f, FW) end
  redis.call('SET', base, s:sub(1, 8) .. pack('<I4', #f / FW) .. f .. s:sub(o + 1), 'KEEPTTL')
  touch(base, s)
end

-- ------------------------------------------------ single Redis: one record per transaction
-- A: KEYS record, card[, terminal]. The record (record_ttl_ms) is '<H' len, ids, the card and
-- terminal markers; its SET NX GET is the replay check, so the event changes state only once.
local function tx_op(kX, kC, kT, a, out)
  local cm, clate, cv, ids = card_view(kC, a)
  local tm, tlate, tv = '', true, nil
  if kT then tm, tlate, tv = term_view(kT, (unpack('<d', a, 2))) end
  local old = redis.call('SET', kX, pack('<H', #ids) .. ids .. cm .. tm, 'NX', 'GET', 'PX', RTTL)
  local n = #out
  if old then -- the stored markers, with a status byte before each
    local c = 3 + unpack('<H', old)
    out[n + 1], out[n + 2] = '\1', old:sub(c, c + MARK_C_LEN - 1)
    if kT then out[n + 3], out[n + 4] = '\1', old:sub(c + MARK_C_LEN) end
    return
  end
  if not clate then card_commit(cv) end
  if not tlate then term_commit(tv) end
  out[n + 1], out[n + 2] = '\0', cm
  if kT then out[n + 3], out[n + 4] = '\0', tm end
end

-- l: KEYS record, card[, terminal]; the first label wins (flag in the card marker's flags)
local function tx_label(kX, kC, kT, a)
  local m = redis.call('GET', kX)
  if not m then return '\0' end
  local c = 3 + unpack('<H', m) -- the card marker's first byte
  local flags = m:byte(c)
  if flags >= 2 then return '\2' end
  redis.call('SET', kX, m:sub(1, c - 1) .. string.char(flags + 2) .. m:sub(c + 1), 'KEEPTTL')
  if a:byte(2) == 49 then
    local t = unpack('<d', m, c + 1)
    if flags == 0 then add_fraud(kC, t) end
    if kT and m:byte(c + MARK_C_LEN) == 0 then add_fraud(kT, t) end
  end
  return '\1'
end

-- ------------------------------------------------ Redis Cluster: one slot per operation
local function marked(base, txid, mark, late, v, commit)
  local old = redis.call('SET', base .. ':x:' .. txid, mark, 'NX', 'GET', 'PX', RTTL)
  if old then return '\1' .. old end
  if not late then commit(v) end
  return '\0' .. mark
end

-- c|t: the first label of a transaction wins; a fraud (not late) enters the fraud log
local function label_op(base, a)
  local km = base .. ':x:' .. a:sub(3)
  local m = redis.call('GET', km)
  if not m then return '\0' end
  local flags = m:byte(1)
  if flags >= 2 then return '\2' end
  -- SET, not APPEND: the marker stays an exact-size (often embedded) string
  redis.call('SET', km, string.char(flags + 2) .. m:sub(2), 'KEEPTTL')
  if a:byte(2) == 49 and flags == 0 then add_fraud(base, (unpack('<d', m, 2))) end
  return '\1'
end

local out, ki = {}, 1
for k = 10, #ARGV do
  local a = ARGV[k]
  local op = a:byte(1)
  if op == 65 or op == 108 then -- 'A' | 'l': record, card and (when present) terminal keys
    local has_term
    if op == 65 then has_term = unpack('<d', a, 42) ~= 0 else has_term = a:byte(3) ~= 0 end
    local kT = has_term and KEYS[ki + 2] or nil
    if op == 65 then
      tx_op(KEYS[ki], KEYS[ki + 1], kT, a, out)
    else
      out[#out + 1] = tx_label(KEYS[ki], KEYS[ki + 1], kT, a)
    end
    ki = ki + (has_term and 3 or 2)
  else
    local base = KEYS[ki]
    ki = ki + 1
    if op == 67 then -- 'C'
      local mark, late, v, txid = card_view(base, a)
      out[#out + 1] = marked(base, txid, mark, late, v, card_commit)
    elseif op == 84 then -- 'T'
      local mark, late, v = term_view(base, (unpack('<d', a, 2)))
      out[#out + 1] = marked(base, a:sub(10), mark, late, v, term_commit)
    elseif op == 88 then -- 'X': the record labels find the card and terminal by
      redis.call('SET', base, a:sub(2), 'NX', 'PX', RTTL)
    else -- 'c' | 't'
      out[#out + 1] = label_op(base, a)
    end
  end
end
refresh_all()
return concat(out)
