-- One benchmark case for wrk (bench/bench.py sets the environment):
--   BENCH_METHOD, BENCH_PATH, BENCH_BODY_FILE (optional), BENCH_HEADERS_FILE (one "Name: value"
--   per line), BENCH_MODE: "static" (the same request every time), "forged_jwt" (a JWT-shaped
--   bearer with a random kid on every request), "codes" (an authorization code per request from
--   BENCH_CODES_FILE, into the body's {CODE}; the run ends when they are used up), "refresh" (the refresh token of the previous
--   answer, into the body's {TOKEN}; one connection).
-- done() prints one JSON line that bench.py reads.

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local mode = os.getenv("BENCH_MODE") or "static"
local body = nil
if os.getenv("BENCH_BODY_FILE") then body = read(os.getenv("BENCH_BODY_FILE")) end
local headers = {}
if os.getenv("BENCH_HEADERS_FILE") then
  for line in read(os.getenv("BENCH_HEADERS_FILE")):gmatch("[^\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then headers[k] = v end
  end
end

local codes, next_code = {}, 1
if mode == "codes" then
  for line in read(os.getenv("BENCH_CODES_FILE")):gmatch("[^\n]+") do codes[#codes + 1] = line end
end
local token = os.getenv("BENCH_REFRESH_TOKEN")

local function b64url(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return alphabet:sub(c + 1, c + 1)
  end))
end

-- Forged JWTs, each with its own random kid, made once (building them per request would make
-- wrk the bottleneck).
local forged, forged_next = {}, 0
if mode == "forged_jwt" then
  local claims = b64url('{"sub":"x","aud":"x","exp":4102444800}')
  local sig = b64url(string.rep("s", 64))
  for i = 1, 4096 do
    local kid = string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
    local head = b64url('{"alg":"ES256","typ":"at+jwt","kid":"' .. kid .. '"}')
    forged[i] = "Bearer " .. head .. "." .. claims .. "." .. sig
  end
end

if mode == "static" then
  -- wrk's own request path: no Lua per request.
  wrk.method, wrk.path, wrk.body = method, path, body
  for k, v in pairs(headers) do wrk.headers[k] = v end
else
  request = function()
    local h, b = {}, body
    for k, v in pairs(headers) do h[k] = v end
    if mode == "forged_jwt" then
      forged_next = forged_next % #forged + 1
      h["Authorization"] = forged[forged_next]
    elseif mode == "codes" then
      local code = codes[next_code] or "exhausted"
      next_code = next_code + 1
      b = body:gsub("{CODE}", code)
    elseif mode == "refresh" then
      b = body:gsub("{TOKEN}", token)
    end
    return wrk.format(method, path, h, b)
  end
end

-- A tool call answered with a tool error (a refusal: the audit trail not keeping up, a
-- throttle) is HTTP 200 but not the work the case measures: counted, and bench.py fails the
-- case on any. Reading each answer costs wrk a little CPU, on its own core.
tool_errors = 0 -- global: done() reads each thread's count with thread:get
if mode == "static" and os.getenv("BENCH_TOOL_ERRORS") == "1" then
  response = function(status, hdrs, resp)
    if resp and resp:find('"isError":true', 1, true) then tool_errors = tool_errors + 1 end
  end
end

if mode == "codes" then
  -- Each code works once: stop when they are used up.
  response = function(status, hdrs, resp)
    if next_code > #codes then wrk.thread:stop() end
  end
end

if mode == "refresh" then
  response = function(status, hdrs, resp)
    if status == 200 then
      local t = resp:match('"refresh_token"%s*:%s*"([^"]+)"')
      if t then token = t end
    end
  end
end

local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  local tool_errors = 0
  for _, t in ipairs(threads) do tool_errors = tool_errors + (t:get("tool_errors") or 0) end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"tool_errors":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"mean_us":%d}\n',
    summary.requests, summary.duration, non2xx, tool_errors,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
