-- A workload for the Lua interpreter under hpvm: closures, coroutines, the string library, error handling
-- (pcall/error unwind with longjmp), tables and sorting, the garbage collector, utf8, recursion. Its output must be
-- byte-identical natively and under `hpvm run`.
-- closures, coroutines, string library, error handling (longjmp), tables, gc
local function counter() local n = 0; return function() n = n + 1; return n end end
local c = counter(); for i = 1, 5 do c() end; print("closure", c())
local co = coroutine.create(function(a) local s = 0; for i = 1, a do s = s + coroutine.yield(i) end; return s end)
local ok, v = coroutine.resume(co, 4); local total = 0
while coroutine.status(co) ~= "dead" do ok, v = coroutine.resume(co, v * 10); total = total + (v or 0) end
print("coroutine", total)
print("string", ("hello world"):upper(), ("abc"):rep(3, "-"), string.format("%5.2f|%d|%s", math.pi, 42, "x"), ("x=1,y=2"):gsub("(%w+)=(%w+)", "%2=%1"))
for w in string.gmatch("one two three", "%a+") do io.write(w, ";") end print()
local ok2, err = pcall(function() error({code = 7}) end); print("pcall", ok2, type(err), err.code)
local ok3, err3 = pcall(function() local t = nil; return t.x end); print("error", ok3, (err3:gsub("^.-:%d+: ", "")))
print("xpcall", xpcall(function() error("deep") end, function(m) return "handled: " .. m:gsub("^.-:%d+: ", "") end))
local t = {} for i = 1, 10000 do t[i] = tostring(i):reverse() end table.sort(t) print("sort", t[1], t[#t], #t)
collectgarbage() print("utf8", utf8.len("héllo"), #string.pack("i4i8", 1, 2))
local fib; fib = function(n) if n < 2 then return n end return fib(n-1) + fib(n-2) end print("fib", fib(22))
print("len", string.len("abcdef"), #"xyz")
