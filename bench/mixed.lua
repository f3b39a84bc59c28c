-- wrk script for the "mixed" profile: a deterministic mix of API requests.
-- Usage: wrk -t T -c C -d D -s bench/mixed.lua URL -- PER_THREAD_LIMIT CLOSE_EVERY TARGET
--   TARGET "nginx": 30% JSON POSTs to /api/items (201, small JSON), 70% GETs of static JSON
--     documents of 1-100 KB under /data/, half of them with Accept-Encoding: gzip (nginx then
--     compresses on the fly and sends the body chunked);
--   TARGET "app": the Python JSON app (tests/netns.py): POSTs echoed back, chunked replies,
--     padded documents, some 404s.
-- Every CLOSE_EVERY-th request carries "Connection: close", so wrk opens a new connection
-- for the next one. Each thread stops after PER_THREAD_LIMIT responses (and at -d).

local limit, close_every, target = 0, 10, "nginx"
local n, seen = 0, 0
local sizes = {1, 2, 5, 10, 20, 50, 100}
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  limit = tonumber(args[1]) or 0
  close_every = tonumber(args[2]) or 10
  target = args[3] or "nginx"
  n = (tid or 1) * 7919
end

local function json_body(i)
  local fields = {}
  local count = 4 + (i % 40)
  for k = 1, count do
    fields[#fields + 1] = string.format('"field_%d":"value %d of item %d"', k, k * i % 997, i)
  end
  return "{" .. table.concat(fields, ",") .. "}"
end

function request()
  n = n + 1
  local headers = {["User-Agent"] = "bench-mixed/1", ["Accept"] = "application/json"}
  if close_every > 0 and n % close_every == 0 then
    headers["Connection"] = "close"
  end
  local pick = n % 10
  if target == "app" then
    if pick < 4 then
      headers["Content-Type"] = "application/json"
      return wrk.format("POST", "/items?chunked=" .. (n % 2), headers, json_body(n))
    elseif pick < 9 then
      return wrk.format("GET", "/items/" .. n .. "?bytes=" .. (1000 * sizes[1 + n % #sizes])
                        .. "&chunked=" .. (n % 2), headers)
    end
    return wrk.format("GET", "/status/404", headers)
  end
  if pick < 3 then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/items", headers, json_body(n))
  end
  if pick % 2 == 0 then
    headers["Accept-Encoding"] = "gzip"
  end
  return wrk.format("GET", "/data/doc" .. sizes[1 + n % #sizes] .. "k.json?id=" .. n, headers)
end

function response(status, headers, body)
  seen = seen + 1
  if limit > 0 and seen >= limit then
    wrk.thread:stop()
  end
end
