-- Reads lines and prints each with string.len of it: the live-swap test changes what string.len (str_len in
-- lstrlib.c, reached only through a function pointer in Lua's library table) returns, while this runs.
for line in io.lines() do
  io.write(line, " ", string.len(line), "\n")
  io.stdout:flush()
end
