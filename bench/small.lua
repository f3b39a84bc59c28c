-- wrk script for the "small" profile: tiny keep-alive JSON GETs.
-- Usage: wrk -t T -c C -d D -s bench/small.lua URL -- PER_THREAD_LIMIT
-- Each wrk thread has its own Lua state; it stops after PER_THREAD_LIMIT responses, so the
-- run is bounded by count (the limit) and by time (-d), whichever comes first.

local limit = 0
local seen = 0

function init(args)
  limit = tonumber(args[1]) or 0
  wrk.headers["Accept"] = "application/json"
  wrk.headers["User-Agent"] = "bench-small/1"
end

function response(status, headers, body)
  seen = seen + 1
  if limit > 0 and seen >= limit then
    wrk.thread:stop()
  end
end
