-- A busy Lua interpreter for compaction (hpvm compact, --compact=auto) and its benchmark: each slice of work
-- sorts, formats, concatenates, pattern-matches and calls closures, so calls go to hundreds of the interpreter's
-- C functions. Output depends only on the input, so a run under hpvm must match a native run line for line.
--   lua busy.lua          for each line read: print the line, the checksum of a slice seeded by it, string.len
--   lua busy.lua ROUNDS   wait for one line, run ROUNDS slices, print "ns_per_round N" (CPU time, os.clock)
local function work(seed)
  local t = {}
  for i = 1, 20000 do t[i] = (i * 7919 + seed) % 10007 end
  table.sort(t)
  local parts = {}
  for i = 1, 2000 do parts[#parts + 1] = string.format("%d:%s", t[i], tostring(i):rep(2)) end
  local sum = 0
  for w in table.concat(parts, ","):gmatch("%d+") do sum = (sum + tonumber(w)) % 1000000007 end
  local twice = function(x) return x * 2 end
  for i = 1, 50000 do sum = (sum + twice(i) + math.max(i, seed)) % 1000000007 end
  return sum
end

local rounds = tonumber(arg[1])
if rounds then
  io.read("l")
  local best = math.huge
  for _ = 1, 3 do
    local start = os.clock()
    for r = 1, rounds do work(r) end
    best = math.min(best, (os.clock() - start) / rounds)
  end
  print(string.format("ns_per_round %.0f", best * 1e9))
else
  for line in io.lines() do
    io.write(line, " ", work(tonumber(line) or #line), " ", string.len(line), "\n")
    io.stdout:flush()
  end
end
